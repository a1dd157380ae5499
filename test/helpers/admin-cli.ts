/**
 * The admin CLI as an operator runs it: the built bin/xmpp-web-gateway.js in
 * a child process (asynchronously, so an in-process server keeps answering),
 * in `cwd` (no .env there) with only the environment given.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { rmSync } from 'node:fs';
import { ensureBuilt, ROOT } from './built.js';

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const BIN = join(ROOT, 'bin', 'xmpp-web-gateway.js');

export function runCli(args: readonly string[], env: Record<string, string>, input?: string): Promise<CliRun> {
  ensureBuilt(join(ROOT, 'dist', 'cli', 'main.js'));
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { cwd: env.DATA_DIR ?? tmpdir(), env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }));
    child.stdin?.end(input ?? '');
  });
}

/** A private (0700) directory, removed when `t` ends; its real path, so socket paths stay short and exact. */
export function privateDir(t: Test, prefix = 'xwg-admin-'): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

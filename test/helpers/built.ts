import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventually } from './eventually.js';

/** The project root (where package.json, dist/ and bin/ are). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function newestSource(dir: string): number {
  return Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((e) => {
    const path = join(dir, e.name);
    return e.isDirectory() ? newestSource(path) : statSync(path).mtimeMs;
  }));
}

/**
 * For tests that run the real process: `npm test` builds first; a direct
 * `npx tap` run rebuilds only when `built` (a file under dist/) is older
 * than src/.
 */
export function ensureBuilt(built: string): void {
  if (existsSync(built) && statSync(built).mtimeMs >= newestSource(join(ROOT, 'src'))) return;
  const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8' });
  if (!existsSync(built)) throw new Error(`build failed:\n${tsc.stdout}${tsc.stderr}`);
}

/** The server's entry point, as `npm start` runs it. */
export const MAIN = join(ROOT, 'dist', 'main.js');

/**
 * The real server process (`node dist/main.js`) started in `dir`: on loopback, its data in `dir/data`, info logs,
 * `env` on top; stdout a pipe unless given a file descriptor. Killed when `t` ends if it is still running.
 */
export function spawnMain(
  t: { teardown(fn: () => void): void }, dir: string, env: Readonly<Record<string, string>>, stdout: 'pipe' | number = 'pipe',
): { child: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  const child = spawn(process.execPath, [MAIN], {
    cwd: dir, stdio: ['ignore', stdout, 'pipe'],
    env: { PATH: process.env.PATH, PORT: '0', HOST: '127.0.0.1', DATA_DIR: join(dir, 'data'), LOG_LEVEL: 'info', ...env },
  });
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, exited };
}

/**
 * A start of the real process (spawnMain) that should stop: its exit code and stderr. One that serves on, or hangs,
 * is killed after `guardMs`, so the test reports instead of hanging.
 */
export async function mainExit(
  t: { teardown(fn: () => void): void }, dir: string, env: Readonly<Record<string, string>>, guardMs = 15_000,
): Promise<{ code: number | null; stderr: string }> {
  const { child, exited } = spawnMain(t, dir, env);
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  child.stdout!.resume();
  const guard = setTimeout(() => child.kill('SIGKILL'), guardMs);
  const { code } = await exited;
  clearTimeout(guard);
  return { code, stderr };
}

/**
 * spawnMain, serving: its JSON log lines (stdout and stderr) as parsed so far, and its address (`127.0.0.1:port`)
 * from the 'listening' line.
 */
export async function spawnServing(t: { teardown(fn: () => void): void }, dir: string, env: Readonly<Record<string, string>>): Promise<{
  child: ChildProcess; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>; lines: () => Record<string, unknown>[]; base: string;
}> {
  const { child, exited } = spawnMain(t, dir, env);
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const lines = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  // A cold start on a loaded 2-core machine can take more than eventually()'s default 5 s.
  const listening = await eventually(() => lines().find((l) => l.event === 'listening'), { timeout: 30_000, message: () => `the server to listen\n${out}` });
  return { child, exited, lines, base: `127.0.0.1:${listening.port as number}` };
}

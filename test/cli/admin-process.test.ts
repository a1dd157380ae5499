/**
 * The admin socket of the real process (`xmpp-web-gateway serve`, as main.ts
 * wires it from ADMIN_SOCKET and DATA_DIR): there while it serves, gone
 * after SIGTERM; none with ADMIN_SOCKET=off.
 */
import t, { type Test } from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ensureBuilt, ROOT } from '../helpers/built.js';
import { eventually } from '../helpers/eventually.js';
import { privateDir, runCli } from '../helpers/admin-cli.js';

t.before(() => ensureBuilt(join(ROOT, 'dist', 'main.js')));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const address = s.address();
      s.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    }).on('error', reject);
  });
}

async function serve(t: Test, env: Record<string, string>): Promise<ChildProcess & { log: string[] }> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'xmpp-web-gateway.js'), 'serve'], {
    cwd: env.DATA_DIR, stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '', PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env },
  });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const log: string[] = [];
  child.stderr!.on('data', (b: Buffer) => log.push(b.toString()));
  await eventually(async () => {
    try {
      return (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200;
    } catch {
      return false;
    }
  }, { timeout: 20_000, interval: 100, message: () => `the server to be ready; stderr: ${log.join('')}` });
  return Object.assign(child, { log });
}

t.test('the serving process answers on DATA_DIR/admin.sock and removes it at SIGTERM', async (t) => {
  const dataDir = privateDir(t);
  const child = await serve(t, { DATA_DIR: dataDir });
  const socket = join(dataDir, 'admin.sock');
  t.equal(lstatSync(socket).mode & 0o777, 0o600);
  const stats = await runCli(['stats', '--json'], { DATA_DIR: dataDir });
  t.equal(stats.code, 0, stats.stderr);
  t.equal(JSON.parse(stats.stdout).storage, 'sqlite');
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  t.equal(await exited, 0);
  t.notOk(existsSync(socket), 'the socket is removed at shutdown');
});

t.test('ADMIN_SOCKET=off: no socket, and the CLI says the server cannot be reached', async (t) => {
  const dataDir = privateDir(t);
  const child = await serve(t, { DATA_DIR: dataDir, ADMIN_SOCKET: 'off' });
  t.notOk(existsSync(join(dataDir, 'admin.sock')));
  const run = await runCli(['sessions', 'list'], { DATA_DIR: dataDir, ADMIN_SOCKET: 'off' });
  t.equal(run.code, 2);
  t.match(run.stderr, /ADMIN_SOCKET=off/);
  child.kill('SIGTERM');
});

t.test('a DATA_DIR too deep for a socket address: the default socket is off with a warning, an explicit one stops the start', async (t) => {
  const deep = join(privateDir(t), 'd'.repeat(60), 'e'.repeat(60));
  mkdirSync(deep, { recursive: true, mode: 0o700 });
  const child = await serve(t, { DATA_DIR: deep });
  t.match(child.log.join(''), /warning: ADMIN_SOCKET: .* is longer than the 103 bytes .*the admin socket is off/);
  child.kill('SIGTERM');
  const explicit = spawnSync(process.execPath, [join(ROOT, 'bin', 'xmpp-web-gateway.js'), 'serve'], {
    cwd: deep, encoding: 'utf8', timeout: 20_000,
    env: { PATH: process.env.PATH ?? '', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', DATA_DIR: deep, ADMIN_SOCKET: 'admin-explicit.sock' },
  });
  t.equal(explicit.status, 2);
  t.match(explicit.stderr, /configuration error: ADMIN_SOCKET: .* is longer than 103 bytes/);
});

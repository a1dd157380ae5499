/**
 * A throw-away Redis for tests: Debian's redis-server on 127.0.0.1 and a
 * free port, its directory temporary; no persistence, or with `aof` an
 * append-only file fsynced at every write (what survives a restart is all
 * that was acknowledged), and restart() on the same port and directory.
 * Stopped by PID, its directory removed. When the binary is missing it is installed as root
 * (ensureDebianPackage), otherwise the test fails naming the package:
 * never a silent skip. One per test file; tests that need a clean slate
 * take a database number of their own (url(db)).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDebianPackage } from './apt.js';

export interface TestRedis {
  readonly port: number;
  /** redis://127.0.0.1:port/db; every call without `db` gets a database of its own (up to 16). */
  url(db?: number): string;
  /** Kills the server (SIGKILL when `hard`, as a crash would) and removes its directory. */
  stop(hard?: boolean): Promise<void>;
  /**
   * Kills the server (SIGKILL when `hard`), waits `downMs`, and starts it
   * again on the same port and directory; resolves once it answers PING.
   * Without `aof` it comes back empty.
   */
  restart(downMs: number, hard?: boolean): Promise<void>;
}

export interface RedisOptions {
  /** appendonly yes, appendfsync always: every acknowledged write is on disk before the reply. */
  readonly aof?: boolean;
}

/** A free TCP port on 127.0.0.1 (the cluster harness uses it too). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    }).on('error', reject);
  });
}

/** True once the server answers PING with PONG. */
function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => socket.write('PING\r\n'));
    socket.setTimeout(1000, () => { socket.destroy(); resolve(false); });
    socket.on('data', (d) => { socket.destroy(); resolve(d.toString().startsWith('+PONG')); });
    socket.on('error', () => resolve(false));
  });
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    process.kill(child.pid!, signal);
  });
}

/** Databases of a test Redis: one per subtest that wants a cluster of its own, so a file shares one server. */
const DATABASES = 32;

/** One run of redis-server on `port` in `dir`; resolves once it answers PING, or rejects with its stderr. */
async function runRedis(bin: string, port: number, dir: string, aof: boolean): Promise<ChildProcess> {
  const persistence = aof ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  const child = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence,
    '--databases', String(DATABASES), '--dir', dir, '--daemonize', 'no', '--protected-mode', 'yes', '--loglevel', 'warning'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000); });
  const deadline = Date.now() + 30_000;
  while (!(await pong(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stopChild(child, 'SIGKILL');
      throw new Error(`redis-server did not answer PING on 127.0.0.1:${port} (exit ${child.exitCode}): ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

export async function startRedis(opts: RedisOptions = {}): Promise<TestRedis> {
  const bin = ensureDebianPackage('/usr/bin/redis-server', 'redis-server', 'Redis (redis-server)');
  const dir = mkdtempSync(join(tmpdir(), 'xwg-redis-'));
  const port = await freePort();
  const aof = opts.aof ?? false;
  let child: ChildProcess;
  try {
    child = await runRedis(bin, port, dir, aof);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let next = 0;
  return {
    port,
    url(db?: number) {
      const n = db ?? next++;
      if (n >= DATABASES) throw new Error(`a test Redis has ${DATABASES} databases; start another one`);
      return `redis://127.0.0.1:${port}/${n}`;
    },
    async stop(hard = false) {
      await stopChild(child, hard ? 'SIGKILL' : 'SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
    async restart(downMs, hard = false) {
      await stopChild(child, hard ? 'SIGKILL' : 'SIGTERM');
      await new Promise((r) => setTimeout(r, downMs));
      child = await runRedis(bin, port, dir, aof);
    },
  };
}

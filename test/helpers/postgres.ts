/**
 * A throw-away PostgreSQL for tests: Debian's initdb and postgres binaries,
 * a cluster in a temporary directory, listening on 127.0.0.1 only (no Unix
 * socket), fsync off. PostgreSQL refuses to run as root, so as root the
 * server runs as the `postgres` user Debian's package creates. Stopped by
 * PID, its directory removed. When the binaries are missing they are
 * installed as root (ensureDebianPackage), otherwise the test fails naming
 * the package: never a silent skip.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { ensureDebianPackage } from './apt.js';

export interface TestPostgres {
  /** postgres://… of the `postgres` database (the superuser, trust auth on loopback). */
  readonly adminUrl: string;
  /** Creates an empty database and returns its URL. */
  createDatabase(): Promise<string>;
  stop(): Promise<void>;
}

const ROOT = '/usr/lib/postgresql';

/** The bin/ of the newest PostgreSQL installed, installing Debian's `postgresql` when there is none. */
export function postgresBinDir(): string {
  const find = () => (existsSync(ROOT) ? readdirSync(ROOT) : [])
    .filter((v) => existsSync(join(ROOT, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a))[0];
  const found = find();
  if (found) return join(ROOT, found, 'bin');
  // pg_ctlcluster comes with postgresql-common, which the postgresql package always pulls in.
  ensureDebianPackage('/usr/bin/pg_ctlcluster', 'postgresql', 'PostgreSQL (initdb, postgres)');
  const installed = find();
  if (!installed) throw new Error(`PostgreSQL's initdb is missing under ${ROOT}: install the Debian package "postgresql"`);
  return join(ROOT, installed, 'bin');
}

/** Root runs the server as `postgres`; anyone else as themselves. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    throw new Error('PostgreSQL refuses to run as root and there is no "postgres" user: install the Debian package "postgresql"');
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    }).on('error', reject);
  });
}

async function waitReady(url: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`postgres exited with ${child.exitCode}: ${log()}`);
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (Date.now() > deadline) throw new Error(`postgres did not accept connections in 30 s: ${(err as Error).message}\n${log()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    // SIGINT is PostgreSQL's fast shutdown: it rolls back open transactions and exits.
    process.kill(child.pid!, 'SIGINT');
  });
}

export async function startPostgres(): Promise<TestPostgres> {
  const bin = postgresBinDir();
  const user = serverUser();
  const dir = mkdtempSync(join(tmpdir(), 'xwg-pg-'));
  const data = join(dir, 'data');
  if (user) chownSync(dir, user.uid, user.gid);
  const asUser = user ? { uid: user.uid, gid: user.gid } : {};
  execFileSync(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'], { ...asUser, stdio: 'pipe', cwd: dir });
  const port = await freePort();
  const child = spawn(join(bin, 'postgres'), ['-D', data, '-h', '127.0.0.1', '-p', String(port), '-k', '',
    '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200'], { ...asUser, cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000); });
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const stop = async () => {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(adminUrl, child, () => stderr);
  } catch (err) {
    await stop();
    throw err;
  }
  let next = 0;
  return {
    adminUrl,
    async createDatabase() {
      const name = `t${process.pid}_${next++}`;
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    stop,
  };
}

/** An open transaction of another session (an operator's psql) holding what `lock` took, until `release` (ROLLBACK). */
export interface HeldLock {
  release(): Promise<void>;
}

/**
 * Runs `lock` (`LOCK TABLE users IN ACCESS EXCLUSIVE MODE`, `SELECT pg_advisory_xact_lock(…)`) in a
 * transaction of a connection of its own, and keeps it open: what a stalled database looks like to the
 * statements that need the lock. Released when `t` ends at the latest.
 */
export async function holdLock(t: { teardown(fn: () => unknown): void }, url: string, lock: string, params: unknown[] = []): Promise<HeldLock> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let released: Promise<void> | undefined;
  const release = (): Promise<void> => (released ??= client.query('ROLLBACK').then(() => client.end(), () => client.end()));
  t.teardown(release);
  await client.query('BEGIN');
  await client.query(lock, params);
  return { release };
}

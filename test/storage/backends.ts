/**
 * Every Storage backend the contract suites run over, and what the suites
 * share. A new backend is one more entry in BACKENDS: every
 * `<port>.test.ts` loops over them all. PostgreSQL runs one throw-away
 * server per test file (started on first use, stopped when the file's
 * tests end) and a fresh database per storage opened.
 */
import tap, { type Test } from 'tap';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DATABASE_FILE } from '../../src/storage/index.js';
import { migrate, MIGRATIONS } from '../../src/storage/sqlite/migrations.js';
import {
  createMemoryStorage, deriveStoredCredentials, openPostgresStorage, openSqliteStorage, type Clock, type Storage, type StoredCredentials,
} from '../../src/storage/index.js';
import { startPostgres, type TestPostgres } from '../helpers/postgres.js';

export interface BackendOptions {
  now?: Clock;
}

/** Opens a fresh, empty Storage for `t` (and only for it); the suite closes it. */
export type MakeStorage = (t: Test, options?: BackendOptions) => Storage | Promise<Storage>;

/** This test file's PostgreSQL server, started on first use and stopped by PID when the file's tests end. */
function postgresPerFile(): () => Promise<TestPostgres> {
  let server: Promise<TestPostgres> | undefined;
  return () => {
    if (server === undefined) {
      const starting = startPostgres();
      server = starting;
      tap.teardown(async () => (await starting).stop());
    }
    return server;
  };
}

/** This file's PostgreSQL server (tests of what only PostgreSQL shows use it too). */
export const testPostgres = postgresPerFile();

export const BACKENDS: Readonly<Record<string, MakeStorage>> = {
  memory: (_t, options = {}) => createMemoryStorage(options),
  sqlite: (t, options = {}) => openSqliteStorage(t.testdir(), options),
  postgres: async (_t, options = {}) => openPostgresStorage({ url: await (await testPostgres()).createDatabase(), ...options }),
};

/** A contract suite: every test of one port, run against one backend. */
export type Contract = (t: Test, makeStorage: MakeStorage) => void;

/** Runs `contract` once per backend, each as its own subtest of `t`. */
export function overBackends(t: Test, port: string, contract: Contract): void {
  for (const [name, make] of Object.entries(BACKENDS)) {
    t.test(`${name} storage: ${port} contract`, async (t) => contract(t, make));
  }
}

/** The clock every contract pins, so stored times can be checked exactly. */
export const NOW = 1_700_000_000_000;

/** Opens a Storage for `t` with the pinned clock, closed when `t` ends. */
export async function openFor(t: Test, makeStorage: MakeStorage): Promise<Storage> {
  const storage = await makeStorage(t, { now: () => NOW });
  t.teardown(() => storage.close());
  return storage;
}

/** Well-formed but fake credentials: the contracts are about storing, not deriving. */
export function creds(tag: string): StoredCredentials {
  const one = (h: string) => ({ salt: `${tag}-${h}-salt`, iterations: 4096, storedKey: `${tag}-${h}-sk`, serverKey: `${tag}-${h}-svk` });
  return { 'SCRAM-SHA-1': one('1'), 'SCRAM-SHA-256': one('256') };
}

/** Creates the accounts `names` on example.com (the per-account stores need their account, as SQLite's foreign keys do). */
export async function withAccounts(storage: Storage, ...names: string[]): Promise<void> {
  const credentials = await deriveStoredCredentials('pw', 4096);
  for (const n of names) await storage.users.create('example.com', n, credentials);
}

/** Runs one statement on the backend's database through a connection of its own, as an operator's SQL shell; `?` placeholders. */
export type RawSql = (sql: string, params: readonly unknown[]) => Promise<void>;

/**
 * An operator's UPDATE of alice's credentials column (no setCredentials): her last change of credentials
 * becomes the clock's time unless the UPDATE set it itself, an UPDATE leaving them as they were changes
 * nothing, and the change log records the change. `storage`'s clock is pinned at 1000 (her creation).
 */
export async function credentialsChangedBySql(t: Test, storage: Storage, sql: RawSql): Promise<void> {
  await storage.users.create('example.com', 'alice', creds('alice'));
  const changedAt = async (): Promise<number | undefined> => (await storage.users.get('example.com', 'alice'))?.credentialsChangedAt;
  t.equal(await changedAt(), 1000, 'created at 1000');
  const { cursor } = await storage.users.changesSince(undefined);
  const before = Date.now();
  await sql('UPDATE users SET credentials = ? WHERE host = ? AND username = ?', [JSON.stringify(creds('new')), 'example.com', 'alice']);
  t.same((await storage.users.get('example.com', 'alice'))?.credentials, creds('new'));
  const stamped = (await changedAt())!;
  t.ok(stamped >= before && stamped <= Date.now() + 1000, `the UPDATE stamped the change (${stamped}, the UPDATE ran from ${before})`);
  t.same((await storage.users.changesSince(cursor)).changes, [{ host: 'example.com', username: 'alice', change: 'credentials' }], 'and the change log has it');
  await sql('UPDATE users SET credentials = ?, credentials_changed_at = ? WHERE host = ? AND username = ?', [JSON.stringify(creds('third')), 5000, 'example.com', 'alice']);
  t.equal(await changedAt(), 5000, 'a time the UPDATE sets itself is kept');
  await sql('UPDATE users SET credentials = credentials WHERE host = ? AND username = ?', ['example.com', 'alice']);
  t.equal(await changedAt(), 5000, 'credentials written back unchanged are no change');
}

/**
 * A data directory whose SQLite file has every migration before `migration` (counted from 1) and
 * the accounts `users` on example.com: a test of what `migration` does to what was stored before
 * it. `old` is open for the test's own rows; close it before opening the storage on `dir`.
 */
export function sqliteBefore(t: Test, migration: number, users: readonly string[]): { dir: string; file: string; old: Database.Database } {
  const dir = t.testdir();
  const file = join(dir, DATABASE_FILE);
  const old = new Database(file);
  migrate(old, MIGRATIONS.slice(0, migration - 1));
  const user = old.prepare("INSERT INTO users (host, username, credentials, created_at) VALUES ('example.com', ?, '{}', 0)");
  for (const name of users) user.run(name);
  return { dir, file, old };
}

/**
 * Every Storage backend the contract suites run over, and what the suites
 * share. A new backend is one more entry in BACKENDS: every
 * `<port>.test.ts` loops over them all. PostgreSQL runs one throw-away
 * server per test file (started on first use, stopped when the file's
 * tests end) and a fresh database per storage opened.
 */
import tap, { type Test } from 'tap';
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

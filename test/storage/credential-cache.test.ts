/**
 * CREDENTIAL_CACHE_BYTES on PostgreSQL: a user's credentials are read from
 * the database once per process, then from memory (a login that reads
 * nothing), until any writer changes or deletes the account: the trigger's
 * NOTIFY (migration 8) drops it in every process that keeps it. Bounded in
 * bytes; serves nothing while its listening connection is down (news of a
 * change may be lost then). The accounts contract holds with it on.
 */
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { openPostgresStorage, type Storage } from '../../src/storage/index.js';
import { accountsContract } from './accounts.contract.js';
import { creds, testPostgres } from './backends.js';
import { eventually } from '../helpers/eventually.js';
import { createCredentialCache } from '../../src/storage/credential-cache.js';
import { createMemoryUserStore } from '../../src/storage/memory/accounts.js';

const CACHE = 1024 * 1024;

t.test('postgres with a credential cache: accounts contract', async (t) => {
  accountsContract(t, async (_t, options = {}) => openPostgresStorage({ url: await (await testPostgres()).createDatabase(), credentialCacheBytes: CACHE, ...options }));
});

/** The text of a statement as node-postgres' Client.query takes it. */
const textOf = (arg: unknown): string => (typeof arg === 'string' ? arg : String((arg as { text?: unknown } | undefined)?.text ?? ''));

/** How many statements the process's pools send while `fn` runs (node-postgres' Client.query), the change log's readings aside. */
async function statementsOf(fn: () => Promise<unknown>): Promise<number> {
  let count = 0;
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    if (!textOf(args[0]).includes('account_changes')) count++;
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
  try {
    await fn();
  } finally {
    pg.Client.prototype.query = original;
  }
  return count;
}

/**
 * Two gateway processes with the cache and a CLI without, on one database. `served(s)`: resolves once a reading
 * of s's change log came back quickly, so that its cache serves from memory for a while (it serves only within
 * a second of a reading's start: on a loaded machine a late reading suspends it, and a check of "no statement"
 * right then failed in CI though the entry was held).
 */
async function threeProcesses(t: Test, cacheBytes = CACHE): Promise<{ url: string; a: Storage; b: Storage; cli: Storage; served(s: Storage): Promise<void> }> {
  const url = await (await testPostgres()).createDatabase();
  const [a, b, cli] = await Promise.all([
    openPostgresStorage({ url, credentialCacheBytes: cacheBytes }), openPostgresStorage({ url, credentialCacheBytes: cacheBytes }), openPostgresStorage({ url }),
  ]);
  const followers = [a, b].map(followChangeLog);
  t.teardown(async () => {
    for (const f of followers) f.stop();
    await Promise.all([a.close(), b.close(), cli.close()]);
  });
  await Promise.all(followers.map((f) => f.first));
  return { url, a, b, cli, served: (s) => followers[s === a ? 0 : 1]!.quick() };
}

/**
 * Reads the change log every 100 ms as the gateway does every 500 (features/account-changes.ts): the cache
 * serves from memory only while it is read. `first`: the first reading done; `quick()`: resolves after the next
 * reading that took under QUICK_MS (the cache then serves for at least a second less that).
 */
const QUICK_MS = 200;
function followChangeLog(s: Storage): { first: Promise<void>; quick(): Promise<void>; stop(): void } {
  let cursor: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const waiting: Array<() => void> = [];
  const read = async (): Promise<void> => {
    const began = performance.now();
    try {
      cursor = (await s.users.changesSince(cursor)).cursor;
      if (performance.now() - began < QUICK_MS) for (const done of waiting.splice(0)) done();
    } catch { /* closed, or the next reading tells */ }
    if (!stopped) timer = setTimeout(() => void read(), 100);
  };
  return { first: read(), quick: () => new Promise<void>((done) => { waiting.push(done); }), stop() { stopped = true; clearTimeout(timer); } };
}

const storedKey = async (s: Storage, user: string) => (await s.users.get('example.com', user))?.credentials['SCRAM-SHA-256'].storedKey;

t.test('a second read of the same account sends no statement; an unknown user is asked every time', async (t) => {
  const { a, cli, served } = await threeProcesses(t);
  await cli.users.create('example.com', 'alice', creds('alice'));
  // A read while the cache is suspended is not kept either: both reads come right after a quick reading.
  await served(a);
  t.equal(await statementsOf(() => a.users.get('example.com', 'alice')), 1, 'the first read goes to PostgreSQL');
  await served(a);
  t.equal(await statementsOf(() => a.users.get('example.com', 'alice')), 0, 'the second comes from memory');
  t.equal(await storedKey(a, 'alice'), 'alice-256-sk', 'and is what was stored');
  t.equal(await statementsOf(() => a.users.get('example.com', 'nobody')), 1);
  t.equal(await statementsOf(() => a.users.get('example.com', 'nobody')), 1, 'a guessed name is never kept');
});

t.test('a password changed or an account deleted by another process is dropped from every cache', async (t) => {
  const { a, b, cli, served } = await threeProcesses(t);
  await cli.users.create('example.com', 'alice', creds('old'));
  await cli.users.create('example.com', 'bob', creds('bob'));
  await Promise.all([served(a), served(b)]);
  for (const s of [a, b]) t.equal(await storedKey(s, 'alice'), 'old-256-sk');
  await served(b);
  t.equal(await statementsOf(() => b.users.get('example.com', 'alice')), 0, 'held in memory');
  await cli.users.setCredentials('example.com', 'alice', creds('new'));
  // NOTIFY reaches the listeners when the writer's transaction commits: no poll interval to wait out.
  for (const s of [a, b]) await eventually(async () => (await storedKey(s, 'alice')) === 'new-256-sk', { timeout: 2000, message: 'the new credentials' });
  await cli.users.delete('example.com', 'alice');
  for (const s of [a, b]) await eventually(async () => (await s.users.get('example.com', 'alice')) === undefined, { timeout: 2000, message: 'the account gone' });
  await served(a);
  t.equal(await statementsOf(() => a.users.get('example.com', 'bob')), 1, "bob's first read");
  await served(a);
  t.equal(await statementsOf(() => a.users.get('example.com', 'bob')), 0, 'another account stays held');
});

t.test("a change through the process's own store is dropped before the write resolves", async (t) => {
  const { a } = await threeProcesses(t);
  await a.users.create('example.com', 'carol', creds('old'));
  t.equal(await storedKey(a, 'carol'), 'old-256-sk');
  await a.users.setCredentials('example.com', 'carol', creds('new'));
  t.equal(await storedKey(a, 'carol'), 'new-256-sk');
  await a.users.delete('example.com', 'carol');
  t.equal(await a.users.get('example.com', 'carol'), undefined);
});

t.test('the cache holds at most its bytes, least recently used out', async (t) => {
  // About 560 bytes an account with these short fake keys: 4 KiB holds a few, never 20.
  const { a, cli, served } = await threeProcesses(t, 4096);
  const names = Array.from({ length: 20 }, (_, i) => `u${i}`);
  await cli.users.createMany(names.map((n) => ({ host: 'example.com', username: n, credentials: creds(n) })));
  await served(a);
  for (const n of names) await a.users.get('example.com', n);
  await served(a);
  t.equal(await statementsOf(() => a.users.get('example.com', 'u19')), 0, 'the last one read is held');
  t.equal(await statementsOf(() => a.users.get('example.com', 'u0')), 1, 'the first one read was dropped');
  let held = 0;
  await served(a);
  for (const n of names) held += (await statementsOf(() => a.users.get('example.com', n))) === 0 ? 1 : 0;
  t.ok(held > 0 && held < 8, `a few held, not all (${held} of 20)`);
});

t.test('while the listening connection is down nothing is served from memory; a change made then is seen', async (t) => {
  const { url, a, cli, served } = await threeProcesses(t);
  await cli.users.create('example.com', 'dave', creds('old'));
  await served(a);
  await a.users.get('example.com', 'dave');
  await served(a);
  t.equal(await statementsOf(() => a.users.get('example.com', 'dave')), 0, 'held');
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  t.teardown(() => admin.end());
  const killed = await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'");
  t.equal(killed.rowCount, 2, 'the listening connections (one per process with a cache: a and b) were cut');
  await eventually(async () => (await statementsOf(() => a.users.get('example.com', 'dave'))) === 1, { timeout: 2000, message: 'reads go to PostgreSQL again' });
  await cli.users.setCredentials('example.com', 'dave', creds('new'));
  t.equal(await storedKey(a, 'dave'), 'new-256-sk', 'the change made meanwhile is read');
  // Listening again (LISTEN_RETRY_MS): the account is held once more.
  await eventually(async () => (await statementsOf(() => a.users.get('example.com', 'dave'))) === 0, { timeout: 5000, message: 'held again after the reconnect' });
  await cli.users.setCredentials('example.com', 'dave', creds('third'));
  await eventually(async () => (await storedKey(a, 'dave')) === 'third-256-sk', { timeout: 2000, message: 'notified again' });
});

t.test('a change read from the change log is forgotten, whether or not its NOTIFY came first', async (t) => {
  // The store's own writer stands in for another process whose NOTIFY has not arrived: the cache hears of
  // the change only through the log, which account-changes.ts reads before it reads the account again.
  const inner = createMemoryUserStore(Date.now);
  const cache = createCredentialCache(inner, { maxBytes: CACHE });
  await inner.create('example.com', 'erin', creds('old'));
  const { cursor } = await cache.users.changesSince();
  t.equal((await cache.users.get('example.com', 'erin'))?.credentials['SCRAM-SHA-256'].storedKey, 'old-256-sk');
  await inner.setCredentials('example.com', 'erin', creds('new'));
  t.equal((await cache.users.get('example.com', 'erin'))?.credentials['SCRAM-SHA-256'].storedKey, 'old-256-sk', 'held while no news came');
  const next = await cache.users.changesSince(cursor);
  t.same(next.changes.map((c) => c.username), ['erin']);
  t.equal((await cache.users.get('example.com', 'erin'))?.credentials['SCRAM-SHA-256'].storedKey, 'new-256-sk', 'read again after the log told of it');
});

t.test('until the change log is read, and while a reading of it fails, nothing is served from memory; two reasons suspend it at once', async (t) => {
  const inner = createMemoryUserStore(Date.now);
  let failing = false;
  let reads = 0;
  const store = {
    ...inner,
    get: (host: string, username: string) => { reads++; return inner.get(host, username); },
    changesSince: (cursor?: number) => (failing ? Promise.reject(new Error('the database does not answer')) : inner.changesSince(cursor)),
  };
  // A bound no test run reaches: here the readings' outcomes decide, not the clock.
  const cache = createCredentialCache(store, { maxBytes: CACHE, logBoundMs: 3_600_000 });
  await inner.create('example.com', 'frank', creds('old'));
  const readsOf = async (n: number): Promise<number> => {
    const before = reads;
    for (let i = 0; i < n; i++) t.equal((await cache.users.get('example.com', 'frank'))?.credentials['SCRAM-SHA-256'].storedKey, 'old-256-sk');
    return reads - before;
  };
  t.equal(await readsOf(2), 2, 'before the change log was read, every login reads the store');
  let { cursor } = await cache.users.changesSince();
  t.equal(await readsOf(2), 1, 'once it was read, the credentials are held');
  failing = true;
  await t.rejects(cache.users.changesSince(cursor), /does not answer/, 'a reading fails');
  t.equal(await readsOf(2), 2, 'while it fails, every login reads the store');
  failing = false;
  ({ cursor } = await cache.users.changesSince(cursor));
  t.equal(await readsOf(2), 0, 'a reading that succeeds: what was held is served again (the reading forgot what changed meanwhile)');
  // A change while the readings fail is forgotten by the one that succeeds, before anything is served again.
  failing = true;
  await t.rejects(cache.users.changesSince(cursor));
  await inner.setCredentials('example.com', 'frank', creds('newer'));
  failing = false;
  ({ cursor } = await cache.users.changesSince(cursor));
  t.equal((await cache.users.get('example.com', 'frank'))?.credentials['SCRAM-SHA-256'].storedKey, 'newer-256-sk', 'a change made while the log failed: read again');
  await inner.setCredentials('example.com', 'frank', creds('old'));
  ({ cursor } = await cache.users.changesSince(cursor));
  t.equal(await readsOf(2), 1, 'and held again once read');
  cache.suspend('listener');
  failing = true;
  await t.rejects(cache.users.changesSince(cursor));
  failing = false;
  ({ cursor } = await cache.users.changesSince(cursor));
  t.equal(await readsOf(2), 2, 'the log read again, the listener still down: nothing held');
  cache.resume('listener');
  t.equal(await readsOf(2), 1, 'both resumed: held');
  cache.suspend('listener');
  t.equal(await readsOf(1), 1);
  failing = true;
  await t.rejects(cache.users.changesSince(cursor));
  cache.resume('listener');
  t.equal(await readsOf(2), 2, 'the listener back, the log failing: nothing held');
});

t.test('the listening connection has TCP keepalive: a peer gone without FIN or RST is noticed', async (t) => {
  const { url } = await threeProcesses(t);
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  t.teardown(() => admin.end());
  const { rows } = await admin.query<{ client_port: number }>(
    "SELECT client_port FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'");
  t.equal(rows.length, 2, 'a and b listen');
  // /proc/net/tcp: local address, remote address, state, queues, then the timer running ("02": keepalive).
  // The table is the whole machine's: the connection is the established one ("01") from that port to
  // PostgreSQL's (another process's closed socket on the same port, in TIME_WAIT, is not it).
  const pgPort = Number(new URL(url).port);
  const port = (address: string | undefined) => (address === undefined ? NaN : parseInt(address.split(':')[1]!, 16));
  const sockets = readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/));
  for (const { client_port } of rows) {
    const mine = sockets.find((f) => port(f[1]) === client_port && port(f[2]) === pgPort && f[3] === '01');
    t.ok(mine, `the socket of port ${client_port}`);
    t.equal(mine?.[5]?.split(':')[0], '02', `port ${client_port}: its keepalive timer runs`);
  }
});

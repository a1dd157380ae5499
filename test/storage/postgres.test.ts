/**
 * What only the PostgreSQL backend can show, whatever the port: N processes
 * opening one empty database at once (the migrations' advisory lock), the
 * schema recorded once and kept across reopening, a refused newer schema, a
 * failed step rolled back, and two pools (two gateway processes) sharing
 * one offline quota; the reads of a login as one named statement each; an
 * archive write that fails for a moment tried again, and stored once; two
 * processes appending to one archive, or issuing FAST tokens, at once.
 */
import t, { type Test as TapTest } from 'tap';
import pg from 'pg';
import { openPostgresStorage, type Storage } from '../../src/storage/index.js';
import { migratePostgres, MIGRATION_LOCK_KEY, PG_MIGRATIONS, QUERY_GRACE_MS, type PgMigration } from '../../src/storage/postgres/index.js';
import { creds, credentialsChangedBySql, testPostgres, withAccounts } from './backends.js';
import { numbered } from '../../src/storage/archive-sql.js';
import { createArchiveWriter } from '../../src/xmpp/features/mam/writer.js';
import { eventually, sleep } from '../helpers/eventually.js';
import { holdLock } from '../helpers/postgres.js';
import { entriesOf, RECIPIENT, SENDER, type ArchiveRecord } from '../../src/storage/ports/archive-pack.js';

async function query<R extends pg.QueryResultRow>(url: string, sql: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql)).rows;
  } finally {
    await client.end();
  }
}

const versions = async (url: string) =>
  (await query<{ version: number }>(url, 'SELECT version FROM schema_version ORDER BY version')).map((r) => r.version);

t.test('postgres: processes opening one empty database at once all start, and the schema is applied once', async (t) => {
  const url = await (await testPostgres()).createDatabase();
  const opened: Storage[] = await Promise.all(Array.from({ length: 4 }, () => openPostgresStorage({ url })));
  t.teardown(() => Promise.all(opened.map((s) => s.close())));
  t.same(await versions(url), PG_MIGRATIONS.map((m) => m.version), 'each migration recorded once');
  await opened[0]!.users.create('example.com', 'alice', creds('alice'));
  t.same((await opened[3]!.users.get('example.com', 'alice'))!.credentials, creds('alice'), 'all of them use the one schema');
});

t.test('postgres: data and schema survive reopening; a second open applies nothing', async (t) => {
  const url = await (await testPostgres()).createDatabase();
  const first = await openPostgresStorage({ url });
  await withAccounts(first, 'alice');
  await first.offline.push('example.com', 'alice', '<message/>', 10);
  await first.close();
  const second = await openPostgresStorage({ url });
  t.teardown(() => second.close());
  t.equal(await second.offline.count('example.com', 'alice'), 1);
  t.same(await versions(url), PG_MIGRATIONS.map((m) => m.version), 'still each migration once');
});

t.test('postgres migrations: only new steps, idempotent, a newer schema refused, a failed step rolled back', async (t) => {
  const url = await (await testPostgres()).createDatabase();
  const pool = new pg.Pool({ connectionString: url });
  t.teardown(() => pool.end());
  const steps: PgMigration[] = [
    { version: 1, name: 'a', sql: 'CREATE TABLE a (x INTEGER)' },
    { version: 2, name: 'b', sql: 'CREATE TABLE b (x INTEGER)' },
  ];
  t.same(await migratePostgres(pool, steps.slice(0, 1)), { from: 0, to: 1 });
  t.same(await migratePostgres(pool, steps), { from: 1, to: 2 }, 'applies only the new step');
  t.same(await migratePostgres(pool, steps), { from: 2, to: 2 }, 'idempotent');
  await t.rejects(migratePostgres(pool, steps.slice(0, 1)), /schema version 2 is newer/, 'refuses a newer database');
  const failing = [...steps, { version: 3, name: 'bad', sql: 'CREATE TABLE c (x INTEGER); SELECT no_such_function()' }];
  await t.rejects(migratePostgres(pool, failing), /no_such_function/);
  t.same(await query(url, "SELECT 1 FROM pg_tables WHERE tablename = 'c'"), [], 'the failed step rolled back');
  t.same(await versions(url), [1, 2]);
  await t.rejects(migratePostgres(pool, [steps[1]!]), /has version 2, expected 1/, 'numbering must be contiguous');
});

t.test('postgres: two pools (two gateway processes) pushing to one account share one quota', async (t) => {
  const url = await (await testPostgres()).createDatabase();
  const [first, second] = await Promise.all([openPostgresStorage({ url }), openPostgresStorage({ url })]);
  t.teardown(async () => { await first.close(); await second.close(); });
  await withAccounts(first, 'alice');
  const quota = { maxMessages: 100, maxBytes: 5 * 20 };
  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? second : first).offline.push('example.com', 'alice', `<message>${i % 10}</message>`, quota)));
  t.equal(results.filter(Boolean).length, 5, 'five fit, whichever pool pushed them');
  t.same(await second.offline.usage('example.com', 'alice'), { messages: 5, bytes: 100 });
});

t.test('postgres: an account change made through another pool (the CLI) reaches a watcher', async (t) => {
  const url = await (await testPostgres()).createDatabase();
  const [server, cli] = await Promise.all([openPostgresStorage({ url }), openPostgresStorage({ url })]);
  t.teardown(async () => { await server.close(); await cli.close(); });
  await server.users.create('example.com', 'bob', creds('bob'));
  const start = await server.users.changesSince();
  await cli.users.delete('example.com', 'bob');
  t.same((await server.users.changesSince(start.cursor)).changes, [{ host: 'example.com', username: 'bob', change: 'deleted' }]);
});

/** Every statement the pool sends while `fn` runs (node-postgres' Client.query, which Pool.query also goes through). */
async function statementsOf(fn: () => Promise<unknown>): Promise<{ text: string; named: boolean }[]> {
  const seen: { text: string; named: boolean }[] = [];
  const original = pg.Client.prototype.query;
  const spy = function (this: pg.Client, config: unknown, ...rest: unknown[]) {
    const named = typeof config === 'object' && config !== null && 'name' in config;
    seen.push({ text: typeof config === 'string' ? config : String((config as { text?: unknown }).text), named });
    return (original as (...a: unknown[]) => unknown).call(this, config, ...rest);
  };
  pg.Client.prototype.query = spy as typeof original;
  try {
    await fn();
  } finally {
    pg.Client.prototype.query = original;
  }
  return seen;
}

// Each statement is a network round trip to the server (bench/RESULTS.md, "Cluster": a cluster
// login read its roster as BEGIN, three SELECTs and COMMIT), and a named one is planned once per connection.
// The roster and the blocklist, asked together as the accounts service does, are one statement.
t.test('postgres: the reads of a login are two named statements', async (t) => {
  const url = await (await testPostgres()).createDatabase();
  const s = await openPostgresStorage({ url });
  t.teardown(() => s.close());
  await withAccounts(s, 'alice');
  await s.rosters.putItem('example.com', 'alice', { jid: 'bob@example.com', name: 'Bob', groups: ['G'], subscription: 'both', ask: false, approved: false }, 3);
  await s.rosters.putPending('example.com', 'alice', { jid: 'pat@example.com', stanza: '<presence/>' });
  await s.blocklists.add('example.com', 'alice', ['eve@example.com']);
  let loaded: unknown[] = [];
  const statements = await statementsOf(async () => {
    loaded = [await s.users.get('example.com', 'alice'), ...await Promise.all([s.rosters.load('example.com', 'alice'), s.blocklists.list('example.com', 'alice')])];
  });
  t.equal(statements.length, 2, `the credentials, then roster and blocklist together (${statements.map((q) => q.text.trim().split(/\s+/)[0]).join(', ')})`);
  t.ok(statements.every((q) => q.named), 'all of them named (prepared once per connection)');
  t.same(loaded.slice(1), [
    { version: 3, items: [{ jid: 'bob@example.com', name: 'Bob', groups: ['G'], subscription: 'both', ask: false, approved: false }], pending: [{ jid: 'pat@example.com', stanza: '<presence/>' }] },
    ['eve@example.com'],
  ], 'and they read what was written');
});

t.test('postgres: reads of one account asked at once share one statement, each caller with its own copy; other accounts are not merged', async (t) => {
  const url = await (await testPostgres()).createDatabase();
  const s = await openPostgresStorage({ url });
  t.teardown(() => s.close());
  await withAccounts(s, 'alice', 'bob');
  await s.rosters.putItem('example.com', 'alice', { jid: 'bob@example.com', name: 'Bob', groups: [], subscription: 'both', ask: false, approved: false }, 1);
  await s.blocklists.add('example.com', 'bob', ['eve@example.com']);
  let got: Awaited<ReturnType<Storage['rosters']['load']>>[] = [];
  let lists: string[][] = [];
  const statements = await statementsOf(async () => {
    const [r1, r2, l1, l2] = await Promise.all([
      s.rosters.load('example.com', 'alice'), s.rosters.load('example.com', 'alice'),
      s.blocklists.list('example.com', 'alice'), s.blocklists.list('example.com', 'bob'),
    ]);
    got = [r1, r2];
    lists = [l1, l2];
  });
  t.equal(statements.length, 2, "alice's two rosters and blocklist in one statement, bob's blocklist in another");
  t.same(lists, [[], ['eve@example.com']]);
  t.same(got[0], got[1]);
  got[0]!.items[0]!.groups.push('changed');
  t.same(got[1]!.items[0]!.groups, [], 'each caller its own copy');
  await t.rejects(statementsOf(async () => { await s.close(); await Promise.all([s.rosters.load('example.com', 'alice'), s.blocklists.list('example.com', 'alice')]); }),
    'a failed statement fails every caller waiting for it');
});

t.test('postgres: an unreachable server fails the open, naming the cause', async (t) => {
  await t.rejects(openPostgresStorage({ url: 'postgres://nobody@127.0.0.1:1/none' }), /ECONNREFUSED/);
});

t.test('postgres: an archive write failing for a moment is committed by a retry; a batch committed already is not stored twice', async (t) => {
  const url = await (await testPostgres()).createDatabase();
  const storage = await openPostgresStorage({ url });
  t.teardown(() => storage.close());
  await withAccounts(storage, 'alice', 'bob');
  // A real failure of the statement while the flag row exists (a trigger raising an error).
  await query(url, `CREATE TABLE fail_archive (x INTEGER);
    CREATE FUNCTION fail_archive() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF EXISTS (SELECT 1 FROM fail_archive) THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;
    CREATE TRIGGER fail_archive BEFORE INSERT ON archive FOR EACH ROW EXECUTE FUNCTION fail_archive();
    INSERT INTO fail_archive VALUES (1)`);
  let retries = 0;
  const writer = createArchiveWriter(storage.archive, 1 << 30, { onRetry: () => { retries++; } });
  const record = (id: string, key: number): ArchiveRecord =>
    ({ key, id, at: 1000 + key, sender: 'bob@example.com', receiver: 'alice@example.com', sides: RECIPIENT | SENDER, stanza: `<message xmlns="jabber:client" id="${id}"><body>x</body></message>` });
  const written = writer.write(record('m1', 1));
  await eventually(() => retries >= 2, { interval: 20, message: 'two retries' });
  await query(url, 'DELETE FROM fail_archive');
  await t.resolves(written, 'committed once the statement works again');
  const ids = async (user: string) => {
    const page = await storage.archive.query('example.com', user, { limit: 10, direction: 'forward' });
    return page === 'item-not-found' ? [] : page.messages.map((m) => m.id);
  };
  t.same(await ids('alice'), ['m1'], "in the recipient's archive");
  t.same(await ids('bob'), ['m1'], "in the sender's archive");
  // A batch committed, then tried again because its answer was lost: its rows are there once.
  const again = entriesOf(record('m2', 2));
  await storage.archive.append(again);
  await t.resolves(storage.archive.append(again), 'the same entries again are not an error');
  t.same(await ids('alice'), ['m1', 'm2'], 'stored once');
  t.same(await ids('bob'), ['m1', 'm2']);
});

/**
 * Holds the first statement starting with `prefix` (its answer, so its locks are taken) until
 * the returned `release` is called; `held` tells when it got there. Undone when `t` ends.
 */
function holdAfter(t: TapTest, prefix: string): { held: () => boolean; release: () => void } {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  let held = false;
  const original = pg.Client.prototype.query;
  const pausing = function (this: pg.Client, config: unknown, ...rest: unknown[]) {
    const result = (original as (...a: unknown[]) => unknown).call(this, config, ...rest);
    const text = typeof config === 'string' ? config : String((config as { text?: unknown }).text);
    if (held || !text.trimStart().startsWith(prefix) || !(result instanceof Promise)) return result;
    held = true;
    return result.then(async (r) => { await gate; return r; });
  };
  pg.Client.prototype.query = pausing as typeof original;
  t.teardown(() => { pg.Client.prototype.query = original; });
  return { held: () => held, release };
}

/** Runs `write` held after its statement `prefix`, deletes alice meanwhile (through another pool, as the CLI), and expects both to succeed. */
async function writeWhileDeleting(t: TapTest, url: string, server: Storage, cli: Storage, prefix: string, write: () => Promise<unknown>): Promise<void> {
  const hold = holdAfter(t, prefix);
  const written = write();
  await eventually(() => hold.held(), { message: `the write to reach ${prefix}` });
  const deleted = cli.users.delete('example.com', 'alice');
  await eventually(async () => (await query<{ n: string }>(url,
    "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"))[0]!.n !== '0', { message: 'the deletion to wait for a lock' });
  hold.release();
  const [write_, deletion] = await Promise.allSettled([written, deleted]);
  t.same([write_.status, deletion.status], ['fulfilled', 'fulfilled'],
    [write_, deletion].map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')).join('; '));
  t.equal(await server.users.get('example.com', 'alice'), undefined, 'the account is gone');
}

t.test('postgres: an offline push and the deletion of its account at the same moment do not deadlock', async (t) => {
  const url = await (await testPostgres()).createDatabase();
  const [server, cli] = await Promise.all([openPostgresStorage({ url }), openPostgresStorage({ url })]);
  t.teardown(async () => { await server.close(); await cli.close(); });
  await withAccounts(server, 'alice');
  t.equal(await server.offline.push('example.com', 'alice', '<message>1</message>', 10), true);
  // The push held right after its counter statement (the account's counter row locked).
  await writeWhileDeleting(t, url, server, cli, 'INSERT INTO offline_counters', () => server.offline.push('example.com', 'alice', '<message>2</message>', 10));
  t.same(await server.offline.usage('example.com', 'alice'), { messages: 0, bytes: 0 }, 'with its messages and their count');
});

t.test('postgres: a roster change and the deletion of its account at the same moment do not deadlock', async (t) => {
  const url = await (await testPostgres()).createDatabase();
  const [server, cli] = await Promise.all([openPostgresStorage({ url }), openPostgresStorage({ url })]);
  t.teardown(async () => { await server.close(); await cli.close(); });
  await withAccounts(server, 'alice');
  const item = { jid: 'bob@example.com', name: undefined, subscription: 'none' as const, ask: true, approved: false, groups: [] };
  await server.rosters.putItem('example.com', 'alice', item, 1);
  // The change held right after its item statement (the item's row locked), before the version's.
  await writeWhileDeleting(t, url, server, cli, 'INSERT INTO roster_items', () => server.rosters.putItem('example.com', 'alice', { ...item, subscription: 'to', ask: false }, 2));
  t.same(await server.rosters.load('example.com', 'alice'), { version: 0, items: [], pending: [] }, 'with its roster');
});

t.test('postgres: a FAST token used and the deletion of its account at the same moment do not deadlock', async (t) => {
  const url = await (await testPostgres()).createDatabase();
  const [server, cli] = await Promise.all([openPostgresStorage({ url }), openPostgresStorage({ url })]);
  t.teardown(async () => { await server.close(); await cli.close(); });
  await withAccounts(server, 'alice');
  const agent = '11111111-1111-4111-8111-111111111111';
  const token = (storedKey: string) => ({ host: 'example.com', username: 'alice', agent, mechanism: 'HT-SHA-256-NONE', storedKey, serverKey: 'sk', expiresAt: 2_000_000_000_000 });
  await server.fastTokens.issue(token('k1'), 10);
  await server.fastTokens.used('example.com', 'alice', agent, 'k1');
  await server.fastTokens.issue(token('k2'), 10);
  // The login's rotation held right after it locked the 'new' token, with a 'current' one beside it.
  await writeWhileDeleting(t, url, server, cli, 'SELECT * FROM fast_tokens', () => server.fastTokens.used('example.com', 'alice', agent, 'k2'));
  t.equal(await server.fastTokens.find('example.com', 'alice', 'k2'), undefined, 'with its tokens');
});

t.test('postgres: two processes appending to one archive at once: paging after the last id seen misses nothing', async (t) => {
  // XEP-0313 §5.1 catching up: a client pages after the last id it has. The archive's order is
  // its seq (an identity, taken at insert), so an append that took a seq and had not committed
  // yet while a later one had would appear behind the id the client already paged past, and
  // never reach it: each append commits in the order of its seqs (SQLite's one writer does).
  const url = await (await testPostgres()).createDatabase();
  const [one, two] = await Promise.all([openPostgresStorage({ url }), openPostgresStorage({ url })]);
  t.teardown(async () => { await one.close(); await two.close(); });
  await withAccounts(one, 'alice');
  const entry = (id: string, at: number) => ({ host: 'example.com', username: 'alice', id, with: 'bob@example.com', at, stanza: `<message xmlns="jabber:client"><body>${id}</body></message>` });
  const page = async (after?: string) => {
    const p = await one.archive.query('example.com', 'alice', { limit: 50, direction: 'forward', ...(after === undefined ? {} : { page: { after } }) });
    return p === 'item-not-found' ? ['item-not-found'] : p.messages.map((m) => m.id);
  };
  const hold = holdAfter(t, 'INSERT INTO archive');
  const slow = one.archive.append([entry('slow', 1000)]);
  await eventually(() => hold.held(), { message: 'the first append to insert its row' });
  let fastDone = false;
  const fast = two.archive.append([entry('fast', 1001)]).finally(() => { fastDone = true; });
  // The second append has committed, or waits for the first.
  await eventually(async () => fastDone || (await query<{ n: string }>(url,
    "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"))[0]!.n !== '0', { message: 'the second append to commit or wait' });
  const seen = await page();
  hold.release();
  await Promise.all([slow, fast]);
  const rest = await page(seen.at(-1));
  t.same([...seen, ...rest].sort(), ['fast', 'slow'], `every message reached the client (first page ${JSON.stringify(seen)}, then ${JSON.stringify(rest)})`);
  t.same(await page(), ['slow', 'fast'], 'in the order they were appended');
});

t.test('postgres: two processes issuing FAST tokens to one account at once keep it within maxAgents', async (t) => {
  // XEP-0484 tokens per account are bounded (FastTokenStore.issue): each issue inserts, then drops the
  // agents past the bound. Two processes doing so at once each saw only its own new row.
  const url = await (await testPostgres()).createDatabase();
  const [one, two] = await Promise.all([openPostgresStorage({ url }), openPostgresStorage({ url })]);
  t.teardown(async () => { await one.close(); await two.close(); });
  await withAccounts(one, 'alice');
  const token = (agent: string, storedKey: string, expiresAt: number) => ({ host: 'example.com', username: 'alice', agent, mechanism: 'HT-SHA-256-NONE', storedKey, serverKey: 'sk', expiresAt });
  const hold = holdAfter(t, 'DELETE FROM fast_tokens WHERE host = $1 AND username = $2 AND agent IN');
  const first = one.fastTokens.issue(token('11111111-1111-4111-8111-111111111111', 'k1', 2_000_000_001_000), 1);
  await eventually(() => hold.held(), { message: 'the first issue to have dropped what is past the bound' });
  let secondDone = false;
  const second = two.fastTokens.issue(token('22222222-2222-4222-8222-222222222222', 'k2', 2_000_000_002_000), 1).finally(() => { secondDone = true; });
  await eventually(async () => secondDone || (await query<{ n: string }>(url,
    "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"))[0]!.n !== '0', { message: 'the second issue to commit or wait' });
  hold.release();
  await Promise.all([first, second]);
  const agents = await query<{ agent: string }>(url, 'SELECT DISTINCT agent FROM fast_tokens ORDER BY agent');
  t.same(agents.map((r) => r.agent), ['22222222-2222-4222-8222-222222222222'], 'one agent, the one whose token expires last');
});

t.test('postgres: migration 10 gives an account from before it its creation time as its last change of credentials', async (t) => {
  const url = await (await testPostgres()).createDatabase();
  const pool = new pg.Pool({ connectionString: url });
  await migratePostgres(pool, PG_MIGRATIONS.slice(0, 9));
  await pool.query("INSERT INTO users (host, username, credentials, created_at) VALUES ('example.com', 'alice', $1, 1234)", [JSON.stringify(creds('alice'))]);
  await pool.end();
  const storage = await openPostgresStorage({ url });
  t.teardown(() => storage.close());
  t.equal((await storage.users.get('example.com', 'alice'))!.credentialsChangedAt, 1234);
});

t.test('postgres: with a statement bound, a read behind a held lock fails; the migrations and the retention sweeps wait theirs out', async (t) => {
  const url = await (await testPostgres()).createDatabase();
  const BOUND_MS = 300;
  const WAIT_MS = BOUND_MS + QUERY_GRACE_MS + 1000;
  // Another process migrating (or an operator) holds the migrations' lock longer than the bound.
  const migrating = await holdLock(t, url, 'SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
  const opening = openPostgresStorage({ url, statementTimeoutMs: BOUND_MS });
  await sleep(WAIT_MS);
  await migrating.release();
  const storage = await opening;
  t.teardown(() => storage.close());
  t.same(await versions(url), PG_MIGRATIONS.map((m) => m.version), 'the open waited for the lock and migrated');

  await withAccounts(storage, 'alice');
  await storage.archive.append([1, 2, 3].map((n) => ({ host: 'example.com', username: 'alice', id: `m${n}`, with: 'bob@example.com', at: 1000 + n, stanza: '<message/>' })));
  // A sweep's DELETE waits for a SHARE lock (a long report, a backup) longer than the bound: it is not cut.
  for (const [what, sweep, left] of [
    ['trim', () => storage.archive.trim('example.com', 'alice', 2, 100), 2],
    ['expire', () => storage.archive.expire(2000, 100), 0],
  ] as const) {
    const reading = await holdLock(t, url, 'LOCK TABLE archive IN SHARE MODE');
    const swept = sweep();
    await sleep(WAIT_MS);
    await reading.release();
    await swept;
    t.equal((await query<{ n: string }>(url, 'SELECT count(*) AS n FROM archive'))[0]!.n, String(left), `${what}: done once the lock was released`);
  }

  const stalled = await holdLock(t, url, 'LOCK TABLE users IN ACCESS EXCLUSIVE MODE');
  await t.rejects(storage.users.get('example.com', 'alice'), /statement timeout/, "a login's read fails with PostgreSQL's statement timeout");
  await stalled.release();
  t.ok(await storage.users.get('example.com', 'alice'), 'and works once the lock is gone');
});

t.test('postgres: credentials changed by an UPDATE in SQL stamp their change, as setCredentials does', async (t) => {
  const url = await (await testPostgres()).createDatabase();
  const storage = await openPostgresStorage({ url, now: () => 1000 });
  t.teardown(() => storage.close());
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  t.teardown(() => admin.end());
  await credentialsChangedBySql(t, storage, async (sql, params) => { await admin.query(numbered(sql), [...params]); });
});

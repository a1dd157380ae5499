/**
 * What only the SQLite backend's file can show, whatever the port: data and
 * schema survive reopening, the directory and file permissions, the
 * migrations, and a second connection (the CLI while the server runs).
 */
import t from 'tap';
import { chmodSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { openSqliteStorage, DATABASE_FILE } from '../../src/storage/index.js';
import { migrate, MIGRATIONS, type Migration } from '../../src/storage/sqlite/migrations.js';
import { creds, credentialsChangedBySql, sqliteBefore } from './backends.js';
import { archiveIdFor, KEYS_PER_MS } from '../../src/storage/ports/archive-ids.js';
import { ArchivePack, RECIPIENT, unpack, type ArchiveRecord } from '../../src/storage/ports/archive-pack.js';
import type { ArchiveQuery } from '../../src/storage/index.js';

t.test('sqlite: data and schema survive reopening', async (t) => {
  const dir = t.testdir();
  const first = openSqliteStorage(dir);
  await first.users.create('example.com', 'alice', creds('alice'));
  await first.close();

  const second = openSqliteStorage(dir);
  t.teardown(() => second.close());
  t.same((await second.users.get('example.com', 'alice'))!.credentials, creds('alice'));

  const db = new Database(join(dir, DATABASE_FILE), { readonly: true });
  t.teardown(() => db.close());
  const versions = db.prepare<[], { version: number }>('SELECT version FROM schema_migrations ORDER BY version').all();
  t.same(versions.map((v) => v.version), MIGRATIONS.map((m) => m.version), 'each migration recorded once');
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal');
});

t.test('sqlite: creates a missing data directory', async (t) => {
  const dir = join(t.testdir(), 'nested', 'data');
  const storage = openSqliteStorage(dir);
  await storage.close();
  t.ok(readdirSync(dir).includes(DATABASE_FILE));
});

t.test('sqlite: the database and its WAL files are owner-only, also in an existing 0755 directory with an old 0644 file', async (t) => {
  // A mounted volume: the directory exists already (mkdir's 0700 never applies), with a file an older version left 0644.
  const dir = t.testdir();
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, DATABASE_FILE), '', { mode: 0o644 });
  chmodSync(join(dir, DATABASE_FILE), 0o644);
  const storage = openSqliteStorage(dir);
  await storage.users.create('example.com', 'alice', creds('alice'));
  const files = readdirSync(dir).filter((f) => f.startsWith(DATABASE_FILE));
  t.ok(files.includes(`${DATABASE_FILE}-wal`), 'the WAL file exists while open');
  for (const f of files) t.equal(statSync(join(dir, f)).mode & 0o777, 0o600, `${f} is 0600`);
  await storage.close();

  const fresh = t.testdir();
  chmodSync(fresh, 0o755);
  const second = openSqliteStorage(fresh);
  await second.users.create('example.com', 'bob', creds('bob'));
  for (const f of readdirSync(fresh)) t.equal(statSync(join(fresh, f)).mode & 0o777, 0o600, `new ${f} is 0600`);
  await second.close();
});

t.test('migrate', async (t) => {
  const db = new Database(':memory:');
  t.teardown(() => db.close());
  const steps: Migration[] = [
    { version: 1, name: 'a', up: (d) => d.exec('CREATE TABLE a (x INTEGER) STRICT') },
    { version: 2, name: 'b', up: (d) => d.exec('CREATE TABLE b (x INTEGER) STRICT') },
  ];
  t.same(migrate(db, steps.slice(0, 1)), { from: 0, to: 1 });
  t.same(migrate(db, steps), { from: 1, to: 2 }, 'applies only the new step');
  t.same(migrate(db, steps), { from: 2, to: 2 }, 'idempotent');
  t.throws(() => migrate(db, steps.slice(0, 1)), /schema version 2 is newer/, 'refuses a newer database');

  const failing: Migration[] = [...steps, { version: 3, name: 'bad', up: (d) => { d.exec('CREATE TABLE c (x)'); throw new Error('boom'); } }];
  t.throws(() => migrate(db, failing), /boom/);
  t.equal(db.prepare('SELECT name FROM sqlite_master WHERE name = ?').get('c'), undefined, 'failed step rolled back');

  t.throws(() => migrate(db, [steps[1]!]), /has version 2, expected 1/, 'numbering must be contiguous');
});

t.test('sqlite: a second connection sees writes (CLI while the server runs)', async (t) => {
  const dir = t.testdir();
  const server = openSqliteStorage(dir);
  const cli = openSqliteStorage(dir);
  t.teardown(async () => { await server.close(); await cli.close(); });

  t.same(await server.users.list(), [], 'server reads first, holding the file open');
  await cli.users.create('example.com', 'bob', creds('bob'));
  t.same((await server.users.get('example.com', 'bob'))!.credentials, creds('bob'));
  await server.users.setCredentials('example.com', 'bob', creds('bob2'));
  t.same((await cli.users.get('example.com', 'bob'))!.credentials, creds('bob2'));
  await cli.users.delete('example.com', 'bob');
  t.equal(await server.users.get('example.com', 'bob'), undefined);
});

t.test('sqlite: migration 10 keeps an archive of random ids, found by id and time, with new seq-carrying rows after it', async (t) => {
  const dir = t.testdir();
  const file = join(dir, DATABASE_FILE);
  const old = new Database(file);
  migrate(old, MIGRATIONS.slice(0, 9));
  old.prepare("INSERT INTO users (host, username, credentials, created_at) VALUES ('example.com', 'alice', ?, 0)").run(JSON.stringify(creds('alice')));
  const insert = old.prepare("INSERT INTO archive (host, username, id, with_jid, at, stanza) VALUES ('example.com', 'alice', ?, 'bob@example.com', ?, '<message/>')");
  for (let i = 1; i <= 3; i++) insert.run(`Rnd0m${i}`, 1_700_000_000_000 + 1000 * i);
  old.close();

  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  const at = 1_800_000_000_000;
  const key = at * KEYS_PER_MS;
  await storage.archive.append([{ host: 'example.com', username: 'alice', id: archiveIdFor(key), seq: 2 * key, with: 'bob@example.com', at, stanza: '<message/>' }]);
  const ids = async (q: Partial<ArchiveQuery>) => {
    const page = await storage.archive.query('example.com', 'alice', { limit: 10, direction: 'forward', ...q });
    return page === 'item-not-found' ? page : page.messages.map((m) => m.id);
  };
  const all = await ids({});
  t.same(Array.isArray(all) ? all.slice(0, 3) : all, ['Rnd0m1', 'Rnd0m2', 'Rnd0m3'], 'the old rows kept');
  t.match(Array.isArray(all) ? all[3] : '', new RegExp(`^${key.toString(36)}\\.`), 'the new one after them');
  t.equal(all.length, 4);
  t.same(await ids({ afterId: 'Rnd0m1', end: 1_700_000_002_500 }), ['Rnd0m2'], 'an old id and an old time still resolve');
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  const indexes = db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'archive' AND sql IS NOT NULL ORDER BY name").all().map((r) => r.name);
  t.same(indexes, ['archive_by_account', 'archive_by_legacy_id', 'archive_by_legacy_time', 'archive_by_with'], 'no index on id or time for new rows');
  const plan = db.prepare("EXPLAIN QUERY PLAN SELECT seq FROM archive WHERE host = 'example.com' AND username = 'alice' AND id = 'Rnd0m2' AND instr(id, '.') = 0").all() as Array<{ detail: string }>;
  t.match(plan.map((p) => p.detail).join(' '), /archive_by_legacy_id/, 'an old id is looked up on its partial index');
  const rows = db.prepare<[], { n: number }>("SELECT COUNT(*) AS n FROM archive INDEXED BY archive_by_legacy_id WHERE instr(id, '.') = 0").get();
  t.equal(rows?.n, 3, 'the partial index holds the old rows only');
});

t.test('sqlite: migration 11 writes a message once for both accounts, and reads the rows written before it with the new ones', async (t) => {
  const { dir, file, old } = sqliteBefore(t, 11, ['alice', 'bob']);
  // Under migration 10: a random id from before it, and a message numbered by the server (both copies).
  old.prepare("INSERT INTO archive (host, username, id, with_jid, at, stanza) VALUES ('example.com', 'alice', 'Rnd0m1', 'bob@example.com', 1700000000000, '<message/>')").run();
  const at10 = 1_750_000_000_000;
  const key10 = at10 * KEYS_PER_MS;
  const id10 = archiveIdFor(key10);
  const put10 = old.prepare("INSERT INTO archive (seq, host, username, id, with_jid, at, stanza) VALUES (?, 'example.com', ?, ?, ?, ?, '<message/>')");
  put10.run(2 * key10, 'alice', id10, 'bob@example.com', at10);
  put10.run(2 * key10 + 1, 'bob', id10, 'alice@example.com', at10);
  old.close();

  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  t.equal(await storage.archive.newestAt?.(), at10, 'numbering goes on after the older rows');
  // Five messages bob → alice after the migration, as the server writes them.
  const made = [1, 2, 3, 4, 5].map((i) => ({ at: 1_800_000_000_000 + i, key: (1_800_000_000_000 + i) * KEYS_PER_MS })).map((m) => ({ ...m, id: archiveIdFor(m.key) }));
  await storage.archive.append(made.flatMap((m) => [
    { host: 'example.com', username: 'alice', id: m.id, seq: 2 * m.key, with: 'bob@example.com', at: m.at, stanza: `<message>${m.key}</message>` },
    { host: 'example.com', username: 'bob', id: m.id, seq: 2 * m.key + 1, with: 'alice@example.com', at: m.at, stanza: `<message>${m.key}</message>` },
  ]));
  const n = made.map((m) => m.id);
  const ids = async (username: string, q: Partial<ArchiveQuery>) => {
    const page = await storage.archive.query('example.com', username, { limit: 10, direction: 'forward', ...q });
    return page === 'item-not-found' ? page : page.messages.map((m) => m.id);
  };
  t.same(await ids('alice', {}), ['Rnd0m1', id10, ...n], "alice's: the older rows, then the new, in order");
  t.same(await ids('bob', {}), [id10, ...n], "bob's");
  t.same(await ids('alice', { direction: 'backward', limit: 3, page: { before: n[1] } }), ['Rnd0m1', id10, n[0]], 'a backward page across both tables');
  t.same(await ids('alice', { afterId: id10, limit: 2 }), n.slice(0, 2), 'after an id of the older table');
  t.same(await ids('bob', { with: 'alice@example.com', ids: [n[3]!, id10] }), [id10, n[3]], 'ids from both tables, with a with filter');
  t.match(await storage.archive.query('example.com', 'alice', { limit: 2, direction: 'forward' }), { count: 7, complete: false }, 'counted over both');
  t.same(await storage.archive.bounds('example.com', 'bob'), { first: { id: id10, with: 'alice@example.com', at: at10 }, last: { id: n[4], with: 'alice@example.com', at: made[4]!.at } });

  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM archive_messages').get() as { n: number }).n, 5, 'one row per message');
  t.same(db.prepare('SELECT DISTINCT sides FROM archive_messages').all(), [{ sides: 3 }], 'each kept by both accounts');
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM archive').get() as { n: number }).n, 3, 'the older table written no more, nothing moved out of it');
  // Since migration 17 an account's archive is its runs: one per account and correspondent per commit, here the one append.
  const jid = (j: string) => (db.prepare('SELECT id FROM archive_jids WHERE jid = ?').get(j) as { id: number }).id;
  const [alice, bob] = [jid('alice@example.com'), jid('bob@example.com')];
  const runs = db.prepare('SELECT owner, peer, last - first AS span, json_array_length(seqs) AS n FROM archive_runs ORDER BY owner, peer').all();
  const span = 2 * (made[4]!.key - made[0]!.key);
  t.same(runs, [
    { owner: alice, peer: 0, span, n: 5 }, { owner: alice, peer: bob, span, n: 5 },
    { owner: bob, peer: 0, span, n: 5 }, { owner: bob, peer: alice, span, n: 5 },
  ].sort((a, b) => a.owner - b.owner || a.peer - b.peer), "each account's copies, whole and with its correspondent");
  t.same(db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'archive_messages'").all(), [], 'no index on the rows: they append at the right edge');
  // A page of an archive of any size: the runs below a seq, on the primary key, no sort.
  const plan = db.prepare('EXPLAIN QUERY PLAN SELECT last, first, seqs FROM archive_runs WHERE owner = 1 AND peer = 0 AND last < 99 ORDER BY last DESC').all() as Array<{ detail: string }>;
  const detail = plan.map((p) => p.detail).join(' | ');
  t.match(detail, /SEARCH archive_runs USING PRIMARY KEY \(owner=\? AND peer=\? AND last<\?\)/, 'a range of the primary key');
  t.notMatch(detail, /TEMP B-TREE/, 'no sort');
});

t.test('sqlite: an online backup completes while the archive thread keeps committing', async (t) => {
  const dir = t.testdir();
  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  await storage.users.create('example.com', 'alice', creds('alice'));
  await storage.users.create('example.com', 'bob', creds('bob'));
  // About 10,000 pages: the backup API copies 100 a step, and a step after a commit by another
  // connection (the archive thread's) starts the copy again from the first page.
  const filler = `<message>${'x'.repeat(3800)}</message>`;
  for (let i = 0; i < 10_000; i++) await storage.offline.push('example.com', 'bob', filler, 100_000);
  const base = 1_800_000_000_000;
  let committed = 0;
  const archiveOne = () => {
    const key = (base + committed) * KEYS_PER_MS;
    committed++;
    return storage.archive.append([{ host: 'example.com', username: 'alice', id: archiveIdFor(key), seq: 2 * key, with: 'bob@example.com', at: base + committed, stanza: '<message/>' }]);
  };
  for (let i = 0; i < 10; i++) await archiveOne();
  const file = join(dir, 'copy.sqlite');
  writeFileSync(file, '', { mode: 0o600 });
  let done = false;
  const backup = storage.backup!(file).finally(() => { done = true; });
  // Messages keep being archived, one commit each, while the backup runs: at most this many.
  const CAP = 5000;
  const before = committed;
  while (!done && committed - before < CAP) await archiveOne();
  await backup;
  t.ok(committed - before < CAP, `the backup finished while the writes went on (${committed - before} commits meanwhile)`);
  const copy = new Database(file, { readonly: true });
  t.teardown(() => copy.close());
  t.equal(copy.pragma('integrity_check', { simple: true }), 'ok');
  t.equal((copy.prepare('SELECT COUNT(*) AS n FROM offline_messages').get() as { n: number }).n, 10_000, 'everything written before it is in the copy');
});

/**
 * Another connection (the archive thread, a CLI command) takes the write lock in a thread of its
 * own and holds it for `ms` (well under the busy timeout), then commits.
 */
async function holdWriteLock(file: string, ms: number): Promise<Worker> {
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    const db = new (require(workerData.module))(workerData.file);
    db.exec('BEGIN IMMEDIATE');
    parentPort.postMessage('locked');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, workerData.ms);
    db.exec('COMMIT');
    db.close();
  `, { eval: true, workerData: { file, ms, module: createRequire(import.meta.url).resolve('better-sqlite3') } });
  await new Promise((resolve) => worker.once('message', resolve));
  return worker;
}

t.test('sqlite: a write that reads first waits for the write lock another connection holds (PEP publish)', async (t) => {
  const dir = t.testdir();
  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  await storage.users.create('example.com', 'alice', creds('alice'));
  await storage.pep.configure('example.com', 'alice', 'urn:xmpp:avatar:metadata', { accessModel: 'presence', persistItems: true, maxItems: 10, rosterGroupsAllowed: [] });
  const holder = await holdWriteLock(join(dir, DATABASE_FILE), 200);
  t.teardown(() => holder.terminate());
  // A deferred transaction that reads first cannot wait in the busy handler when it goes on to write: SQLITE_BUSY at once.
  await storage.pep.publish('example.com', 'alice', 'urn:xmpp:avatar:metadata', { id: 'a1', payload: '<metadata/>' }, 10);
  t.same(await storage.pep.items('example.com', 'alice', 'urn:xmpp:avatar:metadata'), [{ id: 'a1', payload: '<metadata/>' }], 'published once the lock was free');
});

t.test('sqlite: migration 15 gives an account from before it its creation time as its last change of credentials', async (t) => {
  const dir = t.testdir();
  const old = new Database(join(dir, DATABASE_FILE));
  migrate(old, MIGRATIONS.slice(0, 14));
  old.prepare("INSERT INTO users (host, username, credentials, created_at) VALUES ('example.com', 'alice', ?, 1234)").run(JSON.stringify(creds('alice')));
  old.close();
  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  t.equal((await storage.users.get('example.com', 'alice'))!.credentialsChangedAt, 1234);
});

t.test('sqlite: credentials changed by an UPDATE in SQL stamp their change, as setCredentials does', async (t) => {
  const dir = t.testdir();
  const storage = openSqliteStorage(dir, { now: () => 1000 });
  t.teardown(() => storage.close());
  // The operator's sqlite3 shell: another connection to the file.
  const admin = new Database(join(dir, DATABASE_FILE));
  t.teardown(() => admin.close());
  await credentialsChangedBySql(t, storage, async (sql, params) => { admin.prepare(sql).run(...params); });
});

t.test('sqlite: the archive thread commits packed records without detaching them from the event loop', async (t) => {
  // A transferred ArrayBuffer is detached, and once one is, V8 checks every typed-array access of the
  // event loop for it, for good (archive-pack.ts): the chunks are shared with the thread instead.
  const dir = t.testdir();
  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  await storage.users.create('example.com', 'alice', creds('alice'));
  const base = 1_800_000_000_000;
  const pack = new ArchivePack();
  const records = Array.from({ length: 300 }, (_, i): ArchiveRecord => {
    const key = (base + i) * KEYS_PER_MS;
    return { key, id: archiveIdFor(key), at: base + i, sender: 'bob@example.com', receiver: 'alice@example.com', sides: RECIPIENT, stanza: `<message><body>${i} ${'x'.repeat(50)}</body></message>` };
  });
  for (const r of records) pack.add(r);
  const views = pack.views();
  const lengths = views.map((v) => v.byteLength);
  t.ok(views.length > 1, `several chunks (${views.length})`);
  await storage.archive.appendPacked!(views);
  t.same(views.map((v) => v.byteLength), lengths, 'every chunk is still whole here (none detached)');
  t.same([...unpack(views)], records, 'and still reads as what was packed');
  const page = await storage.archive.query('example.com', 'alice', { limit: 500, direction: 'forward' });
  t.equal(page === 'item-not-found' ? -1 : page.messages.length, 300, 'all committed by the thread');
});

/**
 * What only the SQLite backend's file can show, whatever the port: data and
 * schema survive reopening, the directory and file permissions, the
 * migrations, and a second connection (the CLI while the server runs).
 */
import t from 'tap';
import { chmodSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteStorage, DATABASE_FILE } from '../../src/storage/index.js';
import { migrate, MIGRATIONS, type Migration } from '../../src/storage/sqlite/migrations.js';
import { creds } from './backends.js';

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

/**
 * One contract suite run over every Storage backend, plus what only the
 * SQLite file can show: persistence, migrations, a second connection, and
 * that no password ever reaches the disk.
 */
import t, { type Test } from 'tap';
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  createMemoryStorage, deriveStoredCredentials, InvalidPasswordError, openSqliteStorage,
  UserExistsError, UserNotFoundError, DATABASE_FILE,
  type Storage, type StoredCredentials,
} from '../../src/storage/index.js';
import { migrate, MIGRATIONS, type Migration } from '../../src/storage/sqlite/migrations.js';
import { verifyPassword } from '../../src/sasl/scram.js';

const NOW = 1_700_000_000_000;

/** Well-formed but fake credentials: the contract is about storing, not deriving. */
function creds(tag: string): StoredCredentials {
  const one = (h: string) => ({ salt: `${tag}-${h}-salt`, iterations: 4096, storedKey: `${tag}-${h}-sk`, serverKey: `${tag}-${h}-svk` });
  return { 'SCRAM-SHA-1': one('1'), 'SCRAM-SHA-256': one('256') };
}

type Open = (t: Test) => Storage;

const backends: Record<string, Open> = {
  memory: () => createMemoryStorage({ now: () => NOW }),
  sqlite: (t) => openSqliteStorage(t.testdir(), { now: () => NOW }),
};

// Code point order puts U+1F600 (a surrogate pair in UTF-16) after U+FFFD; UTF-16 order would not.
const SORT_CASES = [['b', 'example.com'], ['\u{1F600}', 'example.com'], ['a', 'example.com'], ['\uFFFD', 'example.com'], ['z', 'a.example']];

for (const [name, open] of Object.entries(backends)) {
  t.test(`${name} storage: UserStore contract`, async (t) => {
    const storage = open(t);
    t.teardown(() => storage.close());
    const users = storage.users;

    t.test('get of an unknown user is undefined', async (t) => {
      t.equal(await users.get('example.com', 'nobody'), undefined);
    });

    t.test('create then get returns the record', async (t) => {
      await users.create('example.com', 'alice', creds('alice'));
      t.same(await users.get('example.com', 'alice'), { host: 'example.com', username: 'alice', credentials: creds('alice'), createdAt: NOW });
      t.equal(await users.get('other.org', 'alice'), undefined, 'hosts are separate');
    });

    t.test('a returned record is a copy', async (t) => {
      const record = await users.get('example.com', 'alice');
      record!.credentials['SCRAM-SHA-1'].storedKey = 'tampered';
      t.equal((await users.get('example.com', 'alice'))!.credentials['SCRAM-SHA-1'].storedKey, 'alice-1-sk');
    });

    t.test('creating an existing user throws UserExistsError', async (t) => {
      await t.rejects(users.create('example.com', 'alice', creds('again')), UserExistsError);
      const err = await users.create('example.com', 'alice', creds('again')).catch((e: unknown) => e);
      t.match(err, { host: 'example.com', username: 'alice', message: "user 'alice@example.com' already exists" });
      t.same((await users.get('example.com', 'alice'))!.credentials, creds('alice'), 'unchanged');
    });

    t.test('setCredentials replaces them; unknown user throws', async (t) => {
      await users.setCredentials('example.com', 'alice', creds('new'));
      t.same((await users.get('example.com', 'alice'))!.credentials, creds('new'));
      await t.rejects(users.setCredentials('example.com', 'ghost', creds('x')), UserNotFoundError);
      t.equal(await users.get('example.com', 'ghost'), undefined, 'not created by setCredentials');
    });

    t.test('delete removes; unknown user throws', async (t) => {
      await users.create('example.com', 'doomed', creds('d'));
      await users.delete('example.com', 'doomed');
      t.equal(await users.get('example.com', 'doomed'), undefined);
      await t.rejects(users.delete('example.com', 'doomed'), UserNotFoundError);
    });

    t.test('list is sorted by host then username, optionally one host', async (t) => {
      await users.delete('example.com', 'alice');
      for (const [u, h] of SORT_CASES) await users.create(h!, u!, creds(u!));
      t.same(await users.list(), [
        { host: 'a.example', username: 'z' },
        { host: 'example.com', username: 'a' },
        { host: 'example.com', username: 'b' },
        { host: 'example.com', username: '\uFFFD' },
        { host: 'example.com', username: '\u{1F600}' },
      ]);
      t.same(await users.list('a.example'), [{ host: 'a.example', username: 'z' }]);
      t.same(await users.list('nowhere'), []);
    });

    t.test('createMany creates all', async (t) => {
      await users.createMany([]);
      await users.createMany([
        { host: 'batch.example', username: 'u1', credentials: creds('u1') },
        { host: 'batch.example', username: 'u2', credentials: creds('u2') },
      ]);
      t.same((await users.list('batch.example')).map((u) => u.username), ['u1', 'u2']);
      t.equal((await users.get('batch.example', 'u2'))!.createdAt, NOW);
    });

    t.test('changesSince reports deletions and new credentials after the cursor, oldest first', async (t) => {
      const start = await users.changesSince();
      t.same(start.changes, [], 'a new watcher starts at the current end');
      await users.create('watch.example', 'w1', creds('w1'));
      await users.create('watch.example', 'w2', creds('w2'));
      await users.setCredentials('watch.example', 'w1', creds('w1-new'));
      await users.delete('watch.example', 'w2');
      const next = await users.changesSince(start.cursor);
      t.same(next.changes, [
        { host: 'watch.example', username: 'w1', change: 'credentials' },
        { host: 'watch.example', username: 'w2', change: 'deleted' },
      ], 'creating an account is not a change its sessions must answer to');
      t.same((await users.changesSince(next.cursor)).changes, [], 'nothing twice');
    });

    t.test('createMany with an existing user creates nothing', async (t) => {
      const err = await users.createMany([
        { host: 'atomic.example', username: 'fresh1', credentials: creds('f1') },
        { host: 'batch.example', username: 'u2', credentials: creds('dup') },
        { host: 'batch.example', username: 'u1', credentials: creds('dup') },
      ]).catch((e: unknown) => e);
      t.type(err, UserExistsError);
      t.match(err, { host: 'batch.example', username: 'u2' }, 'names the first duplicate');
      t.same(await users.list('atomic.example'), [], 'nothing created');
      t.same((await users.get('batch.example', 'u2'))!.credentials, creds('u2'), 'existing untouched');
    });

    t.test('createMany with a user twice in the batch creates nothing', async (t) => {
      const err = await users.createMany([
        { host: 'atomic.example', username: 'x', credentials: creds('x') },
        { host: 'atomic.example', username: 'y', credentials: creds('y') },
        { host: 'atomic.example', username: 'x', credentials: creds('x2') },
      ]).catch((e: unknown) => e);
      t.match(err, { name: 'UserExistsError', host: 'atomic.example', username: 'x' });
      t.same(await users.list('atomic.example'), []);
    });

    t.test('close is idempotent', async (t) => {
      const other = open(t);
      await other.close();
      await other.close();
      t.pass();
    });
  });
}

t.test('deriveStoredCredentials', async (t) => {
  const c = await deriveStoredCredentials('correct horse', 4096);
  t.ok(await verifyPassword('sha1', c['SCRAM-SHA-1'], 'correct horse'));
  t.ok(await verifyPassword('sha256', c['SCRAM-SHA-256'], 'correct horse'));
  t.notOk(await verifyPassword('sha256', c['SCRAM-SHA-256'], 'wrong'));
  t.equal(c['SCRAM-SHA-1'].iterations, 4096);
  t.not(c['SCRAM-SHA-1'].salt, c['SCRAM-SHA-256'].salt, 'each hash gets its own salt');
  await t.rejects(deriveStoredCredentials('', 4096), InvalidPasswordError);
  await t.rejects(deriveStoredCredentials('bell\u0007', 4096), InvalidPasswordError, 'SASLprep-prohibited');
});

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

t.test('sqlite: malformed stored credentials fail loudly', async (t) => {
  const dir = t.testdir();
  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  await storage.users.create('example.com', 'eve', creds('eve'));
  const raw = new Database(join(dir, DATABASE_FILE));
  raw.prepare("UPDATE users SET credentials = '{}'").run();
  raw.close();
  await t.rejects(storage.users.get('example.com', 'eve'), /malformed/);
});

t.test('sqlite: no password ever reaches the database files', async (t) => {
  const dir = t.testdir();
  const passwords = ['Tr0ub4dor&3-first', 'correct-horse-battery-second'];
  const bytesOnDisk = (): Buffer => Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
  const assertAbsent = (when: string): void => {
    const bytes = bytesOnDisk();
    for (const p of passwords) {
      t.equal(bytes.indexOf(Buffer.from(p, 'utf8')), -1, `${when}: '${p}' absent (utf8)`);
      t.equal(bytes.indexOf(Buffer.from(p, 'utf16le')), -1, `${when}: '${p}' absent (utf16)`);
    }
  };

  const storage = openSqliteStorage(dir);
  await storage.users.create('example.com', 'alice', await deriveStoredCredentials(passwords[0]!, 4096));
  await storage.users.createMany([{ host: 'example.com', username: 'bob', credentials: await deriveStoredCredentials(passwords[0]!, 4096) }]);
  await storage.users.setCredentials('example.com', 'alice', await deriveStoredCredentials(passwords[1]!, 4096));
  assertAbsent('while open (WAL not yet checkpointed)');
  const stored = (await storage.users.get('example.com', 'alice'))!.credentials;
  t.ok(await verifyPassword('sha256', stored['SCRAM-SHA-256'], passwords[1]!), 'stored keys still verify after the round trip');
  await storage.close();
  assertAbsent('after close');
});

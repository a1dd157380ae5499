/**
 * backup and restore with the built CLI: an online backup by the running
 * server while a client keeps filling offline storage, then a restore into a
 * stopped server's DATA_DIR, and the refusals.
 */
import t from 'tap';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteStorage, DATABASE_FILE } from '../../src/storage/sqlite/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { chat, routed } from '../helpers/sm-peer.js';
import { privateDir, runCli } from '../helpers/admin-cli.js';
import { PassThrough } from 'node:stream';
import { runCli as runCliHere } from '../../src/cli/main.js';

const dataDir = privateDir(t);
const env = { DATA_DIR: dataDir };
const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true', DATA_DIR: dataDir }, openSqliteStorage(dataDir), { adminSocket: join(dataDir, 'admin.sock') });

const integrity = (file: string): string => {
  const db = new Database(file, { readonly: true });
  try {
    return String(db.pragma('integrity_check', { simple: true }));
  } finally {
    db.close();
  }
};

t.test('an online backup while messages are being stored, restored into a stopped server', async (t) => {
  const alice = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => alice.ws.terminate());
  await alice.login('alice', 'alice-pw', 'web');
  // bob is offline: every message is written to offline storage, during the backup too.
  let sent = 0;
  let writing = true;
  const loop = (async () => {
    while (writing && sent < 5000) {
      alice.send(chat('bob@localhost', `m${sent}`));
      sent++;
      if (sent % 20 === 0) await routed(alice, `p${sent}`);
    }
    await routed(alice, 'last');
  })();
  while (sent < 40) await new Promise((resolve) => setTimeout(resolve, 5));
  const backupDir = join(privateDir(t), 'nightly');
  const run = await runCli(['backup', backupDir], env);
  writing = false;
  await loop;
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /online, by the running server/);
  const file = join(backupDir, DATABASE_FILE);
  t.equal(statSync(file).mode & 0o777, 0o600);
  t.equal(integrity(file), 'ok');

  const again = await runCli(['backup', backupDir], env);
  t.equal(again.code, 3, 'never over an existing backup');
  t.match(again.stderr, /already exists/);
  const refused = await runCli(['restore', backupDir], env);
  t.equal(refused.code, 3);
  t.match(refused.stderr, /the server is running .*admin\.sock answers.*stop it/);

  const stopped = privateDir(t);
  const before = openSqliteStorage(stopped);
  await before.close();
  const restored = await runCli(['restore', backupDir], { DATA_DIR: stopped });
  t.equal(restored.code, 0, restored.stderr);
  t.ok(readdirSync(stopped).some((f) => f.startsWith(`${DATABASE_FILE}.before-restore-`)), 'the previous file is kept aside');
  t.ok(existsSync(file), 'the backup itself is left in place');
  t.equal(integrity(join(stopped, DATABASE_FILE)), 'ok');
  const storage = openSqliteStorage(stopped);
  t.teardown(() => storage.close());
  t.same((await storage.users.list()).map((u) => u.username).sort(), ['alice', 'bob']);
  const stored = await storage.offline.count('localhost', 'bob');
  t.ok(stored >= 40 && stored <= sent, `the backup holds the ${stored} messages stored by then (of ${sent} sent)`);
});

t.test('restore refuses a database the running server has open, also with no admin socket to ask', async (t) => {
  const backupDir = join(privateDir(t), 'copy');
  const made = await runCli(['backup', backupDir], env);
  t.equal(made.code, 0, made.stderr);
  const live = join(dataDir, DATABASE_FILE);
  const before = statSync(live).ino;
  const refused = await runCli(['restore', backupDir], { ...env, ADMIN_SOCKET: 'off' });
  t.equal(refused.code, 3, refused.stderr);
  t.match(refused.stderr, /is open in another process .*stop it before restoring/);
  t.equal(statSync(live).ino, before, 'the live database was not replaced');
  t.notOk(readdirSync(dataDir).some((f) => f.includes('.before-restore-') || f.endsWith('.restoring')), 'nothing was moved aside or staged');
  // The server serves on with its database.
  const alice = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => alice.ws.terminate());
  t.equal(await alice.login('alice', 'alice-pw', 'after'), 'alice@localhost/after', 'a login after the refused restore');
});

t.test('backup and restore refuse what they cannot do well', async (t) => {
  const postgres = await runCli(['backup', privateDir(t)], { DATA_DIR: dataDir, STORAGE: 'postgres', DATABASE_URL: 'postgres://u:p@127.0.0.1:1/db' });
  t.equal(postgres.code, 3);
  t.match(postgres.stderr, /pg_dump/);
  const usage = await runCli(['backup'], env);
  t.equal(usage.code, 1);
  const empty = privateDir(t);
  const nothing = await runCli(['restore', empty], { DATA_DIR: privateDir(t) });
  t.equal(nothing.code, 3);
  t.match(nothing.stderr, /no backup at/);
});

t.test('a stopped server is backed up from its file, and a newer schema is not restored', async (t) => {
  const dir = privateDir(t);
  const storage = openSqliteStorage(dir);
  await storage.close();
  const out = join(privateDir(t), 'cold');
  const run = await runCli(['backup', out], { DATA_DIR: dir });
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /the server is not running/);
  const db = new Database(join(out, DATABASE_FILE));
  db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'from the future', 0)").run();
  db.close();
  const target = privateDir(t);
  const newer = await runCli(['restore', out], { DATA_DIR: target });
  t.equal(newer.code, 3);
  t.match(newer.stderr, /schema version 999, newer than this build's/);
  t.notOk(existsSync(join(target, DATABASE_FILE)), 'nothing was put in place');
});

t.test('backup from the file completes while another connection keeps committing (ADMIN_SOCKET=off: no server to ask)', async (t) => {
  const dir = privateDir(t);
  const storage = openSqliteStorage(dir);
  await storage.users.create('example.com', 'alice', { 'SCRAM-SHA-1': { salt: 's', iterations: 4096, storedKey: 'k', serverKey: 'v' }, 'SCRAM-SHA-256': { salt: 's', iterations: 4096, storedKey: 'k', serverKey: 'v' } });
  // About 1,000 pages: the backup API copies 100 a step, and starts again after a commit by another connection.
  for (let i = 0; i < 1000; i++) await storage.offline.push('example.com', 'alice', `<message>${'x'.repeat(3800)}</message>`, 10_000);
  await storage.close();
  // A server's connection (the file open elsewhere, its admin socket off) committing all along.
  const other = new Database(join(dir, DATABASE_FILE));
  t.teardown(() => other.close());
  other.exec('CREATE TABLE IF NOT EXISTS scratch (n INTEGER)');
  const write = other.prepare('INSERT INTO scratch (n) VALUES (?)');
  const out = new PassThrough();
  const err = new PassThrough();
  let done = false;
  const run = runCliHere(['backup', join(privateDir(t), 'nightly')], { stdin: new PassThrough(), stdout: out, stderr: err, env: { DATA_DIR: dir, ADMIN_SOCKET: 'off' } })
    .finally(() => { done = true; });
  const CAP = 3000;
  let commits = 0;
  while (!done && commits < CAP) {
    write.run(commits++);
    await new Promise((resolve) => setImmediate(resolve));
  }
  t.equal(await run, 0, String(err.read() ?? ''));
  t.ok(commits < CAP, `the copy finished while the commits went on (${commits} meanwhile)`);
});

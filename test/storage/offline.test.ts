/**
 * The offline contract over every backend, and what only SQLite can show:
 * messages survive reopening, migration 4's back-fill, counters kept by
 * triggers whatever deletes, one quota shared by two connections.
 */
import t from 'tap';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteStorage, DATABASE_FILE } from '../../src/storage/index.js';
import { overBackends, sqliteBefore, withAccounts } from './backends.js';
import { offlineContract } from './offline.contract.js';

overBackends(t, 'offline', offlineContract);

t.test('sqlite: offline messages survive reopening', async (t) => {
  const dir = t.testdir();
  const first = openSqliteStorage(dir);
  await withAccounts(first, 'alice');
  await first.offline.push('example.com', 'alice', '<message/>', 10);
  await first.close();
  const second = openSqliteStorage(dir);
  t.teardown(() => second.close());
  t.equal(await second.offline.count('example.com', 'alice'), 1);
});

t.test('sqlite: migration 4 back-fills the offline counters of messages stored before it', async (t) => {
  const { dir, old: db } = sqliteBefore(t, 4, ['alice', 'bob']);
  const insert = db.prepare("INSERT INTO offline_messages (host, username, stanza, stored_at) VALUES ('example.com', ?, ?, 0)");
  for (const stanza of ['<message>1</message>', '<message>é</message>']) insert.run('alice', stanza);
  db.close();
  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  t.same(await storage.offline.usage('example.com', 'alice'), { messages: 2, bytes: 20 + 21 });
  t.same(await storage.offline.usage('example.com', 'bob'), { messages: 0, bytes: 0 });
  t.equal(await storage.offline.push('example.com', 'alice', '<m/>', { maxMessages: 3, maxBytes: 45 }), true);
  t.equal(await storage.offline.push('example.com', 'alice', '<m/>', { maxMessages: 10, maxBytes: 48 }), false, 'the back-filled bytes count');
  t.same(await storage.offline.usage('example.com', 'alice'), { messages: 3, bytes: 45 });
});

t.test('sqlite: any DELETE of offline messages keeps the counters right (triggers, not the store code)', async (t) => {
  const dir = t.testdir();
  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  await withAccounts(storage, 'alice');
  for (const b of ['1', '22', '333']) await storage.offline.push('example.com', 'alice', `<message>${b}</message>`, 10);
  // A second connection, as another store implementation or the CLI would delete.
  const other = new Database(join(dir, DATABASE_FILE));
  other.prepare("DELETE FROM offline_messages WHERE stanza LIKE '%22%'").run();
  other.close();
  t.same(await storage.offline.usage('example.com', 'alice'), { messages: 2, bytes: 20 + 22 });
});

t.test('sqlite: two connections pushing to one account (server and CLI) share one quota', async (t) => {
  const dir = t.testdir();
  const first = openSqliteStorage(dir);
  t.teardown(() => first.close());
  await withAccounts(first, 'alice');
  const second = openSqliteStorage(dir);
  t.teardown(() => second.close());
  const quota = { maxMessages: 100, maxBytes: 5 * 20 };
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? second : first).offline.push('example.com', 'alice', `<message>${i}</message>`, quota)));
  t.equal(results.filter(Boolean).length, 5, 'five fit, whichever connection pushed them');
  t.same(await second.offline.usage('example.com', 'alice'), { messages: 5, bytes: 100 });
});

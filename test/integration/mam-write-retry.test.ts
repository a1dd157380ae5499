/**
 * The archive when its store fails for a moment: another process holds SQLite's write
 * lock past the busy timeout (an admin's shell, a backup tool), so the writer thread's
 * commit fails with SQLITE_BUSY. The batch is tried again (features/mam/writer.ts) and
 * committed once the lock goes: nothing is missing from either archive, and the
 * XEP-0198 <a/> that covers the message waits for that commit.
 */
import t from 'tap';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { enableSm, settled, startFakeServer } from '../helpers/fake-conn.js';
import { eventually } from '../helpers/eventually.js';
import { DATABASE_FILE, openSqliteStorage } from '../../src/storage/sqlite/index.js';
import { NS } from '../../src/xml/index.js';

t.test('a commit refused by a lock held past the busy timeout is made once the lock goes', async (t) => {
  const dir = t.testdir();
  const lines: Array<{ level: number; msg: string }> = [];
  const storage = openSqliteStorage(dir, { busyTimeoutMs: 20 });
  const server = await startFakeServer({ DATA_DIR: dir }, { level: 'warn', stream: { write: (line) => lines.push(JSON.parse(line)) } }, storage);
  t.teardown(() => server.close());
  for (const u of ['alice', 'bob']) await server.addUser(u);
  const alice = await server.login('alice', 'a');
  await enableSm(alice);
  const bob = await server.login('bob', 'b');
  bob.send("<presence xmlns='jabber:client'/>");
  await settled();

  const other = new Database(join(dir, DATABASE_FILE));
  t.teardown(() => { if (other.inTransaction) other.exec('ROLLBACK'); other.close(); });
  other.exec('BEGIN IMMEDIATE');
  alice.send("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m1'><body>while locked</body></message>");
  alice.send(`<r xmlns='${NS.SM}'/>`);
  await eventually(() => bob.conn.out.some((m) => m.attr('id') === 'm1'), { interval: 5, message: 'the delivery' });
  t.pass('delivered without waiting for the archive');
  // The writer thread starts first (seconds on a loaded machine): the bound is a hang guard, not a speed limit.
  await eventually(() => lines.some((l) => /trying again/.test(l.msg)), { interval: 10, timeout: 15_000, message: 'the retry' });
  t.notOk(alice.conn.out.some((el) => el.local === 'a'), 'no <a/> while the message is not in the archive');

  other.exec('COMMIT');
  await eventually(() => alice.conn.out.some((el) => el.local === 'a'), { interval: 10, timeout: 10_000, message: 'the <a/>' });
  t.equal(alice.conn.out.find((el) => el.local === 'a')!.attr('h'), '1', 'the <a/> covers the message');
  for (const user of ['alice', 'bob']) {
    const page = await storage.archive.query('localhost', user, { limit: 10, direction: 'forward' });
    t.same(page === 'item-not-found' ? page : page.messages.map((m) => /id="([^"]+)"/.exec(m.stanza)?.[1]), ['m1'], `in ${user}'s archive, once`);
  }
  t.notOk(lines.some((l) => /for good/.test(l.msg)), 'nothing given up');
});

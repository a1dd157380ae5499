/**
 * The archive writer's retry and give-up lines log the store's error, and the
 * writer holds the batch to try again with: the packed messages (once handed
 * back with the SQLite thread's error). Those are the users' messages (bodies, JIDs),
 * never a log line's business, and a batch is up to a quarter of a MiB, written
 * again at every retry. Real server on a real port, SQLite whose write lock
 * another connection holds past the busy timeout; the server's pino lines read.
 */
import t from 'tap';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { DATABASE_FILE, openSqliteStorage } from '../../src/storage/sqlite/index.js';
import { withUsers } from '../helpers/server.js';
import { websocket } from '../helpers/transport-clients.js';
import { eventually } from '../helpers/eventually.js';

/** Whether `value` holds `text`, as a string or as the bytes of a typed array JSON made into {"0": …, "1": …}. */
function holds(value: unknown, text: string): boolean {
  if (typeof value === 'string') return value.includes(text);
  if (Array.isArray(value)) return value.some((v) => holds(v, text));
  if (value === null || typeof value !== 'object') return false;
  const entries = Object.entries(value);
  if (entries.length > 0 && entries.every(([k, v]) => /^\d+$/.test(k) && typeof v === 'number')) {
    return Buffer.from(entries.map(([, v]) => v as number)).toString('latin1').includes(text);
  }
  return entries.some(([, v]) => holds(v, text));
}

t.test('a failed archive commit is logged without the messages it carried', async (t) => {
  const dir = t.testdir();
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({ write(chunk: Buffer, _e, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done(); } });
  const storage = openSqliteStorage(dir, { busyTimeoutMs: 20 });
  const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true', DATA_DIR: dir }, storage, { logger: { level: 'warn', stream: sink } });
  const alice = await websocket.connect(t, server);
  await alice.login('alice', 'alice-pw', 'a');
  const bob = await websocket.connect(t, server);
  await bob.login('bob', 'bob-pw', 'b');
  await bob.send("<presence xmlns='jabber:client'/>");

  const other = new Database(join(dir, DATABASE_FILE));
  t.teardown(() => { if (other.inTransaction) other.exec('ROLLBACK'); other.close(); });
  other.exec('BEGIN IMMEDIATE');
  await alice.send("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m1'><body>the-private-body-7f3a</body></message>");
  await bob.until((el) => el.attr('id') === 'm1');
  await eventually(() => lines.some((l) => /trying again/.test(String(l.msg))), { message: 'the retry line' });
  other.exec('COMMIT');

  const retry = lines.find((l) => /trying again/.test(String(l.msg)))!;
  t.ok(holds(retry, 'SQLITE_BUSY') || holds(retry, 'locked') || holds(retry, 'busy'), 'the line says why');
  t.notOk(lines.some((l) => holds(l, 'the-private-body-7f3a')), 'no line holds the message, as text or as bytes');
  t.notOk(lines.some((l) => holds(l, 'bob@localhost')), 'nor its addresses');
});

/**
 * Offline delivery without stream management (issue 10): a page leaves
 * storage once written, and the next page waits until the transport has
 * handed its backlog to the client (Conn.bufferedBytes and the
 * 'session-drained' hook of ConnEvents.drained), so a slow reader never
 * makes the server hold a whole backlog in its socket buffers.
 */
import t from 'tap';
import { withFakeUsers, type FakeClient } from '../helpers/fake-conn.js';
import { sleep } from '../helpers/xmppjs.js';
import { eventually, waitUntil } from '../helpers/eventually.js';
import { withUsers } from '../helpers/server.js';
import { RawBoshClient, payloads, type BoshResponse } from '../helpers/bosh-client.js';
import { NS, x } from '../../src/xml/index.js';

const messageIds = (c: FakeClient): string[] => c.conn.out.filter((el) => el.local === 'message').map((el) => el.attr('id') ?? '?');
const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `d${i}`);
/**
 * The drain poll (one second by default) for the tests of deliveries that must not wait for it: a
 * delivery that did would not finish within the test, however slow or loaded the machine.
 */
const NO_POLL = { offlineDrainPollMs: 3_600_000 };

t.test('without stream management, each page waits until the transport drains', async (t) => {
  const server = await withFakeUsers(t, ['bob']);
  for (const id of ids(120)) await server.storage.offline.push('localhost', 'bob', `<message xmlns="jabber:client" from="alice@localhost/x" to="bob@localhost" type="chat" id="${id}"><body>${id}</body></message>`, 1000);
  const bob = await server.login('bob', 'web');
  bob.conn.bufferedBytes = 10_000; // the transport has not handed everything to the client yet
  bob.send(`<presence xmlns='jabber:client'/>`);
  await eventually(() => messageIds(bob).length >= 50, { interval: 1, message: '50 messages' });
  await sleep(200);
  t.same(messageIds(bob), ids(50), 'one page while the transport is backed up');
  t.equal(await server.storage.offline.count('localhost', 'bob'), 70, 'the written page left storage');

  bob.conn.events!.drained();
  await eventually(() => messageIds(bob).length >= 100, { interval: 1, message: '100 messages' });
  await sleep(200);
  t.same(messageIds(bob), ids(100), 'one more page per drain');

  bob.conn.bufferedBytes = 0;
  bob.conn.events!.drained();
  await eventually(() => messageIds(bob).length >= 120, { interval: 1, message: '120 messages' });
  t.same(messageIds(bob), ids(120), 'the rest once the backlog is gone, in order, once');
  await waitUntil(async () => (await server.storage.offline.count('localhost', 'bob')) === 0, { timeout: 10_000 });
  t.equal(await server.storage.offline.count('localhost', 'bob'), 0, 'storage is empty after');
});

t.test('a backlog the transport hands over by itself lets the next page go at once', async (t) => {
  // As a WebSocket: its writes are corked until the next tick, and the kernel then takes them with
  // no drain signal (that comes only after the high-water mark). Before, each page then waited out
  // the one-second poll: 120 messages took over two seconds, and live ones queued behind them.
  // Here the poll is an hour (NO_POLL).
  const server = await withFakeUsers(t, ['bob'], {}, NO_POLL);
  for (const id of ids(120)) await server.storage.offline.push('localhost', 'bob', `<message xmlns="jabber:client" from="alice@localhost/x" to="bob@localhost" type="chat" id="${id}"><body>${id}</body></message>`, 1000);
  const bob = await server.login('bob', 'web');
  let backlog = 0;
  const send = bob.conn.send.bind(bob.conn);
  bob.conn.send = (el, sent) => {
    send(el, sent);
    if (backlog === 0) setImmediate(() => { backlog = 0; });
    backlog += el.toString().length;
  };
  Object.defineProperty(bob.conn, 'bufferedBytes', { get: () => backlog });
  bob.send(`<presence xmlns='jabber:client'/>`);
  await eventually(() => messageIds(bob).length >= 120, { interval: 1, timeout: 30_000, message: '120 messages without a drain signal or a poll' });
  t.same(messageIds(bob), ids(120), 'every page, in order, once');
  await waitUntil(async () => (await server.storage.offline.count('localhost', 'bob')) === 0, { timeout: 10_000 });
  t.equal(await server.storage.offline.count('localhost', 'bob'), 0, 'storage is empty after');
});

t.test('over BOSH, a response that takes the last queued page lets the next one go at once', async (t) => {
  // 500 stored messages are 10 pages; a client without XEP-0198 fetching them one request at a time.
  // Before, a page that found its predecessor still queued for the client's next request waited out
  // the one-second poll, as nothing said the queue had emptied. Here the poll is an hour (NO_POLL):
  // a request held for such a page is not answered within the client's 10 s, and fetching stops.
  const server = await withUsers(t, ['bob'], { ALLOW_INSECURE_PLAIN: 'true' }, undefined, NO_POLL);
  const expected = ids(500);
  for (const id of expected) await server.storage.offline.push('localhost', 'bob', `<message xmlns="jabber:client" from="alice@localhost/x" to="bob@localhost" type="chat" id="${id}"><body>${id}</body></message>`, 1000);
  const c = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => c.destroy());
  await c.login('bob', 'bob-pw', 'web');
  const got: string[] = [];
  let res: BoshResponse | undefined = await c.send({}, x('presence', { xmlns: NS.CLIENT }));
  for (let i = 0; i < 1000 && res && got.length < expected.length; i++) {
    got.push(...payloads(res.body).filter((el) => el.is('message')).map((el) => el.attr('id') ?? '?'));
    if (got.length < expected.length) res = await c.send().catch(() => undefined);
  }
  t.ok(res, 'every request was answered: none was held for a page waiting on the poll');
  t.same(got, expected, 'every message once, in order');
  await waitUntil(async () => (await server.storage.offline.count('localhost', 'bob')) === 0, { timeout: 10_000 });
  t.equal(await server.storage.offline.count('localhost', 'bob'), 0, 'storage is empty after');
});

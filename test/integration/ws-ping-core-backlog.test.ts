/**
 * The WebSocket pinger (RFC 6455 §5.5.2/§5.5.3) drops a peer that did not
 * answer the previous ping. While the server itself is not reading the
 * socket because the core still has too much of the session's input queued
 * (a slow store: core.ts INPUT_HIGH_BYTES), the peer's pong waits unread in
 * the socket: a live, honest client must not be dropped for that.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import { eventually } from '../helpers/eventually.js';

t.test('a client whose input waits on a slow store is not dropped by the pinger', async (t) => {
  const storage = createMemoryStorage();
  const append = storage.archive.append.bind(storage.archive);
  // The store stalls until released: the session's input queues in the core, and the transport stops reading.
  let release!: () => void;
  const stalled = new Promise<void>((resolve) => { release = resolve; });
  storage.archive.append = async (entries) => {
    await stalled;
    await append(entries);
  };
  const server = await withUsers(t, ['alice', 'bob'], {
    ALLOW_INSECURE_PLAIN: 'true', MAM_WRITE_QUEUE_BYTES: String(64 * 1024), WS_PING_INTERVAL: '1',
    MAX_INBOUND_BYTES_PER_SECOND: String(64 * 1024 * 1024), MAX_INBOUND_BURST_BYTES: String(64 * 1024 * 1024),
  }, storage);
  t.teardown(() => release());
  const bob = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'b');
  const alice = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => alice.close());
  await alice.login('alice', 'alice-pw', 'a');
  const body = 'x'.repeat(1000);
  const N = 600;
  for (let i = 0; i < N; i++) alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m${i}'><body>${i} ${body}</body></message>`);
  const session = () => [...server.app.sessions.all].find((s) => s.username === 'alice');
  await eventually(() => session()?.inputBacklogged, { message: "alice's input to back up in the core" });
  // Several ping rounds pass while the transport holds alice's input back (her pongs unread).
  let pings = 0;
  alice.ws.on('ping', () => { pings++; });
  await eventually(() => pings >= 4 || alice.closed, { timeout: 15_000, message: 'four pings, or the connection dropped' });
  t.equal(alice.closed, undefined, 'the WebSocket is still open while the server holds her input back');
  release();
  alice.send("<iq xmlns='jabber:client' type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>");
  const end = await alice.until((el) => el.name === 'iq' && el.attr('id') === 'sync', 30_000);
  t.equal(end.attr('type'), 'result', 'the session goes on');
});

/**
 * The WebSocket pinger (RFC 6455 §5.5.2/§5.5.3) drops a peer that did not
 * answer the previous ping. While the server itself is not reading the
 * socket because the core still has too much of the session's input queued
 * (a slow store: core.ts INPUT_HIGH_BYTES), the peer's pong waits unread in
 * the socket: a live, honest client must not be dropped for that, nor when
 * a ping falls due while the server gets back to reading (a loaded machine's
 * event loop runs the pinger's timer late, in between).
 */
import t from 'tap';
import type { Test } from 'tap';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import { eventually } from '../helpers/eventually.js';

/** Holds up the event loop for longer than WS_PING_INTERVAL, as a loaded machine does: a ping is due when it goes on. */
function holdEventLoop(): void {
  const until = Date.now() + 1500;
  while (Date.now() < until) { /* busy */ }
}

/**
 * Alice's input backed up in the core behind a stalled store (the transport no longer reads her
 * socket), with several ping rounds passed meanwhile and her connection still open.
 */
async function backedUp(t: Test): Promise<{ alice: RawWsClient; release: () => void }> {
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
  await eventually(() => session()?.inputBacklogged, { timeout: 30_000, message: "alice's input to back up in the core" });
  // Several ping rounds pass while the transport holds alice's input back (her pongs unread).
  let pings = 0;
  alice.ws.on('ping', () => { pings++; });
  await eventually(() => pings >= 4 || alice.closed, { timeout: 30_000, message: 'four pings, or the connection dropped' });
  t.equal(alice.closed, undefined, 'the WebSocket is still open while the server holds her input back');
  return { alice, release };
}

/** The session goes on: an IQ sent after the backlog is answered. */
async function goesOn(t: Test, alice: RawWsClient): Promise<void> {
  alice.send("<iq xmlns='jabber:client' type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>");
  const end = await alice.until((el) => el.name === 'iq' && el.attr('id') === 'sync', 30_000);
  t.equal(end.attr('type'), 'result', 'the session goes on');
}

t.test('a client whose input waits on a slow store is not dropped by the pinger', async (t) => {
  const { alice, release } = await backedUp(t);
  release();
  await goesOn(t, alice);
});

t.test('a ping that falls due while the server works through the input it took back is no reason to drop the client', async (t) => {
  const { alice, release } = await backedUp(t);
  // The core catches up at once; the transport's pump then runs the frames it holds, a few a turn, before it reads again.
  release();
  holdEventLoop();
  await goesOn(t, alice);
});

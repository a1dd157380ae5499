/**
 * A legitimate burst while the session's queue is busy (a store that slows the sender: the
 * MAM write queue full) slows the sender instead of ending the session with policy-violation
 * (core.ts MAX_QUEUED_INPUT_BYTES): past INPUT_HIGH_BYTES of queued input the transport stops
 * reading it until the core has room (found in review). Every message is delivered, in order.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import { eventually } from '../helpers/eventually.js';

t.test('a burst behind a slow archive store is slowed, not closed', async (t) => {
  const storage = createMemoryStorage();
  const append = storage.archive.append.bind(storage.archive);
  // A store that takes 300 ms per commit (a busy disk, a lock held): the writer's queue fills.
  storage.archive.append = async (entries) => {
    await new Promise((resolve) => setTimeout(resolve, 300));
    await append(entries);
  };
  const server = await withUsers(t, ['alice', 'bob'], {
    ALLOW_INSECURE_PLAIN: 'true', MAM_WRITE_QUEUE_BYTES: String(64 * 1024),
    // An operator allowing fast clients (a bot, a bridge): shaping does not hold them.
    MAX_INBOUND_BYTES_PER_SECOND: String(64 * 1024 * 1024), MAX_INBOUND_BURST_BYTES: String(64 * 1024 * 1024),
  }, storage);
  const bob = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'b');
  bob.send("<presence xmlns='jabber:client'/>");
  await bob.until((el) => el.name === 'presence');
  const alice = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => alice.close());
  await alice.login('alice', 'alice-pw', 'a');
  const body = 'x'.repeat(1000);
  const N = 1500; // about 1.5 MB
  for (let i = 0; i < N; i++) alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m${i}'><body>${i} ${body}</body></message>`);
  alice.send("<iq xmlns='jabber:client' type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>");
  const end = await alice.until((el) => (el.name === 'iq' && el.attr('id') === 'sync') || el.local === 'error', 60_000).catch((e: Error) => e);
  t.notOk(end instanceof Error ? false : end.local === 'error', `the session is not ended: ${end instanceof Error ? end.message : end.toString().slice(0, 300)}`);
  t.equal(alice.closed, undefined, 'the WebSocket is still open');
  const ids = () => bob.frames.filter((el) => el.name === 'message').map((el) => el.attr('id'));
  await eventually(() => ids().length >= N, { timeout: 60_000, message: 'every message at bob' });
  t.same(ids(), Array.from({ length: N }, (_, i) => `m${i}`), 'each once, in order');
});

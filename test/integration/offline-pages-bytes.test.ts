/**
 * A big offline backlog never ends a session: stored messages go out in pages bounded in
 * bytes as well as count (PAGE_BYTES), so what exceeds buffer_max and waits in XEP-0198's
 * pending queue stays under SM_PENDING_MAX_BYTES (before, a page of 50 large messages,
 * each within MAX_STANZA_SIZE and MAX_OFFLINE_BYTES, overflowed it: found in review).
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { SmPeer } from '../helpers/sm-peer.js';
import { eventually } from '../helpers/eventually.js';

t.test('a page of large offline messages reaches an acking client without ending its session', async (t) => {
  const server = await withUsers(t, ['bob'], { ALLOW_INSECURE_PLAIN: 'true', SM_BUFFER_MAX: '10' });
  const N = 40;
  const body = 'y'.repeat(200_000);
  for (let i = 0; i < N; i++) {
    const ok = await server.storage.offline.push('localhost', 'bob', `<message xmlns="jabber:client" from="alice@localhost/desk" to="bob@localhost" type="chat" id="o${i}"><body>${body}</body></message>`, 1000);
    t.ok(ok, `stored ${i}`);
  }
  const bob = await SmPeer.login(server.wsUrl, 'bob', 'bob-pw', 'web', { autoAck: true });
  t.teardown(() => bob.c.close());
  bob.c.send("<presence xmlns='jabber:client'/>");
  await eventually(() => bob.messageIds().length >= N || bob.c.closed, { timeout: 20_000, message: 'the messages' });
  const err = bob.c.frames.find((el) => el.local === 'error');
  t.equal(err?.toString().slice(0, 300), undefined, 'no stream error');
  t.same(bob.messageIds(), Array.from({ length: N }, (_, i) => `o${i}`), 'every stored message arrived, once, in order');
  await eventually(async () => (await server.storage.offline.count('localhost', 'bob')) === 0, { message: 'storage emptied as acked' });
});

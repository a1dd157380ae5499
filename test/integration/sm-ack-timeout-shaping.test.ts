/**
 * Inbound shaping delays, never drops or ends: a client that answers every <r/> at once,
 * but whose <a/> waits in the input pump behind its own rate-limited burst, is not closed
 * with connection-timeout while that input is held (before, SM_ACK_TIMEOUT ran while the
 * server was not reading the <a/>: found in review).
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { SmPeer } from '../helpers/sm-peer.js';
import { eventually } from '../helpers/eventually.js';

t.test('a prompt acker bursting above the stanza rate is slowed, not timed out', async (t) => {
  const server = await withUsers(t, ['bob'], { ALLOW_INSECURE_PLAIN: 'true', MAX_INBOUND_STANZAS_PER_SECOND: '10', SM_ACK_TIMEOUT: '2' });
  const bob = await SmPeer.login(server.wsUrl, 'bob', 'bob-pw', 'web', { autoAck: true });
  t.teardown(() => bob.c.close());
  const N = 50; // five seconds' worth at 10 a second
  for (let i = 0; i < N; i++) bob.c.send(`<iq xmlns='jabber:client' type='get' id='p${i}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await eventually(() => bob.c.frames.some((el) => el.attr('id') === `p${N - 1}`) || bob.c.closed, { timeout: 20_000, message: 'the last answer' });
  const err = bob.c.frames.find((el) => el.local === 'error');
  t.equal(err?.toString().slice(0, 300), undefined, 'no stream error');
  t.ok(bob.c.frames.some((el) => el.attr('id') === `p${N - 1}`), 'every ping answered');
});

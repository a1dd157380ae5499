/**
 * A slow BOSH reader is bounded (found in review): a client without XEP-0198 that fetches
 * nothing while another session sends it a lot keeps a queue above twice BOSH_MAX_QUEUED_BYTES;
 * after the slow-consumer grace (WS_SLOW_CONSUMER_GRACE, as for a WebSocket) its transport is
 * dropped and what was queued is handed over: stored offline, nothing lost. Before, the queue
 * only paused the session's own input and grew with whatever others sent.
 */
import t from 'tap';
import { UNSHAPED, flowServer } from '../helpers/flow.js';
import { RawBoshClient } from '../helpers/bosh-client.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { eventually } from '../helpers/eventually.js';

const MAX_QUEUED = 65536;

t.test('a BOSH session that fetches nothing is dropped as a slow consumer after the grace; its queue is stored offline', async (t) => {
  const server = await flowServer(t, { ...UNSHAPED, BOSH_MAX_QUEUED_BYTES: String(MAX_QUEUED), WS_SLOW_CONSUMER_GRACE: '1', BOSH_INACTIVITY: '60' }, ['alice', 'bob']);
  const bob = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => bob.destroy());
  const bobJid = await bob.login('bob', 'b', 'slow');
  const alice = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => alice.close());
  await alice.login('alice', 'a', 'w');
  const body = 'z'.repeat(10_000);
  const N = 60; // about 600 KB: above twice the 64 KiB mark
  for (let i = 0; i < N; i++) alice.send(`<message xmlns='jabber:client' to='${bobJid}' type='chat' id='m${i}'><body>${body}</body></message>`);
  alice.send("<iq xmlns='jabber:client' type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>");
  await alice.until((el) => el.attr('id') === 'sync', 20_000);
  await eventually(() => ![...server.app.core.sessions.all].some((s) => s.username === 'bob' && !s.destroyed), { timeout: 10_000, message: "bob's session ended as a slow consumer" });
  t.pass('dropped after the grace');
  await eventually(async () => (await server.storage.offline.count('localhost', 'bob')) === N, { timeout: 10_000, message: 'every queued message stored offline' });
  t.pass('nothing lost: all stored offline for bob');
});

/**
 * PEP notifications (XEP-0163 §4.3.1) across nodes: the publisher's node
 * learns a contact's caps (XEP-0115 §6.2 disco#info) from a client bound on
 * another node. The query goes out through the contact's stub; the client's
 * answer, addressed to the server's domain, reaches the contact's own node
 * first, which must hand it back to the node that asked (before: it was
 * dropped there, the asking node waited 10 s and took the contact as
 * featureless, so nothing was sent).
 */
import t from 'tap';
import { addUsers, clusterBackends, startGateway } from '../helpers/gateways.js';
import { capsClient, available, befriend, publish, iq, NS_EVENT, type PepClient } from '../helpers/pep-kit.js';
import { xml } from '../helpers/xmppjs.js';
import { eventually } from '../helpers/eventually.js';

const backends = clusterBackends(t);

/** Whether `c` received a PEP event from `from` about `node` within `ms` (bounded polling: nextReceived's loop outlives its timeout). */
async function gotEvent(c: PepClient, from: string, node: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (c.received.some((el) => el.is('message') && el.attrs.from === from && el.getChild('event', NS_EVENT)?.getChild('items')?.attrs.node === node)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

for (const where of ['n1', 'n2'] as const) t.test(`alice on n1 publishes; bob (contact, +notify) on ${where} gets the event`, async (t) => {
  const opts = await backends.options();
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice', 'bob']);
  await befriend(n1.server, 'alice', 'bob');
  const NODE = 'urn:xmpp:review:tune';
  const bob = await capsClient(t, (where === 'n1' ? n1 : n2).server, 'bob', 'b1', [NODE]);
  await available(bob);
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'b1')?.presence !== undefined, { message: 'n1 sees bob available' });
  const alice = await capsClient(t, n1.server, 'alice', 'a1', []);
  await available(alice);
  const reply = await iq(alice, 'set', publish(NODE, xml('tune', { xmlns: NODE }, 'song'), 'i1'));
  t.equal(reply.attrs.type, 'result', 'published');
  // Before the caps query of the publisher's node times out (10 s, server.ts): the answer was taken, not waited out.
  t.ok(await gotEvent(bob, 'alice@localhost', NODE, 8000), `bob on ${where} notified (XEP-0163 §4.3.1)`);
});

t.test('alice/a1 on n1 publishes; her own resource a2 on n2 (+notify) gets the event', async (t) => {
  const opts = await backends.options();
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice']);
  const NODE = 'urn:xmpp:review:mood';
  const a2 = await capsClient(t, n2.server, 'alice', 'a2', [NODE]);
  await available(a2);
  await eventually(() => n1.server.app.sessions.get('localhost', 'alice', 'a2')?.presence !== undefined, { message: 'n1 sees a2 available' });
  const a1 = await capsClient(t, n1.server, 'alice', 'a1', []);
  await available(a1);
  const reply = await iq(a1, 'set', publish(NODE, xml('mood', { xmlns: NODE }, 'happy'), 'i1'));
  t.equal(reply.attrs.type, 'result', 'published');
  t.ok(await gotEvent(a2, 'alice@localhost', NODE, 8000), 'a2 on n2 notified (XEP-0163 §4.3.1: the owner\'s resources too)');
});

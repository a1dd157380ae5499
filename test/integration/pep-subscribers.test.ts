/**
 * PEP and the people who see it (found in review):
 * - XEP-0163 §4.3: "a PEP service MUST NOT send notifications to a subscriber if the user has
 *   blocked the subscriber" (XEP-0191), whatever the node's access model (open, whitelist);
 * - XEP-0060 §6.1.3.9: a contact's <subscribe/> gets feature-not-implemented + <unsupported/>, as
 *   the owner's does (PEP subscribes through presence and caps), not forbidden;
 * - XEP-0163 §4.3.2: "a PEP service MUST send the last published item to all new subscribers":
 *   a contact given a presence subscription while online with +notify gets it at once.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { ping, xml, nextReceived } from '../helpers/xmppjs.js';
import { available, befriend, capsClient, iq, nextEvent, NS_EVENT, NS_PUBSUB, pepError, publish } from '../helpers/pep-kit.js';

const NODE = 'eu.siacs.conversations.axolotl.devicelist';
const server = await withUsers(t, ['alice', 'bob', 'carol', 'dave']);
await befriend(server, 'alice', 'bob');

const isEvent = (el: { is(n: string): boolean; getChild(n: string, ns?: string): unknown }) => el.is('message') && el.getChild('event', NS_EVENT) !== undefined;

t.test('a contact alice has blocked gets no notification of her open node, nor its last item on presence', async (t) => {
  const alice = await capsClient(t, server, 'alice', 'a', []);
  const block = await iq(alice, 'set', xml('block', { xmlns: 'urn:xmpp:blocking' }, xml('item', { jid: 'bob@localhost' })));
  t.equal(block.attrs.type, 'result', 'bob blocked');
  // publish first: the node exists with an item when bob comes online
  t.equal((await iq(alice, 'set', publish(NODE, xml('list', { xmlns: 'eu.siacs.conversations.axolotl' }), 'current', { 'pubsub#access_model': 'open' }))).attrs.type, 'result');
  const bob = await capsClient(t, server, 'bob', 'b', [NODE]);
  await available(bob);
  await ping(bob);
  t.notOk(bob.received.some(isEvent), 'no last item for the blocked contact on initial presence');
  await iq(alice, 'set', publish(NODE, xml('list', { xmlns: 'eu.siacs.conversations.axolotl' }, xml('device', { id: '7' })), 'current'));
  await ping(alice);
  await new Promise((r) => setTimeout(r, 300));
  await ping(bob);
  t.notOk(bob.received.some(isEvent), 'no notification for the blocked contact');
});

t.test('a whitelist member alice has blocked gets no notification either', async (t) => {
  const WL = 'urn:example:wl';
  const alice = await capsClient(t, server, 'alice', 'w', []);
  await iq(alice, 'set', publish(WL, xml('x', { xmlns: WL }), 'current', { 'pubsub#access_model': 'whitelist' }));
  await iq(alice, 'set', xml('pubsub', { xmlns: 'http://jabber.org/protocol/pubsub#owner' }, xml('affiliations', { node: WL }, xml('affiliation', { jid: 'bob@localhost', affiliation: 'member' }))));
  const bob = await capsClient(t, server, 'bob', 'w', [WL]);
  await available(bob);
  await ping(bob);
  t.notOk(bob.received.some(isEvent), 'no last item on initial presence');
  await iq(alice, 'set', publish(WL, xml('x', { xmlns: WL }, '2'), 'current'));
  await new Promise((r) => setTimeout(r, 300));
  await ping(bob);
  t.notOk(bob.received.some(isEvent), 'no notification');
});

const OPEN = 'urn:example:open';

t.test('subscribe to an open PEP node from someone else', async (t) => {
  const alice = await capsClient(t, server, 'alice', 'a', []);
  const dave = await capsClient(t, server, 'dave', 'd', []);
  await iq(alice, 'set', publish(OPEN, xml('x', { xmlns: OPEN }), 'current', { 'pubsub#access_model': 'open' }));
  const own = await iq(alice, 'set', xml('pubsub', { xmlns: NS_PUBSUB }, xml('subscribe', { node: OPEN, jid: 'alice@localhost' })));
  t.same(pepError(own), { type: 'error', condition: 'feature-not-implemented', app: 'unsupported', feature: 'subscribe' }, 'the owner');
  const reply = await iq(dave, 'set', xml('pubsub', { xmlns: NS_PUBSUB }, xml('subscribe', { node: OPEN, jid: 'dave@localhost' })), 'alice@localhost');
  t.same(pepError(reply), { type: 'error', condition: 'feature-not-implemented', app: 'unsupported', feature: 'subscribe' }, 'someone else: §6.1.3.9, not forbidden');
});

const NICK = 'http://jabber.org/protocol/nick';

t.test('an approved subscriber, online with nick+notify, gets the last nick', async (t) => {
  const alice = await capsClient(t, server, 'alice', 'a', []);
  await available(alice);
  await iq(alice, 'set', publish(NICK, xml('nick', { xmlns: NICK }, 'Alice'), 'current'));
  const carol = await capsClient(t, server, 'carol', 'c', [NICK]);
  await available(carol);
  const request = nextReceived(alice, (el) => el.is('presence') && el.attrs.type === 'subscribe', 'the request at alice');
  await carol.xmpp.send(xml('presence', { to: 'alice@localhost', type: 'subscribe' }));
  await request;
  const presence = nextReceived(carol, (el) => el.is('presence') && el.attrs.from?.startsWith('alice@localhost/') === true && el.attrs.type === undefined, "alice's presence at carol");
  const nick = nextEvent(carol, 'alice@localhost', NICK, 'the last nick at the new subscriber');
  await alice.xmpp.send(xml('presence', { to: 'carol@localhost', type: 'subscribed' }));
  await presence;
  t.ok(await nick.then(() => true, () => false), 'the last item reaches the new subscriber');
});

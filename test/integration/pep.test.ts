/**
 * PEP (XEP-0163) with @xmpp/client on a real port: publishing creates the
 * node, notifications reach the resources whose caps (XEP-0115) ask for
 * them, the last item comes with initial presence, the access models, and
 * the owner's node management.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { ping, xml } from '../helpers/xmppjs.js';
import { eventually } from '../helpers/eventually.js';
import {
  available, befriend, capsClient, form, iq, itemIds, itemsRequest, nextEvent, NS_EVENT, NS_PUBSUB, NS_PUBSUB_OWNER, pepError, publish,
} from '../helpers/pep-kit.js';

const NICK = 'http://jabber.org/protocol/nick';
const server = await withUsers(t, ['alice', 'bob', 'carol', 'dave', 'erin']);
await befriend(server, 'alice', 'bob');
await befriend(server, 'alice', 'carol');
await befriend(server, 'alice', 'erin', 'both', ['Friends']);

t.test('a publish creates the node and notifies the resources whose caps list node+notify, the owner\'s too', async (t) => {
  const alice = await capsClient(t, server, 'alice', 'phone', [NICK]);
  const bob = await capsClient(t, server, 'bob', 'web', [NICK]);
  const carol = await capsClient(t, server, 'carol', 'web', []);
  for (const c of [alice, bob, carol]) await available(c);
  const toBob = nextEvent(bob, 'alice@localhost', NICK, 'the nick event at bob');
  const toAlice = nextEvent(alice, 'alice@localhost', NICK, 'the nick event at alice');
  const reply = await iq(alice, 'set', publish(NICK, xml('nick', { xmlns: NICK }, 'Alice'), 'current'));
  t.equal(reply.attrs.type, 'result');
  t.same(itemIds(reply.getChild('pubsub', NS_PUBSUB)?.getChild('publish')), ['current'], 'the published id (XEP-0060 §7.1.2)');
  const event = await toBob;
  t.equal(event.attrs.type, 'headline');
  t.equal(event.getChild('event', NS_EVENT)?.getChild('items')?.getChild('item')?.getChildText('nick', NICK), 'Alice');
  t.equal((await toAlice).getChild('event', NS_EVENT)?.getChild('items')?.getChild('item')?.attrs.id, 'current');
  // carol's caps have no nick+notify: after a round trip of hers, still nothing from alice.
  await ping(carol);
  t.notOk(carol.received.some((el) => el.is('message') && el.getChild('event', NS_EVENT)), 'no event for a contact whose caps do not ask for it');
});

t.test('initial presence brings the last item of each node the caps ask for; a stranger may not retrieve presence-access items', async (t) => {
  const alice = await capsClient(t, server, 'alice', 'laptop', []);
  await iq(alice, 'set', publish(NICK, xml('nick', { xmlns: NICK }, 'Alice L.'), 'current'));
  const bob = await capsClient(t, server, 'bob', 'tablet', [NICK]);
  const last = nextEvent(bob, 'alice@localhost', NICK, 'the last nick at bob\'s initial presence');
  await available(bob);
  t.equal((await last).getChild('event', NS_EVENT)?.getChild('items')?.getChild('item')?.getChildText('nick', NICK), 'Alice L.');
  const got = await iq(bob, 'get', itemsRequest(NICK), 'alice@localhost');
  t.same(itemIds(got.getChild('pubsub', NS_PUBSUB)?.getChild('items')), ['current'], 'a contact retrieves the items');
  const dave = await capsClient(t, server, 'dave', 'web', [NICK]);
  const denied = await iq(dave, 'get', itemsRequest(NICK), 'alice@localhost');
  t.same(pepError(denied), { type: 'error', condition: 'not-authorized', app: 'presence-subscription-required', feature: undefined }, 'XEP-0060 §6.5.9.3');
});

t.test('access models: open for anyone, roster by group, whitelist for the owner alone, authorize refused', async (t) => {
  const alice = await capsClient(t, server, 'alice', 'desk', []);
  const dave = await capsClient(t, server, 'dave', 'desk', []);
  const bob = await capsClient(t, server, 'bob', 'desk', []);
  const erin = await capsClient(t, server, 'erin', 'desk', []);
  const devices = 'eu.siacs.conversations.axolotl.devicelist';
  await iq(alice, 'set', publish(devices, xml('list', { xmlns: 'eu.siacs.conversations.axolotl' }, xml('device', { id: '42' })), 'current',
    { 'pubsub#access_model': 'open' }));
  t.same(itemIds((await iq(dave, 'get', itemsRequest(devices), 'alice@localhost')).getChild('pubsub', NS_PUBSUB)?.getChild('items')), ['current'], 'open: a stranger reads it');

  await iq(alice, 'set', publish('urn:example:friends', xml('x', { xmlns: 'urn:example:friends' }), '1',
    { 'pubsub#access_model': 'roster', 'pubsub#roster_groups_allowed': 'Friends' }));
  t.equal((await iq(erin, 'get', itemsRequest('urn:example:friends'), 'alice@localhost')).attrs.type, 'result', 'roster: erin is in Friends');
  t.same(pepError(await iq(bob, 'get', itemsRequest('urn:example:friends'), 'alice@localhost')),
    { type: 'error', condition: 'not-authorized', app: 'not-in-roster-group', feature: undefined }, 'roster: bob is not');

  await iq(alice, 'set', publish('urn:xmpp:bookmarks:1', xml('conference', { xmlns: 'urn:xmpp:bookmarks:1', autojoin: 'true' }), 'room@muc.localhost',
    { 'pubsub#access_model': 'whitelist', 'pubsub#max_items': 'max', 'pubsub#persist_items': 'true' }));
  t.same(pepError(await iq(bob, 'get', itemsRequest('urn:xmpp:bookmarks:1'), 'alice@localhost')),
    { type: 'error', condition: 'not-allowed', app: 'closed-node', feature: undefined }, 'whitelist: not even a contact');
  t.equal((await iq(alice, 'get', itemsRequest('urn:xmpp:bookmarks:1'))).attrs.type, 'result', 'whitelist: the owner');

  t.same(pepError(await iq(alice, 'set', publish('urn:example:a', xml('a', { xmlns: 'urn:example:a' }), '1', { 'pubsub#access_model': 'authorize' }))),
    { type: 'error', condition: 'feature-not-implemented', app: 'unsupported', feature: 'access-authorize' });
});

t.test('publish-options that differ from an existing node fail with precondition-not-met', async (t) => {
  const alice = await capsClient(t, server, 'alice', 'pre', []);
  const node = 'urn:xmpp:reactions:popular:0';
  const payload = xml('reactions', { xmlns: node }, xml('reaction', {}, '👍'));
  t.equal((await iq(alice, 'set', publish(node, payload, 'current', { 'pubsub#access_model': 'whitelist' }))).attrs.type, 'result');
  t.equal((await iq(alice, 'set', publish(node, payload, 'current', { 'pubsub#access_model': 'whitelist' }))).attrs.type, 'result', 'the same options again');
  t.same(pepError(await iq(alice, 'set', publish(node, payload, 'current', { 'pubsub#access_model': 'open' }))),
    { type: 'error', condition: 'conflict', app: 'precondition-not-met', feature: undefined }, 'XEP-0060 §7.1.5');
});

t.test('the owner retrieves the newest N or by id, retracts with notify, reconfigures, purges and deletes', async (t) => {
  const alice = await capsClient(t, server, 'alice', 'admin', ['urn:example:log']);
  await available(alice);
  const node = 'urn:example:log';
  for (const id of ['1', '2', '3']) await iq(alice, 'set', publish(node, xml('entry', { xmlns: node }, id), id, { 'pubsub#max_items': '2' }));
  const items = (reply: Awaited<ReturnType<typeof iq>>) => itemIds(reply.getChild('pubsub', NS_PUBSUB)?.getChild('items'));
  t.same(items(await iq(alice, 'get', itemsRequest(node))), ['2', '3'], 'max_items 2 keeps the newest two');
  t.same(items(await iq(alice, 'get', itemsRequest(node, { max_items: '1' }))), ['3'], 'max_items=1 asks for the newest');
  t.same(items(await iq(alice, 'get', itemsRequest(node, {}, '2'))), ['2'], 'by id');

  const retracted = nextEvent(alice, 'alice@localhost', node, 'the retract event');
  t.equal((await iq(alice, 'set', xml('pubsub', { xmlns: NS_PUBSUB }, xml('retract', { node, notify: 'true' }, xml('item', { id: '3' }))))).attrs.type, 'result');
  t.equal((await retracted).getChild('event', NS_EVENT)?.getChild('items')?.getChild('retract')?.attrs.id, '3');
  t.equal(pepError(await iq(alice, 'set', xml('pubsub', { xmlns: NS_PUBSUB }, xml('retract', { node }, xml('item', { id: '3' }))))).condition, 'item-not-found');

  const config = await iq(alice, 'get', xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('configure', { node })));
  const fields = config.getChild('pubsub', NS_PUBSUB_OWNER)?.getChild('configure')?.getChild('x', 'jabber:x:data')?.getChildren('field') ?? [];
  t.equal(fields.find((f) => f.attrs.var === 'pubsub#max_items')?.getChildText('value'), '2', 'the configuration form (XEP-0060 §8.2)');
  await iq(alice, 'set', xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('configure', { node }, form(`${NS_PUBSUB}#node_config`, { 'pubsub#access_model': 'open' }))));
  const dave = await capsClient(t, server, 'dave', 'cfg', []);
  t.same(items(await iq(dave, 'get', itemsRequest(node), 'alice@localhost')), ['2'], 'open after reconfiguration');

  const purged = nextEvent(alice, 'alice@localhost', node, 'the purge event');
  await iq(alice, 'set', xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('purge', { node })));
  t.ok((await purged).getChild('event', NS_EVENT)?.getChild('purge'));
  t.same(items(await iq(alice, 'get', itemsRequest(node))), [], 'purged');
  const deleted = nextEvent(alice, 'alice@localhost', node, 'the delete event');
  await iq(alice, 'set', xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('delete', { node })));
  t.ok((await deleted).getChild('event', NS_EVENT)?.getChild('delete'));
  t.equal(pepError(await iq(alice, 'get', itemsRequest(node))).condition, 'item-not-found', 'deleted');
});

t.test('disco#info of the own account: the pubsub/pep identity and the features clients check', async (t) => {
  const alice = await capsClient(t, server, 'alice', 'disco', []);
  const query = (await iq(alice, 'get', xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), 'alice@localhost')).getChild('query');
  t.ok(query?.getChildren('identity').some((i) => i.attrs.category === 'pubsub' && i.attrs.type === 'pep'), 'XEP-0163 §6.1');
  const features = query?.getChildren('feature').map((f) => f.attrs.var) ?? [];
  for (const f of ['publish', 'publish-options', 'auto-create', 'filtered-notifications', 'access-presence', 'retrieve-items', 'persistent-items']) {
    t.ok(features.includes(`${NS_PUBSUB}#${f}`), f);
  }
});

t.test('XEP-0402 §5.3: bookmarks written to either node appear in the other', async (t) => {
  const alice = await capsClient(t, server, 'alice', 'compat', []);
  const legacy = xml('storage', { xmlns: 'storage:bookmarks' },
    xml('conference', { jid: 'old@muc.localhost', name: 'Old', autojoin: 'true' }, xml('nick', {}, 'al')));
  t.equal((await iq(alice, 'set', publish('storage:bookmarks', legacy, 'current'))).attrs.type, 'result');
  const modern = (await iq(alice, 'get', itemsRequest('urn:xmpp:bookmarks:1'))).getChild('pubsub', NS_PUBSUB)?.getChild('items');
  t.same(itemIds(modern), ['old@muc.localhost'], 'the legacy room as an XEP-0402 item, its JID the id');
  const conference = modern?.getChild('item')?.getChild('conference', 'urn:xmpp:bookmarks:1');
  t.same([conference?.attrs.name, conference?.attrs.autojoin, conference?.getChildText('nick')], ['Old', 'true', 'al']);

  await iq(alice, 'set', publish('urn:xmpp:bookmarks:1', xml('conference', { xmlns: 'urn:xmpp:bookmarks:1', name: 'New' }), 'new@muc.localhost',
    { 'pubsub#max_items': 'max', 'pubsub#access_model': 'whitelist' }));
  const storage = () => iq(alice, 'get', itemsRequest('storage:bookmarks')).then((r) =>
    r.getChild('pubsub', NS_PUBSUB)?.getChild('items')?.getChild('item')?.getChild('storage', 'storage:bookmarks')?.getChildren('conference') ?? []);
  t.same((await storage()).map((c) => [c.attrs.jid, c.attrs.name, c.attrs.autojoin]),
    [['old@muc.localhost', 'Old', 'true'], ['new@muc.localhost', 'New', 'false']], 'both rooms in the legacy node');
  await iq(alice, 'set', xml('pubsub', { xmlns: NS_PUBSUB }, xml('retract', { node: 'urn:xmpp:bookmarks:1', notify: 'true' }, xml('item', { id: 'old@muc.localhost' }))));
  t.same((await storage()).map((c) => c.attrs.jid), ['new@muc.localhost'], 'a retracted room leaves the legacy node too');
});

t.test('caps: one disco#info query per ver, and a ver that is not the hash of the answer is not believed (XEP-0115 §5.4)', async (t) => {
  const ONCE = 'urn:example:once';
  const dave1 = await capsClient(t, server, 'dave', 'one', [ONCE]);
  const dave2 = await capsClient(t, server, 'dave', 'two', [ONCE]);
  const isQuery = (el: { is(n: string): boolean; attrs: Record<string, string | undefined>; getChild(n: string, ns?: string): unknown }) =>
    el.is('iq') && el.attrs.type === 'get' && el.getChild('query', 'http://jabber.org/protocol/disco#info') !== undefined;
  await available(dave1);
  await available(dave2);
  const toBoth = [dave1, dave2].map((d) => nextEvent(d, 'dave@localhost', ONCE, `the event at ${d.jid}`));
  await iq(dave1, 'set', publish(ONCE, xml('x', { xmlns: ONCE }), '1'));
  await Promise.all(toBoth);
  t.equal([...dave1.received, ...dave2.received].filter(isQuery).length, 1, 'the second resource with the same ver was not asked');

  const alice = await capsClient(t, server, 'alice', 'liar-check', []);
  const bob = await capsClient(t, server, 'bob', 'honest', [NICK]);
  const carol = await capsClient(t, server, 'carol', 'liar', [NICK]);
  await available(bob);
  await available(carol, 'bm90IHRoZSBoYXNoIG9mIGFueXRoaW5nPQ==');
  const toBob = nextEvent(bob, 'alice@localhost', NICK, 'the nick event at the honest bob');
  await iq(alice, 'set', publish(NICK, xml('nick', { xmlns: NICK }, 'Alice again'), 'current'));
  await toBob;
  await eventually(() => carol.received.some(isQuery), { message: 'the server to ask carol for her disco#info' });
  await ping(carol);
  t.notOk(carol.received.some((el) => el.is('message') && el.getChild('event', NS_EVENT)), 'no event for a ver that does not verify, though the answer lists nick+notify');
});

t.test('a presence whose new caps add node+notify brings that node\'s last item; the same caps again bring nothing (XEP-0163 §4.3.2)', async (t) => {
  const AVATAR = 'urn:xmpp:avatar:metadata';
  const alice = await capsClient(t, server, 'alice', 'caps-change', []);
  await iq(alice, 'set', publish(NICK, xml('nick', { xmlns: NICK }, 'Alice C.'), 'current'));
  await iq(alice, 'set', publish(AVATAR, xml('metadata', { xmlns: AVATAR }), 'current'));
  const bob = await capsClient(t, server, 'bob', 'caps-change', [AVATAR]);
  const avatar = nextEvent(bob, 'alice@localhost', AVATAR, 'the last avatar at bob\'s initial presence');
  await available(bob);
  await avatar;
  const isNick = (el: { is(n: string): boolean; getChild(n: string, ns?: string): { getChildren(n: string): Array<{ attrs: Record<string, string | undefined> }> } | undefined }) =>
    el.is('message') && el.getChild('event', NS_EVENT)?.getChildren('items').some((i) => i.attrs.node === NICK) === true;
  const isAvatar = (el: Parameters<typeof isNick>[0]) =>
    el.is('message') && el.getChild('event', NS_EVENT)?.getChildren('items').some((i) => i.attrs.node === AVATAR) === true;
  await ping(bob);
  t.notOk(bob.received.some(isNick), 'no nick before the caps ask for it');
  // The client learns a new feature: its disco#info (and so its ver) now lists nick+notify.
  bob.features.push(`${NICK}+notify`);
  const nick = nextEvent(bob, 'alice@localhost', NICK, 'the last nick after bob\'s caps change');
  const avatarsBefore = bob.received.filter(isAvatar).length;
  await available(bob);
  t.equal((await nick).getChild('event', NS_EVENT)?.getChild('items')?.getChild('item')?.getChildText('nick', NICK), 'Alice C.');
  await available(bob);
  await ping(bob);
  t.equal(bob.received.filter(isNick).length, 1, 'the same caps again: the nick is not sent twice');
  t.equal(bob.received.filter(isAvatar).length, avatarsBefore, 'the avatar, wanted before the change, is not resent');
});

t.test('whitelist affiliations (XEP-0060 §8.9): the owner lists and sets members, who see and are notified; none removes; an outcast is barred even from an open node', async (t) => {
  const WL = 'urn:example:whitelisted';
  const OPEN = 'urn:example:open-with-outcast';
  const affiliation = (jid: string, a: string) => xml('affiliation', { jid, affiliation: a });
  const affiliations = (node: string, ...changes: ReturnType<typeof xml>[]) => xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml('affiliations', { node }, ...changes));
  const alice = await capsClient(t, server, 'alice', 'wl', []);
  const bob = await capsClient(t, server, 'bob', 'wl', [WL]);
  const carol = await capsClient(t, server, 'carol', 'wl', [WL]);
  for (const c of [bob, carol]) await available(c);
  await iq(alice, 'set', publish(WL, xml('x', { xmlns: WL }, 'one'), 'current', { 'pubsub#access_model': 'whitelist' }));
  t.same(pepError(await iq(bob, 'get', itemsRequest(WL), 'alice@localhost')), { type: 'error', condition: 'not-allowed', app: 'closed-node', feature: undefined }, 'not a member yet');

  t.equal((await iq(alice, 'set', affiliations(WL, affiliation('bob@localhost', 'member')))).attrs.type, 'result', 'bob made a member');
  const listed = (await iq(alice, 'get', affiliations(WL))).getChild('pubsub', NS_PUBSUB_OWNER)?.getChild('affiliations');
  t.same(listed?.getChildren('affiliation').map((a) => [a.attrs.jid, a.attrs.affiliation]), [['alice@localhost', 'owner'], ['bob@localhost', 'member']]);
  t.same(itemIds((await iq(bob, 'get', itemsRequest(WL), 'alice@localhost')).getChild('pubsub', NS_PUBSUB)?.getChild('items')), ['current'], 'a member retrieves');
  t.same(pepError(await iq(carol, 'get', itemsRequest(WL), 'alice@localhost')).condition, 'not-allowed', 'a contact who is not a member does not');
  const toBob = nextEvent(bob, 'alice@localhost', WL, 'the whitelisted event at the member');
  await iq(alice, 'set', publish(WL, xml('x', { xmlns: WL }, 'two'), 'current'));
  t.equal((await toBob).getChild('event', NS_EVENT)?.getChild('items')?.getChild('item')?.getChildText('x', WL), 'two');
  await ping(carol);
  t.notOk(carol.received.some((el) => el.is('message') && el.getChild('event', NS_EVENT)), 'no event for the contact off the whitelist');

  t.equal((await iq(alice, 'set', affiliations(WL, affiliation('bob@localhost', 'none')))).attrs.type, 'result');
  t.same(pepError(await iq(bob, 'get', itemsRequest(WL), 'alice@localhost')).condition, 'not-allowed', 'none: off the whitelist again');

  await iq(alice, 'set', publish(OPEN, xml('x', { xmlns: OPEN }), 'current', { 'pubsub#access_model': 'open' }));
  await iq(alice, 'set', affiliations(OPEN, affiliation('dave@localhost', 'outcast')));
  const dave = await capsClient(t, server, 'dave', 'wl', []);
  t.same(pepError(await iq(dave, 'get', itemsRequest(OPEN), 'alice@localhost')).condition, 'forbidden', 'an outcast, though the node is open');
  t.equal((await iq(bob, 'get', itemsRequest(OPEN), 'alice@localhost')).attrs.type, 'result', 'anyone else still retrieves');
});


/**
 * XEP-0030 disco#items on an account's bare JID lists its PEP nodes
 * (XEP-0163 §6.1-6.2, XEP-0060 §5.2), each only to whom its access model
 * admits (XEP-0163 §6.2: "MUST return as service discovery items only those
 * nodes to which the contact is allowed to subscribe or from which the contact
 * is allowed to retrieve items"), as Prosody's mod_pep does. The available
 * resources stay for those who may see presence (XEP-0030 §8); nodes are
 * "items other than available resources", which §8 lets a server return to
 * others. disco#info on a node describes it (XEP-0060 §5.3-5.4) to the same
 * people, within XEP-0030 §8 (no subscription: service-unavailable). On the
 * raw wire (WebSocket).
 */
import t, { type Test } from 'tap';
import { withUsers } from '../helpers/server.js';
import { loggedInWs, stanzaErrorCondition, wsIq as iq, type RawWsClient } from '../helpers/ws-client.js';
import { NS, type XmlElement } from '../../src/xml/index.js';

const server = await withUsers(t, ['alice', 'bob', 'carol', 'dave'], { ALLOW_INSECURE_PLAIN: 'true' });
const contact = (jid: string) => ({ jid, name: undefined, groups: [], subscription: 'both' as const, ask: false, approved: false });
await server.storage.rosters.putItem('localhost', 'alice', contact('bob@localhost'), 1);
await server.storage.rosters.putItem('localhost', 'bob', contact('alice@localhost'), 1);
await server.storage.rosters.putItem('localhost', 'alice', contact('dave@localhost'), 2);

const client = (t: Test, user: string): Promise<RawWsClient> => loggedInWs(t, server.wsUrl, user, 'r');

const publish = (node: string, access?: string): string =>
  `<pubsub xmlns='${NS.PUBSUB}'><publish node='${node}'><item id='current'><x xmlns='${node}'/></item></publish>${access ? `<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>${NS.PUBSUB}#publish-options</value></field><field var='pubsub#access_model'><value>${access}</value></field></x></publish-options>` : ''}</pubsub>`;

/** The items of a disco#items result as 'jid' or 'jid node'. */
const listed = (el: XmlElement): string[] => {
  if (el.attr('type') !== 'result') return [`not a result: ${el.toString()}`];
  return (el.getChild('query', NS.DISCO_ITEMS)?.getChildren('item') ?? []).map((i) => [i.attr('jid'), i.attr('node')].filter(Boolean).join(' '));
};

t.test("an account's disco#items lists the PEP nodes each requester may see", async (t) => {
  const alice = await client(t, 'alice');
  alice.send(`<iq xmlns='jabber:client' type='set' id='blk'><block xmlns='${NS.BLOCKING}'><item jid='dave@localhost'/></block></iq>`);
  await alice.until((el) => el.attr('id') === 'blk');
  alice.send(`<presence xmlns='jabber:client'/>`);
  await alice.until((el) => el.local === 'presence');
  for (const [node, access] of [['urn:example:presence', undefined], ['urn:example:open', 'open'], ['urn:example:whitelist', 'whitelist']] as const) {
    t.equal((await iq(alice, `pub-${node}`, 'set', publish(node, access))).attr('type'), 'result', `published ${node}`);
  }
  const items = `<query xmlns='${NS.DISCO_ITEMS}'/>`;
  t.same(listed(await iq(alice, 'own', 'get', items)), [
    'alice@localhost/r', 'alice@localhost urn:example:open', 'alice@localhost urn:example:presence', 'alice@localhost urn:example:whitelist',
  ], 'the owner: its resource and every node');
  t.same(listed(await iq(alice, 'own-bare', 'get', items, 'alice@localhost')), [
    'alice@localhost/r', 'alice@localhost urn:example:open', 'alice@localhost urn:example:presence', 'alice@localhost urn:example:whitelist',
  ], 'the same to its bare JID');
  const bob = await client(t, 'bob');
  t.same(listed(await iq(bob, 'bob', 'get', items, 'alice@localhost')), [
    'alice@localhost/r', 'alice@localhost urn:example:open', 'alice@localhost urn:example:presence',
  ], 'a subscriber: the resource, the open and the presence nodes, not the whitelist one');
  const carol = await client(t, 'carol');
  t.same(listed(await iq(carol, 'carol', 'get', items, 'alice@localhost')), ['alice@localhost urn:example:open'],
    'no subscription: the open node only, no resource (XEP-0030 §8)');
  const dave = await client(t, 'dave');
  t.equal(stanzaErrorCondition(await iq(dave, 'dave', 'get', items, 'alice@localhost')), 'service-unavailable',
    'blocked (a subscriber too): service-unavailable, as any IQ from a blocked JID (XEP-0191 §3.3)');
  t.same(listed(await iq(carol, 'nobody', 'get', items, 'nobody@localhost')), [], 'an account that does not exist: an empty result');
});

t.test('disco#info on a PEP node answers pubsub/leaf and its access model to whom may see it (XEP-0060 §5.3-5.4)', async (t) => {
  const alice = await client(t, 'alice');
  for (const [node, access] of [['urn:example:info-presence', undefined], ['urn:example:info-whitelist', 'whitelist']] as const) {
    t.equal((await iq(alice, `pub-${node}`, 'set', publish(node, access))).attr('type'), 'result', `published ${node}`);
  }
  const info = (node: string) => `<query xmlns='${NS.DISCO_INFO}' node='${node}'/>`;
  const described = (el: XmlElement): unknown => {
    if (el.attr('type') !== 'result') return `not a result: ${el.toString()}`;
    const query = el.getChild('query', NS.DISCO_INFO)!;
    const form = query.getChild('x', 'jabber:x:data');
    const field = (v: string) => form?.getChildren('field').find((f) => f.attr('var') === v)?.getChildText('value');
    return {
      node: query.attr('node'),
      identities: query.getChildren('identity').map((i) => `${i.attr('category')}/${i.attr('type')}`),
      formType: field('FORM_TYPE'),
      access: field('pubsub#access_model'),
    };
  };
  t.same(described(await iq(alice, 'own', 'get', info('urn:example:info-whitelist'), 'alice@localhost')), {
    node: 'urn:example:info-whitelist', identities: ['pubsub/leaf'], formType: `${NS.PUBSUB}#meta-data`, access: 'whitelist',
  }, 'the owner: any of its nodes');
  t.same(described(await iq(alice, 'own-no-to', 'get', info('urn:example:info-presence'))), {
    node: 'urn:example:info-presence', identities: ['pubsub/leaf'], formType: `${NS.PUBSUB}#meta-data`, access: 'presence',
  }, 'the owner, without a to');
  const bob = await client(t, 'bob');
  t.same(described(await iq(bob, 'bob', 'get', info('urn:example:info-presence'), 'alice@localhost')), {
    node: 'urn:example:info-presence', identities: ['pubsub/leaf'], formType: `${NS.PUBSUB}#meta-data`, access: 'presence',
  }, 'a subscriber: a presence node');
  t.equal(stanzaErrorCondition(await iq(bob, 'bob-wl', 'get', info('urn:example:info-whitelist'), 'alice@localhost')), 'item-not-found',
    'a subscriber, a whitelist node it is not on: item-not-found, as a node that does not exist');
  t.equal(stanzaErrorCondition(await iq(alice, 'own-none', 'get', info('urn:example:none'))), 'item-not-found', 'no such node: item-not-found');
  const carol = await client(t, 'carol');
  t.equal(stanzaErrorCondition(await iq(carol, 'carol', 'get', info('urn:example:info-presence'), 'alice@localhost')), 'service-unavailable',
    'no subscription: service-unavailable, node or not (XEP-0030 §8)');
});

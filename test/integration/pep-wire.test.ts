/**
 * PEP (XEP-0163) refusals on the raw wire: what a client may not do to
 * another account's nodes, an item over PEP_MAX_ITEM_BYTES, malformed
 * publish-options, and the per-account node limit, each with the error
 * XEP-0060 gives it.
 */
import t, { type Test } from 'tap';
import { withUsers } from '../helpers/server.js';
import { loggedInWs, stanzaErrorCondition, wsIq as iq, type RawWsClient } from '../helpers/ws-client.js';
import { NS, type XmlElement } from '../../src/xml/index.js';

const server = await withUsers(t, ['alice', 'bob', 'carol'], {
  ALLOW_INSECURE_PLAIN: 'true', PEP_MAX_ITEM_BYTES: '2048', PEP_MAX_NODES_PER_ACCOUNT: '3', PEP_MAX_ITEMS_PER_NODE: '10',
});

const client = (t: Test, user: string): Promise<RawWsClient> => loggedInWs(t, server.wsUrl, user, 'raw');

const appCondition = (el: XmlElement): string | undefined => el.getChild('error')?.getChildren().find((c) => c.ns === NS.PUBSUB_ERRORS)?.local;
/** The feature an <unsupported/> application condition names. */
const unsupportedFeature = (el: XmlElement): string | undefined =>
  el.getChild('error')?.getChildren().find((c) => c.ns === NS.PUBSUB_ERRORS && c.local === 'unsupported')?.attr('feature');

const publish = (node: string, payload: string, options = ''): string =>
  `<pubsub xmlns='${NS.PUBSUB}'><publish node='${node}'><item id='current'>${payload}</item></publish>${options}</pubsub>`;

const options = (fields: string): string => `<publish-options><x xmlns='jabber:x:data' type='submit'>${fields}</x></publish-options>`;
const formType = `<field var='FORM_TYPE' type='hidden'><value>${NS.PUBSUB}#publish-options</value></field>`;

t.test("a publish, a retract or owner request to another account's PEP is forbidden and changes nothing", async (t) => {
  const alice = await client(t, 'alice');
  const nick = `<nick xmlns='http://jabber.org/protocol/nick'>Mallory</nick>`;
  for (const [id, inner] of [
    ['p', publish('http://jabber.org/protocol/nick', nick)],
    ['r', `<pubsub xmlns='${NS.PUBSUB}'><retract node='http://jabber.org/protocol/nick'><item id='current'/></retract></pubsub>`],
    ['d', `<pubsub xmlns='${NS.PUBSUB_OWNER}'><delete node='http://jabber.org/protocol/nick'/></pubsub>`],
  ] as const) {
    const reply = await iq(alice, id, 'set', inner, 'bob@localhost');
    t.equal(reply.attr('type'), 'error', id);
    t.equal(stanzaErrorCondition(reply), 'forbidden', id);
  }
  t.same(await server.storage.pep.nodes('localhost', 'bob'), [], 'bob has no node');
});

t.test('an item over PEP_MAX_ITEM_BYTES gets not-acceptable with payload-too-big; one within it is stored', async (t) => {
  const alice = await client(t, 'alice');
  const data = (n: number) => `<data xmlns='urn:xmpp:avatar:data'>${'A'.repeat(n)}</data>`;
  const big = await iq(alice, 'big', 'set', publish('urn:xmpp:avatar:data', data(2100)));
  t.equal(stanzaErrorCondition(big), 'not-acceptable');
  t.equal(appCondition(big), 'payload-too-big', 'XEP-0060 §7.1.3.4');
  t.equal(await server.storage.pep.node('localhost', 'alice', 'urn:xmpp:avatar:data'), undefined, 'no node was created');
  t.equal((await iq(alice, 'small', 'set', publish('urn:xmpp:avatar:data', data(1000)))).attr('type'), 'result');
});

t.test('malformed publish-options get bad-request and create no node', async (t) => {
  const alice = await client(t, 'alice');
  const cases: Array<[string, string, string | undefined]> = [
    ['no-form-type', options(`<field var='pubsub#access_model'><value>open</value></field>`), undefined],
    ['max-items-word', options(`${formType}<field var='pubsub#max_items'><value>lots</value></field>`), 'invalid-options'],
    ['persist-word', options(`${formType}<field var='pubsub#persist_items'><value>maybe</value></field>`), 'invalid-options'],
    ['unknown-model', options(`${formType}<field var='pubsub#access_model'><value>everyone</value></field>`), 'invalid-options'],
    ['not-submit', `<publish-options><x xmlns='jabber:x:data' type='form'>${formType}</x></publish-options>`, undefined],
    // XEP-0060 §7.1.5: "it MUST reject the publication upon encountering unknown fields".
    ['unknown-field', options(`${formType}<field var='pubsub#bogus'><value>x</value></field>`), 'invalid-options'],
    ['foreign-field', options(`${formType}<field var='urn:example#option'><value>x</value></field>`), 'invalid-options'],
  ];
  for (const [id, opts, app] of cases) {
    const reply = await iq(alice, id, 'set', publish(`urn:example:${id}`, `<x xmlns='urn:example'/>`, opts));
    t.equal(stanzaErrorCondition(reply), 'bad-request', id);
    t.equal(appCondition(reply), app, `${id}: ${app ?? 'no'} application condition`);
    t.equal(await server.storage.pep.node('localhost', 'alice', `urn:example:${id}`), undefined, `${id}: no node`);
  }
  const avatar = (id: string, opts: string) => iq(alice, id, 'set', publish('urn:xmpp:avatar:data', `<data xmlns='urn:xmpp:avatar:data'>${id}</data>`, opts));
  const unknown = await avatar('unknown-existing', options(`${formType}<field var='pubsub#bogus'><value>x</value></field>`));
  t.equal(stanzaErrorCondition(unknown), 'bad-request', 'an unknown field on an existing node too');
  t.equal(appCondition(unknown), 'invalid-options');
  t.equal((await avatar('registered', options(`${formType}<field var='pubsub#send_last_published_item'><value>never</value></field>`))).attr('type'), 'result',
    'a registered pubsub#node_config field this service does not keep is not unknown');
  const tooMany = await iq(alice, 'max', 'set', publish('urn:example:max', `<x xmlns='urn:example'/>`,
    options(`${formType}<field var='pubsub#max_items'><value>11</value></field>`)));
  t.equal(stanzaErrorCondition(tooMany), 'not-acceptable', 'a max_items above PEP_MAX_ITEMS_PER_NODE');
  const noItem = await iq(alice, 'noitem', 'set', `<pubsub xmlns='${NS.PUBSUB}'><publish node='urn:example:n'/></pubsub>`);
  t.equal(appCondition(noItem), 'item-required', 'a publish without an item');
  const noNode = await iq(alice, 'nonode', 'set', `<pubsub xmlns='${NS.PUBSUB}'><publish><item><x xmlns='urn:example'/></item></publish></pubsub>`);
  t.equal(appCondition(noNode), 'nodeid-required', 'a publish without a node');
});

t.test('one node more than PEP_MAX_NODES_PER_ACCOUNT gets policy-violation', async (t) => {
  const bob = await client(t, 'bob');
  for (const n of ['1', '2', '3']) t.equal((await iq(bob, `n${n}`, 'set', publish(`urn:example:${n}`, `<x xmlns='urn:example'/>`))).attr('type'), 'result', `node ${n}`);
  const fourth = await iq(bob, 'n4', 'set', publish('urn:example:4', `<x xmlns='urn:example'/>`));
  t.equal(stanzaErrorCondition(fourth), 'policy-violation');
  t.equal(appCondition(fourth), 'max-nodes-exceeded');
  t.equal((await iq(bob, 'n1again', 'set', publish('urn:example:1', `<y xmlns='urn:example'/>`))).attr('type'), 'result', 'an existing node still takes items');
});

t.test('affiliations: only the owner manages them; a bad JID, an unsupported affiliation or the owner\'s own refuse the whole request', async (t) => {
  const alice = await client(t, 'alice');
  const bob = await client(t, 'bob');
  const node = 'urn:example:affiliations';
  await iq(alice, 'p', 'set', publish(node, `<x xmlns='${node}'/>`));
  const set = (...changes: string[]) => `<pubsub xmlns='${NS.PUBSUB_OWNER}'><affiliations node='${node}'>${changes.join('')}</affiliations></pubsub>`;
  const aff = (jid: string, a: string) => `<affiliation jid='${jid}' affiliation='${a}'/>`;
  t.equal(stanzaErrorCondition(await iq(bob, 'b', 'set', set(aff('bob@localhost', 'member')), 'alice@localhost')), 'forbidden', "bob on alice's node");
  t.equal(stanzaErrorCondition(await iq(bob, 'bg', 'get', set(), 'alice@localhost')), 'forbidden', "bob reading alice's list");
  const cases: Array<[string, string, string]> = [
    ['a JID that is not one', set(aff('carol@localhost', 'member'), aff('@@', 'member')), 'jid-malformed'],
    ['publisher', set(aff('carol@localhost', 'member'), aff('dave@localhost', 'publisher')), 'feature-not-implemented'],
    ["the owner's own", set(aff('carol@localhost', 'member'), aff('alice@localhost', 'outcast')), 'not-acceptable'],
    ['no affiliation at all', set(), 'bad-request'],
  ];
  for (const [what, inner, condition] of cases) t.equal(stanzaErrorCondition(await iq(alice, what.replace(/\W/g, ''), 'set', inner)), condition, what);
  t.equal(stanzaErrorCondition(await iq(alice, 'nn', 'set', set(aff('carol@localhost', 'member')).replace(node, 'urn:example:none'))), 'item-not-found', 'no such node');
  t.equal((await server.storage.pep.node('localhost', 'alice', node))?.affiliations, undefined, 'nothing was changed by the refused requests');
});

t.test('a node creation or configuration that cannot be processed gets not-acceptable and changes nothing', async (t) => {
  const alice = await client(t, 'alice');
  const node = 'urn:example:configured';
  const nodeConfig = (fields: string) => `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>${NS.PUBSUB}#node_config</value></field>${fields}</x>`;
  const create = (n: string, fields: string) => `<pubsub xmlns='${NS.PUBSUB}'><create node='${n}'/><configure>${nodeConfig(fields)}</configure></pubsub>`;
  const configure = (fields: string) => `<pubsub xmlns='${NS.PUBSUB_OWNER}'><configure node='${node}'>${nodeConfig(fields)}</configure></pubsub>`;
  const refused = (reply: XmlElement, app: string | undefined, what: string) => {
    t.equal(reply.getChild('error')?.attr('type'), 'modify', `${what}: modify`);
    t.equal(stanzaErrorCondition(reply), 'not-acceptable', `${what}: not-acceptable`);
    t.equal(appCondition(reply), app, `${what}: ${app ?? 'no'} application condition`);
  };
  // XEP-0060 §8.1.1: no instant nodes here.
  refused(await iq(alice, 'instant', 'set', `<pubsub xmlns='${NS.PUBSUB}'><create/></pubsub>`), 'nodeid-required', 'a create without a node');
  // §8.1.2: an access model the service does not support.
  for (const model of ['everyone', 'authorize']) {
    refused(await iq(alice, `c-${model}`, 'set', create(`urn:example:${model}`, `<field var='pubsub#access_model'><value>${model}</value></field>`)), 'unsupported-access-model', `create with ${model}`);
    t.equal(await server.storage.pep.node('localhost', 'alice', `urn:example:${model}`), undefined, `${model}: no node`);
  }
  t.equal((await iq(alice, 'p', 'set', publish(node, `<x xmlns='${node}'/>`))).attr('type'), 'result');
  const before = await server.storage.pep.node('localhost', 'alice', node);
  // §8.2.5.2: a configuration change that cannot be processed.
  refused(await iq(alice, 'everyone', 'set', configure(`<field var='pubsub#access_model'><value>everyone</value></field>`)), 'unsupported-access-model', 'an unknown access model');
  refused(await iq(alice, 'lots', 'set', configure(`<field var='pubsub#max_items'><value>lots</value></field>`)), undefined, 'max_items not a number');
  refused(await iq(alice, 'maybe', 'set', configure(`<field var='pubsub#persist_items'><value>maybe</value></field>`)), undefined, 'persist_items not a boolean');
  t.same(await server.storage.pep.node('localhost', 'alice', node), before, 'the configuration is unchanged');
});

t.test('a request this PEP service does not implement names the feature XEP-0060 gives it', async (t) => {
  const alice = await client(t, 'alice');
  const bob = await client(t, 'bob');
  const cases: Array<[string, 'get' | 'set', string, string]> = [
    ['subscriptions', 'get', `<pubsub xmlns='${NS.PUBSUB}'><subscriptions/></pubsub>`, 'retrieve-subscriptions'], // §5.6
    ['affiliations', 'get', `<pubsub xmlns='${NS.PUBSUB}'><affiliations/></pubsub>`, 'retrieve-affiliations'], // §5.7
    ['options', 'get', `<pubsub xmlns='${NS.PUBSUB}'><options node='urn:example:1' jid='alice@localhost'/></pubsub>`, 'subscription-options'], // §6.3.4.6
    ['default-sub', 'get', `<pubsub xmlns='${NS.PUBSUB}'><default/></pubsub>`, 'retrieve-default-sub'], // §6.4.3.2
    ['default', 'get', `<pubsub xmlns='${NS.PUBSUB_OWNER}'><default/></pubsub>`, 'retrieve-default'], // §8.3.4.2
    ['manage-subscriptions', 'get', `<pubsub xmlns='${NS.PUBSUB_OWNER}'><subscriptions node='urn:example:1'/></pubsub>`, 'manage-subscriptions'], // §8.8.1
  ];
  for (const [what, type, inner, expected] of cases) {
    const reply = await iq(alice, what, type, inner);
    t.equal(stanzaErrorCondition(reply), 'feature-not-implemented', what);
    t.equal(unsupportedFeature(reply), expected, `${what}: ${expected}`);
  }
  const others = await iq(bob, 'bob-options', 'set', `<pubsub xmlns='${NS.PUBSUB}'><options node='urn:example:1' jid='bob@localhost'/></pubsub>`, 'alice@localhost');
  t.equal(unsupportedFeature(others), 'subscription-options', "another account's options: §6.3.4.6");
});

t.test('a node that does not persist items: its items cannot be retrieved, retracted or purged (unsupported persistent-items)', async (t) => {
  const carol = await client(t, 'carol');
  const node = 'urn:example:transient';
  const published = await iq(carol, 'p', 'set', publish(node, `<x xmlns='${node}'/>`, options(`${formType}<field var='pubsub#persist_items'><value>false</value></field>`)));
  t.equal(published.attr('type'), 'result', 'published (notified, not kept)');
  const cases: Array<[string, 'get' | 'set', string]> = [
    ['items', 'get', `<pubsub xmlns='${NS.PUBSUB}'><items node='${node}'/></pubsub>`], // XEP-0060 §6.5.9.4
    ['retract', 'set', `<pubsub xmlns='${NS.PUBSUB}'><retract node='${node}'><item id='current'/></retract></pubsub>`], // §7.2.3.5
    ['purge', 'set', `<pubsub xmlns='${NS.PUBSUB_OWNER}'><purge node='${node}'/></pubsub>`], // §8.5.3.3
  ];
  for (const [what, type, inner] of cases) {
    const reply = await iq(carol, what, type, inner);
    t.equal(stanzaErrorCondition(reply), 'feature-not-implemented', what);
    t.equal(unsupportedFeature(reply), 'persistent-items', `${what}: persistent-items`);
  }
});

/**
 * Service discovery of accounts (XEP-0030 §3.1, §4.1, §8): one's own
 * account, another account answered by the server on its behalf only for
 * those allowed to see its presence, and the server's items. A core is
 * put together here with the disco feature and a stand-in for the roster's
 * subscription check, so the rule is tested on its own.
 */
import t from 'tap';
import { createCore } from '../../src/xmpp/core.js';
import { NO_METRICS } from '../../src/xmpp/metrics-port.js';
import type { Log } from '../../src/xmpp/log.js';
import * as sasl from '../../src/xmpp/features/sasl.js';
import * as bind from '../../src/xmpp/features/bind.js';
import * as iqFeature from '../../src/xmpp/features/iq.js';
import * as disco from '../../src/xmpp/features/disco.js';
import { createMemoryStorage, deriveStoredCredentials } from '../../src/storage/index.js';
import { NS, parseXml, x, type XmlElement } from '../../src/xml/index.js';
import type { Jid } from '../../src/jid/index.js';
import { FakeConn, saslAnswered, settle, withFakeUsers, type FakeClient } from '../helpers/fake-conn.js';
import { stanzaErrorCondition } from '../helpers/ws-client.js';
import { LoginThrottle } from '../../src/sasl/login-throttle.js';
import { randomBytes } from 'node:crypto';
import { eventually } from '../helpers/eventually.js';

const silent: Log = { info() {}, warn() {}, error() {}, debug() {}, child: () => silent };

/** alice may see bob's presence; nobody else may see anyone's. */
const subscriptions = new Set(['bob@localhost<-alice@localhost']);
const asked: string[] = [];
async function isSubscribed(account: Jid, contact: Jid): Promise<boolean> {
  asked.push(`${account.bare}<-${contact.bare}`);
  return subscriptions.has(`${account.bare}<-${contact.bare}`);
}

const storage = createMemoryStorage();
const core = createCore({ hosts: ['localhost'], log: silent, metrics: NO_METRICS, authTimeout: 30 });
const throttle = new LoginThrottle({ freePerIp: 100, freePerPair: 100, baseDelayMs: 1000, maxDelayMs: 1000, forgetAfterMs: 1000, maxKeys: 100, now: Date.now });
sasl.register(core.ctx, { allowInsecurePlain: true, maxFailures: 3, scramIterations: 4096, anonymousHosts: new Set(), unknownUserSecret: randomBytes(32), throttle }, { users: storage.users });
bind.register(core.ctx, { maxResourcesPerUser: 10 });
iqFeature.register(core.ctx);
disco.register(core.ctx, { name: 'test', isSubscribed });
t.teardown(() => core.shutdown());

async function login(user: string, resource: string): Promise<FakeClient> {
  const conn = new FakeConn();
  const session = core.connect(conn);
  conn.attach(session);
  const send = (xml: string) => conn.events!.element(parseXml(xml, undefined, NS.CLIENT));
  session.streamOpened({ to: 'localhost', version: '1.0' });
  send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${Buffer.from(`\0${user}\0pw`).toString('base64')}</auth>`);
  await eventually(() => saslAnswered(conn), { interval: 1, message: 'the SASL answer' });
  session.streamOpened({ to: 'localhost', version: '1.0' });
  send(`<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='${NS.BIND}'><resource>${resource}</resource></bind></iq>`);
  conn.take();
  return { conn, session, send };
}

async function query(c: FakeClient, ns: string, to?: string, node?: string): Promise<XmlElement> {
  const id = `q${Math.random().toString(36).slice(2)}`;
  c.send(`<iq xmlns='jabber:client' type='get' id='${id}'${to ? ` to='${to}'` : ''}><query xmlns='${ns}'${node ? ` node='${node}'` : ''}/></iq>`);
  for (let i = 0; i < 50; i++) {
    const reply = c.conn.out.find((el) => el.attr('id') === id);
    if (reply) return reply;
    await settle();
  }
  throw new Error('no reply');
}

const identities = (reply: XmlElement) =>
  reply.getChild('query', NS.DISCO_INFO)?.getChildren('identity').map((i) => `${i.attr('category')}/${i.attr('type')}`);
const items = (reply: XmlElement) => reply.getChild('query', NS.DISCO_ITEMS)?.getChildren('item').map((i) => i.attr('jid'));

t.before(async () => {
  for (const u of ['alice', 'bob', 'carol']) await storage.users.create('localhost', u, await deriveStoredCredentials('pw', 4096));
});

t.test("disco#info to one's own account: the account/registered identity and the account features", async (t) => {
  const alice = await login('alice', 'a');
  for (const to of [undefined, 'alice@localhost']) {
    const reply = await query(alice, NS.DISCO_INFO, to);
    t.equal(reply.attr('type'), 'result', `to=${to ?? 'none'}`);
    t.same(identities(reply), ['account/registered']);
    const features = reply.getChild('query', NS.DISCO_INFO)!.getChildren('feature').map((f) => f.attr('var'));
    t.ok(features.includes(NS.DISCO_INFO) && features.includes(NS.DISCO_ITEMS));
  }
  alice.session.close();
});

t.test("disco#info to another account is answered by the server for a subscriber, with the account's JID as from", async (t) => {
  const alice = await login('alice', 'a');
  const reply = await query(alice, NS.DISCO_INFO, 'bob@localhost');
  t.equal(reply.attr('type'), 'result');
  t.equal(reply.attr('from'), 'bob@localhost');
  t.same(identities(reply), ['account/registered']);
  t.ok(asked.includes('bob@localhost<-alice@localhost'), 'the subscription was checked in the right direction');
  const withNode = await query(alice, NS.DISCO_INFO, 'bob@localhost', 'some-node');
  t.equal(stanzaErrorCondition(withNode), 'item-not-found', 'an unknown node');
  alice.session.close();
});

t.test('disco#info to another account gets service-unavailable without a subscription, and for an unknown account alike', async (t) => {
  const carol = await login('carol', 'c');
  for (const to of ['bob@localhost', 'nobody@localhost']) {
    const reply = await query(carol, NS.DISCO_INFO, to);
    t.equal(reply.attr('type'), 'error', to);
    t.equal(stanzaErrorCondition(reply), 'service-unavailable', to);
  }
  carol.session.close();
});

t.test('disco#items of an account lists its available resources to itself and to subscribers; others get an empty list', async (t) => {
  const bob = await login('bob', 'phone');
  const bob2 = await login('bob', 'idle');
  bob.session.presence = x('presence', { xmlns: NS.CLIENT });
  const mine = await query(bob, NS.DISCO_ITEMS);
  t.same(items(mine), ['bob@localhost/phone'], 'only available resources');
  const alice = await login('alice', 'a');
  t.same(items(await query(alice, NS.DISCO_ITEMS, 'bob@localhost')), ['bob@localhost/phone'], 'a subscriber sees them');
  const carol = await login('carol', 'c');
  const denied = await query(carol, NS.DISCO_ITEMS, 'bob@localhost');
  t.equal(denied.attr('type'), 'result', 'XEP-0030 §8: an empty result, not an error');
  t.same(items(denied), []);
  t.same(items(await query(carol, NS.DISCO_ITEMS, 'nobody@localhost')), [], 'the same for an unknown account');
  for (const c of [bob, bob2, alice, carol]) c.session.close();
});

t.test('disco#items of the server is an empty list; an unknown node is item-not-found', async (t) => {
  const alice = await login('alice', 'a');
  const reply = await query(alice, NS.DISCO_ITEMS, 'localhost');
  t.equal(reply.attr('type'), 'result');
  t.same(items(reply), []);
  t.equal(stanzaErrorCondition(await query(alice, NS.DISCO_ITEMS, 'localhost', 'x')), 'item-not-found');
  alice.session.close();
});

t.test('in the full server, the server disco#info lists the features of this work', async (t) => {
  const server = await withFakeUsers(t, ['alice']);
  const alice = await server.login('alice', 'a');
  const reply = await query(alice, NS.DISCO_INFO, 'localhost');
  const features = reply.getChild('query', NS.DISCO_INFO)!.getChildren('feature').map((f) => f.attr('var'));
  for (const f of [NS.OFFLINE, NS.CARBONS, NS.VCARD]) t.ok(features.includes(f), f);
});

t.test('in the full server, an approved presence subscription opens disco#info of the account to the subscriber only', async (t) => {
  const server = await withFakeUsers(t, ['alice', 'bob', 'carol']);
  const alice = await server.login('alice', 'a');
  const bob = await server.login('bob', 'b');
  const carol = await server.login('carol', 'c');
  t.equal(stanzaErrorCondition(await query(alice, NS.DISCO_INFO, 'bob@localhost')), 'service-unavailable', 'before the subscription');
  alice.send(`<presence xmlns='jabber:client' to='bob@localhost' type='subscribe'/>`);
  for (let i = 0; i < 20; i++) await settle();
  bob.send(`<presence xmlns='jabber:client' to='alice@localhost' type='subscribed'/>`);
  for (let i = 0; i < 20; i++) await settle();
  const reply = await query(alice, NS.DISCO_INFO, 'bob@localhost');
  t.equal(reply.attr('type'), 'result', 'bob lets alice see his presence');
  t.same(identities(reply), ['account/registered', 'pubsub/pep'], 'with the PEP service on the account (XEP-0163 §6.1)');
  t.equal(stanzaErrorCondition(await query(carol, NS.DISCO_INFO, 'bob@localhost')), 'service-unavailable', 'carol may not');
  t.equal(stanzaErrorCondition(await query(bob, NS.DISCO_INFO, 'alice@localhost')), 'service-unavailable', 'the subscription is one-way');
  for (const c of [alice, bob, carol]) c.session.close();
});

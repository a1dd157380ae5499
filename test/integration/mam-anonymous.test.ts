/**
 * SASL ANONYMOUS accounts and the message archive (XEP-0313): a throw-away
 * account has none. What it sends a registered account is in that account's
 * archive (§5.1.1: all a user receives); what it receives carries no
 * <stanza-id/> of an archive that does not exist (§3); it is not told of MAM
 * or PEP in disco#info (XEP-0030, XEP-0313 §8), and its MAM requests get
 * service-unavailable.
 */
import t from 'tap';
import { settled, withFakeUsers, type FakeClient, type FakeServer } from '../helpers/fake-conn.js';
import { eventually } from '../helpers/eventually.js';
import { stanzaErrorCondition } from '../helpers/ws-client.js';
import { NS } from '../../src/xml/index.js';

const NS_MAM = 'urn:xmpp:mam:2';
const NS_SID = 'urn:xmpp:sid:0';

async function guest(server: FakeServer): Promise<FakeClient> {
  const c = await server.loginAnonymous();
  c.send(`<presence xmlns='jabber:client'/>`);
  await settled();
  c.conn.take();
  return c;
}

async function answer(c: FakeClient, id: string) {
  await eventually(() => c.conn.out.some((el) => el.local === 'iq' && el.attr('id') === id), { timeout: 5000, message: `the answer to ${id}` });
  return c.conn.out.find((el) => el.local === 'iq' && el.attr('id') === id)!;
}

async function page(c: FakeClient, id: string) {
  c.send(`<iq xmlns='jabber:client' type='set' id='${id}'><query xmlns='${NS_MAM}' queryid='${id}'/></iq>`);
  const fin = await answer(c, id);
  return { fin, results: c.conn.out.filter((el) => el.local === 'message' && el.getChild('result', NS_MAM)?.attr('queryid') === id) };
}

t.test('an anonymous account has no archive; a registered one keeps what it exchanged with it', async (t) => {
  const server = await withFakeUsers(t, ['alice'], { SASL_ANONYMOUS_HOSTS: 'localhost' });
  const alice = await server.login('alice', 'a');
  alice.send(`<presence xmlns='jabber:client'/>`);
  const anon = await guest(server);
  const anonJid = anon.session.jid!.bare;
  t.ok(anon.session.anonymous, 'an anonymous session');
  alice.conn.take();

  anon.send(`<message xmlns='jabber:client' to='alice@localhost' type='chat' id='from-guest'><body>hello from a guest</body></message>`);
  await eventually(() => alice.conn.out.some((el) => el.local === 'message' && el.attr('id') === 'from-guest'), { timeout: 5000, message: 'the guest message' });
  const got = alice.conn.out.find((el) => el.local === 'message' && el.attr('id') === 'from-guest')!;
  const aliceSid = got.getChildren('stanza-id', NS_SID).find((s) => s.attr('by') === 'alice@localhost');
  t.ok(aliceSid, "the registered recipient's copy carries its archive id");

  alice.send(`<message xmlns='jabber:client' to='${anon.session.full_jid}' type='chat' id='to-guest'><body>hello guest</body></message>`);
  await eventually(() => anon.conn.out.some((el) => el.local === 'message' && el.attr('id') === 'to-guest'), { timeout: 5000, message: 'the reply' });
  const reply = anon.conn.out.find((el) => el.local === 'message' && el.attr('id') === 'to-guest')!;
  t.same(reply.getChildren('stanza-id', NS_SID).map(String), [], 'the anonymous recipient gets no stanza-id: it has no archive');

  alice.conn.take();
  const { results } = await page(alice, 'qa');
  t.same(results.map((r) => r.getChild('result', NS_MAM)!.attr('id')).length, 2, "both messages are in alice's archive");
  t.equal(results[0]!.getChild('result', NS_MAM)!.attr('id'), aliceSid?.attr('id'), 'the first under the id alice was given');
  t.same(results.map((r) => r.getChild('result', NS_MAM)!.getChild('forwarded', NS.FORWARD)!.getChild('message', NS.CLIENT)!.attr('id')), ['from-guest', 'to-guest']);

  const asked = await page(anon, 'qg');
  t.equal(stanzaErrorCondition(asked.fin), 'service-unavailable', "the anonymous account's MAM query is service-unavailable");
  t.same(asked.results, [], 'and sends no results');
  anon.send(`<iq xmlns='jabber:client' type='set' id='pg'><prefs xmlns='${NS_MAM}' default='always'/></iq>`);
  t.equal(stanzaErrorCondition(await answer(anon, 'pg')), 'service-unavailable', 'so are its prefs');
  t.ok(anonJid.endsWith('@localhost'));
  for (const c of [alice, anon]) c.session.close();
});

t.test("disco#info of an anonymous account names neither MAM nor PEP; a registered account's names both", async (t) => {
  const server = await withFakeUsers(t, ['alice'], { SASL_ANONYMOUS_HOSTS: 'localhost' });
  const alice = await server.login('alice', 'a');
  const anon = await guest(server);
  const features = async (c: FakeClient, id: string) => {
    c.send(`<iq xmlns='jabber:client' type='get' id='${id}'><query xmlns='${NS.DISCO_INFO}'/></iq>`);
    const res = await answer(c, id);
    return res.getChild('query', NS.DISCO_INFO)!.getChildren('feature').map((f) => f.attr('var')!);
  };
  const registered = await features(alice, 'd1');
  const anonymous = await features(anon, 'd2');
  for (const f of [NS_MAM, 'urn:xmpp:mam:2#extended', 'http://jabber.org/protocol/pubsub#publish']) {
    t.ok(registered.includes(f), `a registered account announces ${f}`);
    t.notOk(anonymous.includes(f), `an anonymous account does not announce ${f}`);
  }
  t.ok(anonymous.includes(NS.DISCO_INFO), 'the anonymous account still answers disco#info');
  for (const c of [alice, anon]) c.session.close();
});

/**
 * vCard-temp (XEP-0054) through the fake transport: one's own vCard, other
 * accounts' vCards answered by the server, the errors that must not reveal
 * which accounts exist, and the size limit.
 */
import t from 'tap';
import { settle, withFakeUsers, type FakeClient } from '../helpers/fake-conn.js';
import { stanzaErrorCondition } from '../helpers/ws-client.js';
import { NS, type XmlElement } from '../../src/xml/index.js';

const server = await withFakeUsers(t, ['alice', 'bob', 'carol'], { MAX_VCARD_SIZE: '2048' });

/** Sends an IQ and returns the reply with its id (bounded wait). */
async function iq(c: FakeClient, xml: string, id: string): Promise<XmlElement> {
  c.send(xml);
  for (let i = 0; i < 50; i++) {
    const reply = c.conn.out.find((el) => el.local === 'iq' && el.attr('id') === id);
    if (reply) {
      c.conn.take();
      return reply;
    }
    await settle();
  }
  throw new Error(`no reply to ${id}`);
}

const get = (id: string, to?: string) =>
  `<iq xmlns='jabber:client' type='get' id='${id}'${to ? ` to='${to}'` : ''}><vCard xmlns='${NS.VCARD}'/></iq>`;
const set = (id: string, inner: string, to?: string) =>
  `<iq xmlns='jabber:client' type='set' id='${id}'${to ? ` to='${to}'` : ''}><vCard xmlns='${NS.VCARD}'>${inner}</vCard></iq>`;

t.test('an account without a vCard gets an empty one', async (t) => {
  const alice = await server.login('alice', 'a');
  const reply = await iq(alice, get('g'), 'g');
  t.equal(reply.attr('type'), 'result');
  const vcard = reply.getChild('vCard', NS.VCARD);
  t.ok(vcard, 'a <vCard/> in vcard-temp');
  t.same(vcard!.getChildren(), [], 'empty');
  alice.session.close();
});

t.test('a set vCard is returned to its owner (no to, or the own bare JID) and replaced as a whole by the next set', async (t) => {
  const alice = await server.login('alice', 'a');
  t.equal((await iq(alice, set('s1', '<FN>Alice Liddell</FN><NICKNAME>al</NICKNAME>'), 's1')).attr('type'), 'result');
  for (const to of [undefined, 'alice@localhost']) {
    const vcard = (await iq(alice, get('g', to), 'g')).getChild('vCard', NS.VCARD)!;
    t.equal(vcard.getChildText('FN', NS.VCARD), 'Alice Liddell', `to=${to ?? 'none'}`);
    t.equal(vcard.getChildText('NICKNAME', NS.VCARD), 'al');
  }
  await iq(alice, set('s2', '<FN>Alice</FN>'), 's2');
  const vcard = (await iq(alice, get('g2'), 'g2')).getChild('vCard', NS.VCARD)!;
  t.equal(vcard.getChildText('FN', NS.VCARD), 'Alice');
  t.equal(vcard.getChild('NICKNAME', NS.VCARD), undefined, 'no partial updates (§3.2)');
  alice.session.close();
});

t.test("another account's vCard is answered by the server from its bare JID, with the owner offline", async (t) => {
  const bob = await server.login('bob', 'b');
  await iq(bob, set('s', '<FN>Bob</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=</BINVAL></PHOTO>'), 's');
  bob.session.close();
  const alice = await server.login('alice', 'a');
  const reply = await iq(alice, get('g', 'bob@localhost'), 'g');
  t.equal(reply.attr('type'), 'result');
  t.equal(reply.attr('from'), 'bob@localhost', 'from the account (§3.3)');
  const vcard = reply.getChild('vCard', NS.VCARD)!;
  t.equal(vcard.getChildText('FN', NS.VCARD), 'Bob');
  t.equal(vcard.getChild('PHOTO', NS.VCARD)?.getChildText('BINVAL', NS.VCARD), 'iVBORw0KGgo=');
  alice.session.close();
});

t.test('an account with no vCard and an unknown account get the same service-unavailable (§3.3, RFC 6121 §8.5.1)', async (t) => {
  const alice = await server.login('alice', 'a');
  for (const to of ['carol@localhost', 'nobody@localhost']) {
    const reply = await iq(alice, get(to, to), to);
    t.equal(reply.attr('type'), 'error', to);
    t.equal(stanzaErrorCondition(reply), 'service-unavailable', to);
    t.equal(reply.getChild('error')!.attr('type'), 'cancel', to);
  }
  alice.session.close();
});

t.test("setting another account's vCard is forbidden and changes nothing", async (t) => {
  const alice = await server.login('alice', 'a');
  const reply = await iq(alice, set('s', '<FN>Mallory</FN>', 'bob@localhost'), 's');
  t.equal(stanzaErrorCondition(reply), 'forbidden');
  t.match(await server.storage.vcards.get('localhost', 'bob'), /<FN>Bob<\/FN>/);
  alice.session.close();
});

t.test('a vCard larger than MAX_VCARD_SIZE is not-acceptable and the stored one stays', async (t) => {
  const alice = await server.login('alice', 'a');
  await iq(alice, set('ok', '<FN>Small</FN>'), 'ok');
  const reply = await iq(alice, set('big', `<DESC>${'x'.repeat(2100)}</DESC>`), 'big');
  t.equal(reply.attr('type'), 'error');
  t.equal(stanzaErrorCondition(reply), 'not-acceptable');
  t.equal(reply.getChild('error')!.attr('type'), 'modify');
  const vcard = (await iq(alice, get('g'), 'g')).getChild('vCard', NS.VCARD)!;
  t.equal(vcard.getChildText('FN', NS.VCARD), 'Small');
  const fits = await iq(alice, set('fits', `<DESC>${'x'.repeat(1900)}</DESC>`), 'fits');
  t.equal(fits.attr('type'), 'result', 'just under the limit is fine');
  alice.session.close();
});

t.test('a vcard-temp payload that is not <vCard/> is bad-request; vcard-temp is in disco#info', async (t) => {
  const alice = await server.login('alice', 'a');
  const bad = await iq(alice, `<iq xmlns='jabber:client' type='get' id='b'><card xmlns='${NS.VCARD}'/></iq>`, 'b');
  t.equal(stanzaErrorCondition(bad), 'bad-request');
  const info = await iq(alice, `<iq xmlns='jabber:client' to='localhost' type='get' id='d'><query xmlns='${NS.DISCO_INFO}'/></iq>`, 'd');
  t.ok(info.getChild('query', NS.DISCO_INFO)!.getChildren('feature').some((f) => f.attr('var') === NS.VCARD));
  alice.session.close();
});

t.test("a deleted account's vCard goes with it", async (t) => {
  await server.addUser('dora');
  const dora = await server.login('dora', 'd');
  await iq(dora, set('s', '<FN>Dora</FN>'), 's');
  dora.session.close();
  await server.storage.users.delete('localhost', 'dora');
  t.equal(await server.storage.vcards.get('localhost', 'dora'), undefined);
  const alice = await server.login('alice', 'a');
  t.equal(stanzaErrorCondition(await iq(alice, get('g', 'dora@localhost'), 'g')), 'service-unavailable');
  alice.session.close();
});

t.test('a SASL ANONYMOUS account cannot store a vCard, reads an empty one, and offline messages to it bounce', async (t) => {
  const anon = await withFakeUsers(t, ['alice'], { SASL_ANONYMOUS_HOSTS: 'localhost' });
  const guest = await anon.loginAnonymous();
  const { session } = guest;
  t.ok(session.anonymous && session.jid, 'an anonymous session');
  t.equal(stanzaErrorCondition(await iq(guest, set('s', '<FN>Guest</FN>'), 's')), 'not-allowed');
  const own = await iq(guest, get('g'), 'g');
  t.same(own.getChild('vCard', NS.VCARD)?.getChildren(), [], 'an empty vCard');
  const alice = await anon.login('alice', 'a');
  const bare = session.jid!.bare;
  t.equal(stanzaErrorCondition(await iq(alice, get('v', bare), 'v')), 'service-unavailable');
  alice.send(`<message xmlns='jabber:client' to='${bare}' type='chat' id='m'><body>hi</body></message>`);
  for (let i = 0; i < 20; i++) await settle();
  const [bounce] = alice.conn.takeStanzas('message');
  t.equal(stanzaErrorCondition(bounce!), 'service-unavailable', 'no offline storage for a throw-away account');
  t.equal(await anon.storage.offline.count('localhost', session.jid!.local), 0);
  for (const c of [alice, guest]) c.session.close();
});

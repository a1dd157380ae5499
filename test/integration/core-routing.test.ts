import t from 'tap';
import { settle, withFakeUsers } from '../helpers/fake-conn.js';
import { stanzaErrorCondition } from '../helpers/ws-client.js';

const server = await withFakeUsers(t, ['alice', 'bob']);

t.test('a message to a bare JID goes to the highest-priority available resources', async (t) => {
  const hi1 = await server.login('bob', 'hi1');
  const hi2 = await server.login('bob', 'hi2');
  const lo = await server.login('bob', 'lo');
  const neg = await server.login('bob', 'neg');
  hi1.send(`<presence xmlns='jabber:client'><priority>5</priority></presence>`);
  hi2.send(`<presence xmlns='jabber:client'><priority>5</priority></presence>`);
  lo.send(`<presence xmlns='jabber:client'><priority>1</priority></presence>`);
  neg.send(`<presence xmlns='jabber:client'><priority>-1</priority></presence>`);
  const alice = await server.login('alice', 'a');
  for (const c of [hi1, hi2, lo, neg]) c.conn.take();
  alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat'><body>x</body></message>`);
  await settle();
  t.equal(hi1.conn.takeStanzas('message').length, 1, 'tied highest priority gets it');
  t.equal(hi2.conn.takeStanzas('message').length, 1, 'the other tied resource too');
  t.equal(lo.conn.takeStanzas('message').length, 0, 'lower priority does not');
  t.equal(neg.conn.takeStanzas('message').length, 0, 'negative priority never does');
  alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='headline'><body>x</body></message>`);
  await settle();
  t.equal(lo.conn.takeStanzas('message').length, 1, 'headline goes to every non-negative resource');
  t.equal(neg.conn.takeStanzas('message').length, 0);
  for (const c of [hi1, hi2, lo, neg, alice]) c.session.close();
});

t.test('a message to an offline full JID falls back to the bare JID rules', async (t) => {
  const bob = await server.login('bob', 'here');
  bob.send(`<presence xmlns='jabber:client'/>`);
  const alice = await server.login('alice', 'a');
  bob.conn.take();
  alice.send(`<message xmlns='jabber:client' to='bob@localhost/gone' type='chat'><body>x</body></message>`);
  await settle();
  t.equal(bob.conn.takeStanzas('message').length, 1);
  bob.session.close();
  alice.session.close();
});

t.test('an IQ to an unavailable full JID gets service-unavailable; the same for an unknown account', async (t) => {
  const alice = await server.login('alice', 'a');
  for (const to of ['bob@localhost/nope', 'nobody@localhost/x']) {
    alice.send(`<iq xmlns='jabber:client' to='${to}' type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await settle();
    const [reply] = alice.conn.takeStanzas('iq');
    t.equal(reply?.attr('type'), 'error', to);
    t.equal(stanzaErrorCondition(reply!), 'service-unavailable', to);
  }
  alice.session.close();
});

t.test('a stanza to another domain gets remote-server-not-found; a bad to gets jid-malformed', async (t) => {
  const alice = await server.login('alice', 'a');
  alice.send(`<message xmlns='jabber:client' to='someone@example.org' type='chat' id='r'><body>x</body></message>`);
  await settle();
  t.equal(stanzaErrorCondition(alice.conn.takeStanzas('message')[0]!), 'remote-server-not-found');
  alice.send(`<message xmlns='jabber:client' to='a@b@c' type='chat' id='m'><body>x</body></message>`);
  await settle();
  t.equal(stanzaErrorCondition(alice.conn.takeStanzas('message')[0]!), 'jid-malformed');
  alice.session.close();
});

t.test('an IQ without an id, or a get with two payloads, is bad-request', async (t) => {
  const alice = await server.login('alice', 'a');
  alice.send(`<iq xmlns='jabber:client' type='get' id='two'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>`);
  await settle();
  t.equal(stanzaErrorCondition(alice.conn.takeStanzas('iq')[0]!), 'bad-request');
  alice.send(`<iq xmlns='jabber:client' type='bogus' id='t'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await settle();
  t.equal(stanzaErrorCondition(alice.conn.takeStanzas('iq')[0]!), 'bad-request');
  alice.session.close();
});

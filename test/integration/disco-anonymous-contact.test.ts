/**
 * XEP-0030 §3.1/§8: the server answers disco#info on an account's bare JID on its
 * behalf. For a SASL ANONYMOUS account a subscribed contact is told what the account
 * is: account/anonymous without PEP and MAM, as its own view says (before, the contact
 * was told account/registered plus PEP and MAM: found in review).
 */
import t from 'tap';
import { withFakeUsers } from '../helpers/fake-conn.js';
import { iq, drain, online } from '../helpers/roster-kit.js';
import { NS } from '../../src/xml/index.js';

const server = await withFakeUsers(t, ['bob'], { SASL_ANONYMOUS_HOSTS: 'localhost' });

t.test("a contact's disco#info of an anonymous account matches what the account is", async (t) => {
  const anon = await server.loginAnonymous();
  const anonBare = anon.session.jid!.bare;
  const bob = await online(server, 'bob', 'b');
  // bob subscribes to the anonymous account's presence; it approves (bob gets 'to', anon has 'from').
  bob.send(`<presence xmlns='jabber:client' type='subscribe' to='${anonBare}'/>`);
  await drain();
  anon.send(`<presence xmlns='jabber:client' type='subscribed' to='bob@localhost'/>`);
  await drain();
  const own = await iq(anon, 'get', `<query xmlns='${NS.DISCO_INFO}'/>`);
  const seen = await iq(bob, 'get', `<query xmlns='${NS.DISCO_INFO}'/>`, anonBare);
  t.equal(seen.attr('type'), 'result', 'bob may discover the account (subscribed)');
  const ids = (r: typeof seen) => r.getChild('query', NS.DISCO_INFO)!.getChildren('identity').map((i) => `${i.attr('category')}/${i.attr('type')}`);
  const feats = (r: typeof seen) => r.getChild('query', NS.DISCO_INFO)!.getChildren('feature').map((f) => f.attr('var'));
  t.same(ids(own), ['account/anonymous'], "the account's own view");
  t.same(ids(seen), ['account/anonymous'], 'the contact is told account/anonymous, no pubsub/pep identity');
  t.notOk(feats(seen).includes('urn:xmpp:mam:2'), 'no MAM advertised (the account has no archive)');
  t.notOk(feats(seen).includes('http://jabber.org/protocol/pubsub#publish'), 'no PEP advertised (anonymous accounts have no PEP service)');
  anon.session.close(); bob.session.close();
  await drain();
});

/**
 * XEP-0359: the server stamps <stanza-id by='<account bare JID>'/>; the 'by' entity
 * advertises urn:xmpp:sid:0 (Conversations checks the account's bare JID and ignores
 * the ids otherwise); before, only the server domain did (found in review).
 */
import t from 'tap';
import { withFakeUsers } from '../helpers/fake-conn.js';
import { iq, Reader, online, drain } from '../helpers/roster-kit.js';
import { NS } from '../../src/xml/index.js';

const server = await withFakeUsers(t, ['alice', 'bob']);

t.test("the account whose bare JID is the stanza-id's 'by' advertises urn:xmpp:sid:0", async (t) => {
  const alice = await online(server, 'alice', 'a');
  const bob = await online(server, 'bob', 'b');
  const r = new Reader(bob);
  alice.send(`<message xmlns='jabber:client' type='chat' to='bob@localhost' id='m1'><body>hi</body></message>`);
  const msg = await r.until((el) => el.local === 'message' && el.attr('id') === 'm1', 'the message');
  const sid = msg.getChild('stanza-id', 'urn:xmpp:sid:0');
  t.equal(sid?.attr('by'), 'bob@localhost', "stanza-id by='bob@localhost'");
  const info = await iq(bob, 'get', `<query xmlns='${NS.DISCO_INFO}'/>`, 'bob@localhost');
  const features = info.getChild('query', NS.DISCO_INFO)!.getChildren('feature').map((f) => f.attr('var'));
  t.ok(features.includes('urn:xmpp:mam:2'), 'MAM on the account');
  t.ok(features.includes('urn:xmpp:sid:0'), "urn:xmpp:sid:0 on the 'by' JID (the account)");
  alice.session.close(); bob.session.close();
  await drain();
});

/**
 * A subscription request stored for the contact's next login (RFC 6121
 * §3.1.3) is what the server accepted plus the `from` it stamped: read back
 * with the bounds of what the server wrote, not those of a client's input,
 * it keeps what the sender put in it (here a nick, XEP-0172 §4.1) even when
 * sent with as many attributes as a client may.
 */
import t from 'tap';
import { withFakeUsers } from '../helpers/fake-conn.js';
import { closeAll, drain, online, Reader, rosterGet } from '../helpers/roster-kit.js';

t.test('a stored subscription request with as many attributes as a client may send keeps its nick', async (t) => {
  const server = await withFakeUsers(t, ['alice', 'bob']);
  const bob = await online(server, 'bob', 'b');
  // 64 attributes as sent (xmlns, type, to and 61 of its own); the server adds `from`.
  const own = Array.from({ length: 61 }, (_, i) => `a${i}='${i}'`).join(' ');
  bob.send(`<presence xmlns='jabber:client' type='subscribe' to='alice@localhost' ${own}><nick xmlns='http://jabber.org/protocol/nick'>Bobby</nick></presence>`);
  await drain(20);
  await closeAll(bob);
  const alice = await server.login('alice', 'a');
  t.teardown(() => closeAll(alice));
  await rosterGet(alice);
  const r = new Reader(alice);
  alice.send(`<presence xmlns='jabber:client'/>`);
  const requests = (await r.all()).filter((el) => el.local === 'presence' && el.attr('type') === 'subscribe');
  t.equal(requests.length, 1, 'the request is delivered once');
  t.equal(requests[0]?.attr('from'), 'bob@localhost');
  t.equal(requests[0]?.getChildText('nick', 'http://jabber.org/protocol/nick'), 'Bobby', 'with its nick, as sent');
  t.equal(requests[0]?.attr('a60'), '60', 'and its attributes');
});

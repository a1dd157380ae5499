/**
 * XEP-0203 delay notations a client puts in a message or presence: one that claims to
 * come from this server is a forgery (only the server stamps its own: offline
 * storage, hand-over) and never reaches the recipient; the server's address
 * in any form counts, bare or with a resource, in any case, with a final dot
 * or in A-labels, on any of its domains (RFC 7622 §3.2, compared after
 * enforcement). One from another entity, the sender itself included, stays.
 * The raw wire on both ends, delivered live and from offline storage.
 */
import t, { type Test } from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { availableWs } from '../helpers/ws-client.js';

const server = await withUsers(t, ['alice', 'bob', 'carol'], { ALLOW_INSECURE_PLAIN: 'true', XMPP_DOMAIN: 'localhost,xn--bcher-kva.example' });

const FORGED_STAMP = '2001-01-01T00:00:00Z';
/**
 * `from`s naming this server: the domains served, bare or with a resource, as a client may spell them;
 * 'localhost/' is no JID (an empty resourcepart), but a reader lenient about it sees the server.
 */
const OURS = [
  'localhost', 'localhost/x', 'LocalHost./phone', 'localhost/', 'xn--bcher-kva.example/r', 'BÜCHER.example', 'bücher.example/a/b',
];
/** `from`s of other entities: the sender's own addresses, another account of the domain, a remote room. */
const OTHERS = ['alice@localhost/a', 'alice@localhost', 'carol@localhost', 'room@muc.example/nick', 'muc.example'];

const delays = (from: readonly string[]): string => from.map((f, i) => `<delay xmlns='${NS.DELAY}' from='${f}' stamp='2001-01-01T00:00:${String(i).padStart(2, '0')}Z'/>`).join('');
const fromsOf = (m: XmlElement): Array<string | undefined> => m.getChildren('delay', NS.DELAY).map((d) => d.attr('from'));

async function send(t: Test, id: string): Promise<void> {
  const alice = await availableWs(t, server.wsUrl, 'alice', 'a');
  alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='${id}'><body>${id}</body>${delays([...OURS, ...OTHERS])}</message>`);
  // A ping answered: the message before it has been handled (one session's stanzas in order).
  alice.send(`<iq xmlns='jabber:client' type='get' id='${id}-ping'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await alice.until((el) => el.attr('id') === `${id}-ping`);
}

t.test('delivered live: no delay in the server\'s name, the others as sent', async (t) => {
  const bob = await availableWs(t, server.wsUrl, 'bob', 'b');
  await send(t, 'live');
  const m = await bob.until((el) => el.local === 'message' && el.attr('id') === 'live');
  t.same(fromsOf(m), OTHERS, 'only the notations of other entities, in order');
});

t.test('delivered from offline storage: the one delay in the server\'s name is its own', async (t) => {
  await send(t, 'stored');
  const bob = await availableWs(t, server.wsUrl, 'bob', 'b');
  const m = await bob.until((el) => el.local === 'message' && el.attr('id') === 'stored');
  t.same(fromsOf(m), [...OTHERS, 'localhost'], 'the notations of other entities, then the server\'s own');
  const ours = m.getChildren('delay', NS.DELAY).find((d) => d.attr('from') === 'localhost')!;
  t.not(ours.attr('stamp'), FORGED_STAMP, 'stamped when stored, not as the client claimed');
  t.equal(ours.text(), 'Offline Storage');
});

t.test('presence too: a directed presence reaches its recipient without the delays in the server\'s name', async (t) => {
  const bob = await availableWs(t, server.wsUrl, 'bob', 'b');
  const alice = await availableWs(t, server.wsUrl, 'alice', 'a');
  alice.send(`<presence xmlns='jabber:client' to='bob@localhost/b' id='directed'><show>away</show>${delays([...OURS, ...OTHERS])}</presence>`);
  const p = await bob.until((el) => el.local === 'presence' && el.attr('id') === 'directed');
  t.same(fromsOf(p), OTHERS, 'only the notations of other entities, in order');
});

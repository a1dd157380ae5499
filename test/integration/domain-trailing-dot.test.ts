/**
 * RFC 7622 §3.2: "If the domainpart includes a final character considered to
 * be a label separator (dot) by [IDNA2003] or [DNS], this character MUST be
 * stripped from the domainpart before the JID of which it is a part is used
 * for the purpose of routing an XML stanza, comparing against another JID, or
 * constructing an XMPP URI or IRI." So 'localhost.' is localhost: in a
 * stanza's to, in the stream header's to (RFC 7395 <open/>) and in the BOSH
 * session creation and restart requests (XEP-0206 §3, §5).
 */
import t from 'tap';
import { NS, x } from '../../src/xml/index.js';
import { RawBoshClient } from '../helpers/bosh-client.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { becomeAvailable, login, ping, xml, type XmppJsClient } from '../helpers/xmppjs.js';

const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true' });

/** xmpp.js logged in as `user` on a stream opened to `domain`, available. */
async function xmppjs(tt: Parameters<typeof login>[0], user: string, resource: string, domain = 'localhost'): Promise<XmppJsClient & { jid: string }> {
  // ClientOptions leaves out domain (createClient sets it); xmpp.js takes it among its options.
  const s = await login(tt, server, { username: user, password: `${user}-pw`, resource, domain } as Parameters<typeof login>[2]);
  await becomeAvailable(s);
  return s;
}

t.test('a message to bob@localhost. reaches bob, addressed in the normal form', async (t) => {
  const alice = await xmppjs(t, 'alice', 'a');
  const bob = await xmppjs(t, 'bob', 'b');
  await alice.xmpp.send(xml('message', { to: 'bob@localhost.', type: 'chat', id: 'bare' }, xml('body', {}, 'to the bare JID')));
  await alice.xmpp.send(xml('message', { to: 'bob@LocalHost./b', type: 'chat', id: 'full' }, xml('body', {}, 'to the full JID')));
  const bare = await bob.inbox.next('the message to bob@localhost.');
  t.equal(bare.attrs.id, 'bare');
  t.equal(bare.getChildText('body'), 'to the bare JID');
  t.equal(bare.attrs.to, 'bob@localhost', 'to is the bare JID without the dot');
  t.equal(bare.attrs.from, 'alice@localhost/a');
  const full = await bob.inbox.next('the message to bob@LocalHost./b');
  t.equal(full.attrs.id, 'full');
  t.equal(full.attrs.to, 'bob@localhost/b', 'to is the full JID without the dot, the domain in lower case');
  t.same(alice.inbox.items.map((m) => m.attrs.type), [], 'alice got no error back');
});

t.test("an IQ to 'localhost.' is answered by the server, from its domain", async (t) => {
  const alice = await xmppjs(t, 'alice', 'pinger');
  const iq = xml('iq', { type: 'get', to: 'localhost.', id: 'dot-ping' }, xml('ping', { xmlns: NS.PING }));
  const reply = await alice.xmpp.iqCaller.request(iq, 5000);
  t.equal(reply.attrs.type, 'result', `a result, not an error: ${reply.toString()}`);
  t.equal(reply.attrs.from, 'localhost', 'from the domain in its normal form');
  t.equal(reply.attrs.to, 'alice@localhost/pinger');
});

t.test("xmpp.js with the domain 'localhost.' logs in, is bound at localhost and gets its ping answered", async (t) => {
  const alice = await xmppjs(t, 'alice', 'dotted', 'localhost.');
  t.equal(alice.jid, 'alice@localhost/dotted', 'the bound JID names localhost');
  t.equal((await ping(alice)).attrs.type, 'result');
  const bob = await xmppjs(t, 'bob', 'b');
  await bob.xmpp.send(xml('message', { to: alice.jid, type: 'chat', id: 'to-dotted' }, xml('body', {}, 'hi')));
  const m = await alice.inbox.next('a message to the session opened to localhost.');
  t.equal(m.attrs.id, 'to-dotted');
});

t.test("a WebSocket stream opened to 'localhost.' is served as localhost, before and after SASL", async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.ws.terminate());
  c.open('localhost.');
  const open = await c.next();
  t.ok(open.is('open', NS.FRAMING));
  t.equal(open.attr('from'), 'localhost');
  t.ok((await c.next()).getChild('mechanisms', NS.SASL), 'SASL mechanisms offered, no host-unknown');
  c.close();
  const d = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => d.ws.terminate());
  t.equal(await d.login('alice', 'alice-pw', 'ws-dotted', 'localhost.'), 'alice@localhost/ws-dotted');
});

t.test("a BOSH session created with to='localhost.' is served as localhost, and its restart too", async (t) => {
  const c = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => c.destroy());
  const created = await c.create({ to: 'localhost.' });
  t.equal(created.body?.attr('type'), undefined, `not terminated: ${created.text}`);
  t.equal(created.body?.attr('from'), 'localhost');
  t.ok(created.body?.getChild('features', NS.STREAM)?.getChild('mechanisms', NS.SASL), 'SASL mechanisms offered');
  const auth = x('auth', { xmlns: NS.SASL, mechanism: 'PLAIN' }, Buffer.from('\0alice\0alice-pw').toString('base64'));
  t.ok((await c.send({}, auth)).body?.getChild('success', NS.SASL), 'PLAIN succeeds');
  const restarted = await c.send({ 'xmlns:xmpp': NS.XBOSH, 'xmpp:restart': 'true', to: 'localhost.', 'xml:lang': 'en' });
  t.ok(restarted.body?.getChild('features', NS.STREAM)?.getChild('bind', NS.BIND), `bind offered after the restart: ${restarted.text}`);
});

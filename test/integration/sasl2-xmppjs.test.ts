/**
 * SASL2 (XEP-0388), Bind2 (XEP-0386), inline resumption (XEP-0198 §6) and
 * FAST (XEP-0484) with @xmpp/client 0.14, unmodified, over WebSocket. It
 * picks SASL2 whenever the server offers <authentication/>, requests Bind2
 * with its resource option as <tag/>, enables stream management inline,
 * asks for a FAST token when it has none and uses the token next time.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { createClient, cutOff, login, ping, serverHibernates, start, within, xml, type XmlEl, type XmppJsClient } from '../helpers/xmppjs.js';
import { eventually } from '../helpers/eventually.js';

const NS_SASL2 = 'urn:xmpp:sasl:2';
const NS_BIND2 = 'urn:xmpp:bind:0';
const NS_SM = 'urn:xmpp:sm:3';

const server = await withUsers(t, ['alice', 'bob'], { SASL2_ENABLED: 'true', ALLOW_INSECURE_PLAIN: 'true' });

const sentOf = (s: XmppJsClient, name: string, ns: string): XmlEl[] => s.sent.filter((el) => el.is(name, ns));
const receivedOf = (s: XmppJsClient, name: string, ns: string): XmlEl[] => s.received.filter((el) => el.is(name, ns));

t.test('xmpp.js logs in with SASL2 and Bind2: a resource from its tag, stream management enabled inline, no stream restart and no bind IQ', async (t) => {
  const alice = await login(t, server, { username: 'alice', password: 'alice-pw', resource: 'web' });
  const auth = sentOf(alice, 'authenticate', NS_SASL2)[0];
  t.ok(auth, 'xmpp.js sent <authenticate xmlns="urn:xmpp:sasl:2"/>');
  t.ok(auth?.getChild('bind', NS_BIND2)?.getChild('enable', NS_SM), 'with Bind2 and an inline <enable/>');
  const success = receivedOf(alice, 'success', NS_SASL2)[0];
  t.ok(success, 'the server answered <success xmlns="urn:xmpp:sasl:2"/>');
  t.match(success?.getChildText('authorization-identifier'), /^alice@localhost\/web\.[A-Za-z0-9_-]{12}$/, 'the authorization identifier is the full JID: the tag and a server part');
  t.equal(String(alice.xmpp.jid), success?.getChildText('authorization-identifier'), 'xmpp.js took that JID');
  const enabled = success?.getChild('bound', NS_BIND2)?.getChild('enabled', NS_SM);
  t.equal(enabled?.attrs.resume, 'true', '<bound/> carries a resumable <enabled/>');
  t.equal(alice.xmpp.streamManagement.id, enabled?.attrs.id, 'xmpp.js enabled stream management from it');
  t.same(alice.sent.filter((el) => el.is('iq') && el.getChild('bind', 'urn:ietf:params:xml:ns:xmpp-bind')).map(String), [], 'no legacy bind IQ');
  const after = alice.received.slice(alice.received.indexOf(success!) + 1)[0];
  t.ok(after?.is('features', 'http://etherx.jabber.org/streams') && !after.getChild('authentication', NS_SASL2), 'the features of the authenticated stream follow <success/> at once (no restart)');
  await ping(alice);
  const bob = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'desk' });
  await alice.xmpp.send(xml('message', { to: String(bob.xmpp.jid), type: 'chat', id: 'm1' }, xml('body', {}, 'hi bob')));
  const got = await bob.inbox.next('alice\'s message to bob');
  t.equal(got.getChildText('body'), 'hi bob', 'bob, also on SASL2, gets alice\'s message');
});

t.test('the same user agent logging in again takes its resource over: the old session gets conflict, no second resource', async (t) => {
  const agent = xml('user-agent', { id: 'a0b1c2d3-e4f5-4a6b-8c7d-0e1f2a3b4c5d' });
  const first = await login(t, server, { username: 'alice', password: 'alice-pw', resource: 'tab', userAgent: agent } as never);
  const again = createClient(t, server, { username: 'alice', password: 'alice-pw', resource: 'tab', userAgent: agent } as never);
  first.xmpp.reconnect.stop();
  const jid = await start(again, 'alice again');
  t.equal(jid, String(first.xmpp.jid), 'the same full JID, derived from the user-agent id');
  await eventually(() => first.received.some((el) => el.is('error') && el.getChild('conflict') !== undefined), { message: 'the first session to get a conflict stream error' });
  t.equal([...server.app.sessions.resources('localhost', 'alice')].filter((s) => s.full_jid === jid).length, 1, 'one session on that resource');
});

t.test('after a cut socket xmpp.js resumes inline: <resume/> inside <authenticate/>, <resumed/> inside <success/>, and the message sent meanwhile arrives', async (t) => {
  const alice = await login(t, server, { username: 'alice', password: 'alice-pw', resource: 'reload' });
  const bob = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'sender' });
  const jid = String(alice.xmpp.jid);
  const smid = alice.xmpp.streamManagement.id;
  t.ok(smid, 'stream management was enabled inline');
  alice.xmpp.reconnect.delay = 100;
  const resumed = new Promise<void>((resolve) => alice.xmpp.streamManagement.once('resumed', resolve));
  const from = alice.received.length;
  cutOff(alice);
  await serverHibernates(server, jid);
  await bob.xmpp.send(xml('message', { to: jid, type: 'chat', id: 'while-away' }, xml('body', {}, 'are you there?')));
  await ping(bob);
  await within(resumed, 'xmpp.js to resume');
  const auth = sentOf(alice, 'authenticate', NS_SASL2)[1];
  t.equal(auth?.getChild('resume', NS_SM)?.attrs.previd, smid, 'the second <authenticate/> carries <resume previd/>');
  const success = alice.received.slice(from).find((el) => el.is('success', NS_SASL2));
  t.ok(success?.getChild('resumed', NS_SM), '<success/> carries <resumed/>');
  t.notOk(success?.getChild('bound', NS_BIND2), 'and no <bound/>: the bind is ignored (XEP-0386 §3)');
  t.equal(success?.getChildText('authorization-identifier'), jid, 'the authorization identifier is the resumed full JID');
  const got = await alice.inbox.next('the message sent while alice was away');
  t.equal(got.attrs.id, 'while-away', 'the message sent during the cut arrives after the resumption');
  t.equal(String(alice.xmpp.jid), jid, 'the same resource');
});

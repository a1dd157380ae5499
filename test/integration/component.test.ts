/**
 * A local component, end to end: the built-in echo component (ECHO_COMPONENT)
 * on its own subdomain, reached by a real client (xmpp.js over WebSocket).
 * It is added by src/xmpp/components/echo.ts and one line in app.ts, with no
 * change to the core: the router delivers to it, server disco#items lists it,
 * and the filters every stanza passes (XEP-0191 blocking) apply to it too.
 */
import t from 'tap';
import { startServer, type TestServer } from '../helpers/server.js';
import { loadConfig } from '../../src/config/index.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import { buildApp } from '../../src/app.js';
import { login, nextReceived, within, xml, WAIT_MS, type XmppJsClient } from '../helpers/xmppjs.js';

const ECHO = 'echo.localhost';
let server: TestServer;
t.before(async () => {
  server = await startServer({ ECHO_COMPONENT: ECHO });
  await server.addUser('alice', 'alice-pw');
});
t.teardown(() => server.close());

const request = (s: XmppJsClient, type: 'get' | 'set', to: string, payload: ReturnType<typeof xml>) =>
  within(s.xmpp.iqCaller.request(xml('iq', { type, to }, payload), WAIT_MS), `the answer from ${to}`);

t.test('server disco#items lists the component; its disco#info names it and its features', async (t) => {
  const s = await login(t, server, { username: 'alice', password: 'alice-pw', resource: 'disco' });
  const items = await request(s, 'get', 'localhost', xml('query', { xmlns: 'http://jabber.org/protocol/disco#items' }));
  const listed = items.getChild('query')!.getChildren('item').map((i) => [i.attrs.jid, i.attrs.name]);
  t.same(listed, [[ECHO, 'Echo']]);
  const info = (await request(s, 'get', ECHO, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }))).getChild('query')!;
  t.equal(info.getChild('identity')?.attrs.category, 'component');
  t.same(info.getChildren('feature').map((f) => f.attrs.var).sort(), ['http://jabber.org/protocol/disco#info', 'jabber:iq:version', 'urn:xmpp:ping']);
});

t.test('a message to the component comes back to the sending resource; version and ping are answered', async (t) => {
  const s = await login(t, server, { username: 'alice', password: 'alice-pw', resource: 'echo' });
  const back = nextReceived(s, (el) => el.is('message') && el.attrs.from === ECHO, 'the echo');
  await s.xmpp.send(xml('message', { to: ECHO, type: 'chat', id: 'e1' }, xml('body', {}, 'hello, component')));
  const echoed = await back;
  t.equal(echoed.getChildText('body'), 'hello, component');
  t.equal(echoed.attrs.to, s.jid, 'to the full JID that sent it');
  t.equal(echoed.attrs.id, 'e1');
  const version = await request(s, 'get', ECHO, xml('query', { xmlns: 'jabber:iq:version' }));
  t.match(version.getChild('query')?.getChildText('version'), /^\d+\.\d+\.\d+/);
  const pong = await request(s, 'get', ECHO, xml('ping', { xmlns: 'urn:xmpp:ping' }));
  t.equal(pong.attrs.type, 'result');
});

t.test('an IQ the component does not serve gets service-unavailable (RFC 6120 §8.4)', async (t) => {
  const s = await login(t, server, { username: 'alice', password: 'alice-pw', resource: 'unknown' });
  const err = await request(s, 'get', ECHO, xml('query', { xmlns: 'jabber:iq:roster' })).then(() => undefined, (e: { condition?: string }) => e);
  t.equal(err?.condition, 'service-unavailable');
});

t.test('a blocked component is vetoed before routing like any JID (XEP-0191 <blocked/>)', async (t) => {
  const s = await login(t, server, { username: 'alice', password: 'alice-pw', resource: 'block' });
  await request(s, 'set', 'alice@localhost', xml('block', { xmlns: 'urn:xmpp:blocking' }, xml('item', { jid: ECHO })));
  t.teardown(() => request(s, 'set', 'alice@localhost', xml('unblock', { xmlns: 'urn:xmpp:blocking' })).catch(() => undefined));
  const refused = nextReceived(s, (el) => el.is('message') && el.attrs.type === 'error', 'the refusal');
  await s.xmpp.send(xml('message', { to: ECHO, type: 'chat', id: 'b1' }, xml('body', {}, 'blocked?')));
  const error = (await refused).getChild('error')!;
  t.ok(error.getChild('not-acceptable', 'urn:ietf:params:xml:ns:xmpp-stanzas'), 'not-acceptable');
  t.ok(error.getChild('blocked', 'urn:xmpp:blocking:errors'), 'with <blocked/>');
});

t.test('without ECHO_COMPONENT the address is remote: remote-server-not-found; one of XMPP_DOMAIN is refused at start', async (t) => {
  const plain = await startServer();
  t.teardown(() => plain.close());
  await plain.addUser('bob', 'bob-pw');
  const s = await login(t, plain, { username: 'bob', password: 'bob-pw', resource: 'plain' });
  const bounced = nextReceived(s, (el) => el.is('message') && el.attrs.type === 'error', 'the bounce');
  await s.xmpp.send(xml('message', { to: ECHO, type: 'chat', id: 'r1' }, xml('body', {}, 'anyone?')));
  t.ok((await bounced).getChild('error')?.getChild('remote-server-not-found', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
  t.throws(() => loadConfig({ LOG_LEVEL: 'silent', ECHO_COMPONENT: 'localhost' }), /^ECHO_COMPONENT="localhost" is invalid/, 'a configuration error');
  // The component's own guard stays, for a config built otherwise (tests, embedders).
  const config = { ...loadConfig({ LOG_LEVEL: 'silent' }), echoComponent: 'localhost' };
  await t.rejects(buildApp(config, createMemoryStorage(), { logger: false }), /ECHO_COMPONENT/);
});

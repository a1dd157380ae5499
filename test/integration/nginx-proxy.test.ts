/**
 * Real nginx (Debian's package) in front of both transports, with the
 * README's location blocks read from README.md (issue 13 item 7). One nginx
 * for the file: a plain-HTTP server and a TLS server with the same blocks, so
 * `$scheme` is really `http` or `https`, as on a site that terminates TLS in
 * nginx (the realistic setup: the README's `X-Forwarded-Proto $scheme`).
 *
 * Distinct clients connect from 127.0.0.2 and 127.0.0.3 (all of 127/8 is on
 * lo), so nginx sees distinct peers and appends each to X-Forwarded-For, as
 * it does for real visitors. The gateway trusts only 127.0.0.1 (nginx).
 */
import t, { type Test } from 'tap';
import http from 'node:http';
import https from 'node:https';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { SCHEMA } from '../../src/config/schema.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { RawBoshClient } from '../helpers/bosh-client.js';
import { readmeLocations, readmeReadTimeout, startNginx } from '../helpers/nginx.js';
import { plain } from '../helpers/scram-client.js';

/** nginx's read timeout in this file, scaled down from the README's (3600 s and 90 s) so the idle tests take seconds. */
const READ_TIMEOUT = 3;
const server = await withUsers(t, { alice: 'alice-secret', bob: 'bob-secret' }, {
  TRUSTED_PROXIES: '127.0.0.1', WS_PING_INTERVAL: '1', BOSH_MAX_WAIT: '2', BOSH_MAX_SESSIONS_PER_IP: '2',
  LOGIN_FAILURES_PER_IP: '2', LOGIN_FAILURES_PER_ACCOUNT: '100', LOGIN_BACKOFF_MAX: '60',
});
const nginx = await startNginx(t, readmeLocations(server.httpUrl, () => `${READ_TIMEOUT}s`));
const wsUrl = (base: string) => `${base.replace(/^http/, 'ws')}/xmpp-websocket`;
const tls = { rejectUnauthorized: false };

/** A WebSocket from `localAddress` (a distinct loopback "visitor"), closed at teardown. */
async function visitor(t: Test, url: string, localAddress: string, headers: Record<string, string> = {}): Promise<RawWsClient> {
  const c = await RawWsClient.connectWith(url, 'xmpp', { ...tls, localAddress, headers });
  t.teardown(() => c.ws.terminate());
  return c;
}

/** Opens the stream and returns the SASL mechanisms offered. */
async function mechanisms(c: RawWsClient): Promise<string[]> {
  c.open();
  await c.next();
  const features = await c.next();
  return features.getChild('mechanisms', NS.SASL)?.getChildren().map((m) => m.text()) ?? [];
}

/** The server-side session of a bound full JID. */
function sessionOf(jid: string) {
  const s = [...server.app.sessions.all].find((x) => x.full_jid === jid);
  if (!s) throw new Error(`no session for ${jid}`);
  return s;
}

const saslCondition = (el: XmlElement) => el.getChildren().find((c) => c.local !== 'text')?.local ?? el.local;

t.test('the README gives BOSH a read timeout above the longest wait, and the WebSocket one above the ping interval', async (t) => {
  t.ok(readmeReadTimeout('/http-bind') > SCHEMA.boshMaxWait.default, `/http-bind read timeout above BOSH_MAX_WAIT's default ${SCHEMA.boshMaxWait.default}`);
  t.ok(readmeReadTimeout('/xmpp-websocket') > SCHEMA.wsPingInterval.default, 'the WebSocket read timeout above WS_PING_INTERVAL');
});

t.test('through nginx over https the session has the client address and is secure, so PLAIN is offered', async (t) => {
  const c = await visitor(t, wsUrl(nginx.httpsUrl), '127.0.0.2');
  t.ok((await mechanisms(c)).includes('PLAIN'), 'PLAIN offered: nginx said X-Forwarded-Proto https');
  c.ws.terminate();
  const d = await visitor(t, wsUrl(nginx.httpsUrl), '127.0.0.2');
  const jid = await d.login('alice', 'alice-secret', 'tls');
  t.equal(sessionOf(jid).ip, '127.0.0.2', "the session's ip is the visitor's, not nginx's 127.0.0.1");
  t.equal(sessionOf(jid).secure, true);
});

t.test('through nginx over plain http the session is not secure: no PLAIN, even when the client claims https', async (t) => {
  const c = await visitor(t, wsUrl(nginx.httpUrl), '127.0.0.3', { 'x-forwarded-proto': 'https' });
  const mechs = await mechanisms(c);
  t.ok(mechs.length > 0, 'mechanisms are offered');
  t.notOk(mechs.includes('PLAIN'), "nginx's $scheme (http) replaces the client's X-Forwarded-Proto");
});

t.test('a spoofed X-Forwarded-For sent to nginx is not taken: the address nginx saw is', async (t) => {
  const c = await visitor(t, wsUrl(nginx.httpsUrl), '127.0.0.3', { 'x-forwarded-for': '203.0.113.7' });
  const jid = await c.login('bob', 'bob-secret', 'spoof');
  t.equal(sessionOf(jid).ip, '127.0.0.3', 'nginx appends its peer; the gateway takes the rightmost untrusted hop');
});

t.test('spoofed X-Forwarded-* sent straight to the gateway by an untrusted peer are ignored', async (t) => {
  const c = await visitor(t, server.wsUrl, '127.0.0.2', { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https' });
  const mechs = await mechanisms(c);
  t.notOk(mechs.includes('PLAIN'), 'not secure: 127.0.0.2 is not a trusted proxy');
  const session = [...server.app.sessions.all].find((s) => s.conn && s.type === 'c2s_unauthed' && s.ip !== '127.0.0.1');
  t.equal(session?.ip, '127.0.0.2', 'the peer address, not the header');
});

t.test('the BOSH per-address cap counts the visitor behind nginx, not nginx', async (t) => {
  const from = (ip: string) => new http.Agent({ keepAlive: false, localAddress: ip });
  const url = `${nginx.httpUrl}/http-bind`;
  const created: RawBoshClient[] = [];
  for (let i = 0; i < 2; i++) {
    const b = new RawBoshClient(url, { agent: from('127.0.0.2') });
    t.equal((await b.create()).body?.attr('type'), undefined, `session ${i + 1} from 127.0.0.2 is created`);
    created.push(b);
  }
  const third = await new RawBoshClient(url, { agent: from('127.0.0.2') }).create();
  t.equal(third.body?.attr('type'), 'terminate', 'the third from 127.0.0.2 is refused');
  t.equal(third.body?.attr('condition'), 'policy-violation');
  const other = await new RawBoshClient(url, { agent: from('127.0.0.3') }).create();
  t.equal(other.body?.attr('type'), undefined, 'a visitor from 127.0.0.3 still gets a session through the same nginx');
  for (const b of created) await b.raw(b.body({ type: 'terminate' })).catch(() => undefined);
});

t.test('login throttling counts the visitor behind nginx: another visitor still logs in', async (t) => {
  const attempt = async (ip: string, user: string, pass: string) => {
    const c = await visitor(t, wsUrl(nginx.httpsUrl), ip);
    await mechanisms(c);
    c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain(user, pass)}</auth>`);
    return { c, answer: await c.next(5000) };
  };
  for (let i = 0; i < 3; i++) t.equal(saslCondition((await attempt('127.0.0.2', `nobody${i}`, 'x')).answer), 'not-authorized', `failure ${i + 1}`);
  const blocked = await attempt('127.0.0.2', 'alice', 'alice-secret');
  t.equal(saslCondition(blocked.answer), 'temporary-auth-failure', '127.0.0.2 is throttled, even with the right password');
  t.equal(streamErrorCondition(await blocked.c.next()), 'policy-violation');
  const owner = await attempt('127.0.0.3', 'alice', 'alice-secret');
  t.equal(owner.answer.local, 'success', 'the owner from 127.0.0.3 is not: the limit is not on nginx\'s address');
});

t.test('a WebSocket idle past nginx\'s read timeout survives thanks to the pings, then chats', async (t) => {
  const a = await visitor(t, wsUrl(nginx.httpsUrl), '127.0.0.4');
  const b = await visitor(t, wsUrl(nginx.httpsUrl), '127.0.0.5');
  const aJid = await a.login('alice', 'alice-secret', 'idle');
  const bJid = await b.login('bob', 'bob-secret', 'idle');
  await new Promise((r) => setTimeout(r, (READ_TIMEOUT * 2) * 1000));
  t.equal(a.closed, undefined, 'still open after twice nginx\'s read timeout');
  a.send(`<message xmlns='jabber:client' to='${bJid}' type='chat' id='m1'><body>still here</body></message>`);
  const got = await b.until((el) => el.local === 'message', 5000);
  t.equal(got.getChildText('body'), 'still here');
  t.equal(got.attr('from'), aJid);
});

t.test('a BOSH long poll held for BOSH_MAX_WAIT comes back through nginx as an empty 200', async (t) => {
  const b = new RawBoshClient(`${nginx.httpUrl}/http-bind`, { agent: new http.Agent({ keepAlive: true, localAddress: '127.0.0.6' }) });
  const created = await b.create({ wait: 2 });
  t.equal(created.body?.attr('wait'), '2');
  const started = Date.now();
  const held = await b.raw(b.body());
  t.equal(held.status, 200, 'not a 504 from nginx');
  t.equal(held.body?.local, 'body');
  t.ok(Date.now() - started >= 1500, 'the request was held for the wait');
  await b.raw(b.body({ type: 'terminate' }));
});

t.test('host-meta through nginx over https advertises wss and https for the Host nginx passes', async (t) => {
  const text = await new Promise<string>((resolve, reject) => {
    https.get(`${nginx.httpsUrl}/.well-known/host-meta`, { ...tls, headers: { host: 'localhost' } }, (res) => {
      let s = '';
      res.on('data', (c: Buffer) => { s += c.toString(); });
      res.on('end', () => resolve(s));
    }).on('error', reject);
  });
  t.match(text, /wss:\/\/localhost\/xmpp-websocket/);
  t.match(text, /https:\/\/localhost\/http-bind/);
});

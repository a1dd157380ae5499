/**
 * Token login for web apps (issue 15 item 5): a JWT minted by the web app's
 * backend is the password of SASL PLAIN (as ejabberd takes it) and the bearer
 * token of SASL OAUTHBEARER (RFC 7628), both only on protected streams.
 * Real clients: xmpp.js (PLAIN) and strophe.js (OAUTHBEARER), each through
 * the trusted loopback proxy's X-Forwarded-Proto: https, as behind nginx.
 * Every refusal reason on the raw wire: not-authorized, its reason in the
 * log line and the metric, the token in neither, other sessions unharmed.
 */
import t, { type Test } from 'tap';
import { Writable } from 'node:stream';
import WebSocket from 'ws';
import { SignJWT, UnsecuredJWT } from 'jose';
import { Strophe } from 'strophe.js';
import { NS, x, type XmlElement } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { RawBoshClient } from '../helpers/bosh-client.js';
import { plain } from '../helpers/scram-client.js';
import { login, ping, becomeAvailable } from '../helpers/xmppjs.js';
import { within } from '../helpers/eventually.js';

Strophe.setLogLevel(Strophe.LogLevel.ERROR);

/**
 * xmpp.js and strophe.js open `new WebSocket(url, 'xmpp')` on the global; this
 * one adds what the README's nginx adds, so the gateway sees a TLS-protected stream.
 */
class BehindTlsProxy extends WebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols, { headers: { 'x-forwarded-proto': 'https' } });
  }
}
(globalThis as { WebSocket?: unknown }).WebSocket = BehindTlsProxy;

const SECRET = 'a-web-app-secret-of-at-least-32-characters';
const ISSUER = 'https://app.example.com';
const AUDIENCE = 'localhost';
const key = new TextEncoder().encode(SECRET);
const now = (): number => Math.floor(Date.now() / 1000);

/** What the web app's backend does (the README's ten lines). */
function mint(claims: Record<string, unknown> = {}, opts: { secret?: Uint8Array; alg?: string } = {}): Promise<string> {
  return new SignJWT({ jid: 'alice@localhost', iss: ISSUER, aud: AUDIENCE, exp: now() + 300, ...claims })
    .setProtectedHeader({ alg: opts.alg ?? 'HS256' })
    .sign(opts.secret ?? key);
}

const logLines: Array<Record<string, unknown>> = [];
const sink = new Writable({ write(chunk: Buffer, _enc, done) { logLines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done(); } });
const env = { JWT_SECRET: SECRET, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE, JWT_CLOCK_TOLERANCE: '0' };
const server = await withUsers(t, { alice: 'alice-secret', bob: 'bob-secret' }, env, undefined, { logger: { level: 'info', stream: sink } });

const condition = (el: XmlElement): string | undefined => el.getChildren().find((c) => c.local !== 'text')?.local;
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** A raw client on a protected stream (X-Forwarded-Proto from the trusted proxy), features read. */
async function secureClient(tt: Test, secure = true): Promise<{ c: RawWsClient; features: XmlElement }> {
  const c = await RawWsClient.connect(server.wsUrl, 'xmpp', secure ? { 'x-forwarded-proto': 'https' } : undefined);
  tt.teardown(() => c.ws.terminate());
  return { c, features: await c.openStream() };
}

const mechanisms = (features: XmlElement): string[] =>
  features.getChild('mechanisms', NS.SASL)?.getChildren('mechanism').map((m) => m.text()) ?? [];

async function metric(reason: string, result = 'failure'): Promise<number> {
  const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
  const m = new RegExp(`^xmpp_token_logins_total\\{result="${result}",reason="${reason}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

t.test('xmpp.js logs in with the JWT as its PLAIN password on a protected stream, and chats', async (t) => {
  const token = await mint();
  const alice = await login(t, server, {
    resource: 'web',
    // xmpp.js would pick SCRAM first; a token client names PLAIN (the README's xmpp.js setting).
    credentials: (authenticate) => authenticate({ username: 'alice', password: token }, 'PLAIN'),
  });
  t.equal(alice.jid, 'alice@localhost/web', 'bound as the user the token names');
  t.ok((await ping(alice)).attrs.type === 'result', 'the session works');
  await becomeAvailable(alice);
  t.notOk(logLines.some((l) => JSON.stringify(l).includes(token)), 'the token is in no log line');
  t.ok(await metric('ok', 'success') >= 1, 'counted as a token login');
});

t.test('strophe.js logs in with OAUTHBEARER (RFC 7628), offered only with a JWT key and a protected stream', async (t) => {
  t.ok(mechanisms((await secureClient(t)).features).includes('OAUTHBEARER'), 'offered on a protected stream');
  t.notOk(mechanisms((await secureClient(t, false)).features).includes('OAUTHBEARER'), 'not offered on a plain one');
  const conn = new Strophe.Connection(server.wsUrl, { protocol: 'ws' });
  conn.registerSASLMechanisms([Strophe.SASLOAuthBearer]);
  const token = await mint({ jid: 'bob@localhost' }, {});
  const status = await within(new Promise<number>((resolve) => {
    conn.connect('bob@localhost/strophe', token, (s: number) => {
      if (s === Strophe.Status.CONNECTED || s === Strophe.Status.AUTHFAIL || s === Strophe.Status.CONNFAIL) resolve(s);
    });
  }), 'strophe.js login');
  t.teardown(() => conn.disconnect('done'));
  t.equal(status, Strophe.Status.CONNECTED, 'strophe.js is connected');
  t.equal(conn.jid, 'bob@localhost/strophe', 'as the user the token names');
});

const WRONG_KEY = new TextEncoder().encode('another-secret-that-is-also-32-characters-long');
/** Each way a token fails, with the reason the log and the metric give. */
const REFUSED: Array<[string, string, () => Promise<string>, string?]> = [
  ['an expired token', 'expired', () => mint({ exp: now() - 60 })],
  ['a token not valid yet', 'not-yet-valid', () => mint({ nbf: now() + 3600 })],
  ['a token for another audience', 'wrong-audience', () => mint({ aud: 'other.example' })],
  ['a token of another issuer', 'wrong-issuer', () => mint({ iss: 'https://evil.example' })],
  ['a token signed with another key', 'bad-signature', () => mint({}, { secret: WRONG_KEY })],
  ["a token with alg 'none'", 'alg-none', async () => new UnsecuredJWT({ jid: 'alice@localhost', iss: ISSUER, aud: AUDIENCE, exp: now() + 60 }).encode()],
  ['a token with an algorithm not allowed', 'alg-not-allowed', () => mint({}, { alg: 'HS384' })],
  ['a token without exp', 'missing-claim', () => new SignJWT({ jid: 'alice@localhost', iss: ISSUER, aud: AUDIENCE }).setProtectedHeader({ alg: 'HS256' }).sign(key)],
  ['a token for a JID of another domain', 'other-domain', () => mint({ jid: 'alice@other.example' })],
  ['a token without the JID claim', 'bad-jid-claim', () => mint({ jid: undefined })],
  ['a token naming another user than the authcid', 'user-mismatch', () => mint({ jid: 'bob@localhost' })],
  ['a token for a user that does not exist', 'unknown-user', () => mint({ jid: 'nobody@localhost' }), 'nobody'],
];

t.test('a bob session stays up through every refusal', async (t) => {
  const bob = await login(t, server, {
    resource: 'watch', credentials: (authenticate) => authenticate({ username: 'bob', password: 'bob-secret' }, 'SCRAM-SHA-1'),
  });
  for (const [what, reason, token, user = 'alice'] of REFUSED) {
    await t.test(`${what} is not-authorized over PLAIN, logged and counted as ${reason}`, async (t) => {
      const jwt = await token();
      const before = await metric(reason);
      const { c } = await secureClient(t);
      c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain(user, jwt)}</auth>`);
      const answer = await c.next();
      t.ok(answer.is('failure', NS.SASL), 'a SASL failure');
      t.equal(condition(answer), 'not-authorized');
      t.equal(await metric(reason), before + 1, `xmpp_token_logins_total{reason="${reason}"} counted it`);
      const line = logLines.findLast((l) => l.event === 'auth-failure');
      t.equal(line?.reason, reason, 'the auth-failure log line names the reason');
      t.notOk(logLines.some((l) => JSON.stringify(l).includes(jwt)), 'the token is in no log line');
    });
  }
  t.equal((await ping(bob)).attrs.type, 'result', "bob's session still answers");
});

t.test('OAUTHBEARER refuses a bad token with the RFC 7628 §3.2.2 JSON challenge, then <failure/> after the kvsep', async (t) => {
  const { c } = await secureClient(t);
  const expired = await mint({ exp: now() - 60 });
  c.send(`<auth xmlns='${NS.SASL}' mechanism='OAUTHBEARER'>${b64(`n,a=alice@localhost,\x01auth=Bearer ${expired}\x01\x01`)}</auth>`);
  const challenge = await c.next();
  t.ok(challenge.is('challenge', NS.SASL), 'a challenge first');
  t.same(JSON.parse(Buffer.from(challenge.text(), 'base64').toString('utf8')), { status: 'invalid_token' });
  c.send(`<response xmlns='${NS.SASL}'>${b64('\x01')}</response>`);
  const failure = await c.next();
  t.ok(failure.is('failure', NS.SASL));
  t.equal(condition(failure), 'not-authorized');
  t.equal(logLines.findLast((l) => l.event === 'auth-failure')?.reason, 'expired');
  // The stream is still usable for a good token.
  c.send(`<auth xmlns='${NS.SASL}' mechanism='OAUTHBEARER'>${b64(`n,,\x01auth=Bearer ${await mint()}\x01\x01`)}</auth>`);
  t.ok((await c.next()).is('success', NS.SASL), 'a good token without authzid succeeds on the same stream');
});

t.test('OAUTHBEARER: malformed messages, a foreign authzid, and a plain stream', async (t) => {
  const { c } = await secureClient(t);
  c.send(`<auth xmlns='${NS.SASL}' mechanism='OAUTHBEARER'>${b64('n,,auth=Bearer x')}</auth>`);
  t.equal(condition(await c.next()), 'malformed-request', 'no kvsep');
  c.send(`<auth xmlns='${NS.SASL}' mechanism='OAUTHBEARER'>${b64(`n,a=alice@other.example,\x01auth=Bearer ${await mint()}\x01\x01`)}</auth>`);
  t.equal(condition(await c.next()), 'invalid-authzid', 'an authzid at another domain');
  for (const [garbage, reason] of [['a.b.c', 'malformed'], ['x', 'malformed'], ['eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln', 'bad-signature']]) {
    // A client of its own each: the failure after SASL_MAX_FAILURES retries ends a stream.
    const { c } = await secureClient(t);
    c.send(`<auth xmlns='${NS.SASL}' mechanism='OAUTHBEARER'>${b64(`n,,\x01auth=Bearer ${garbage}\x01\x01`)}</auth>`);
    t.ok((await c.next()).is('challenge', NS.SASL), `a token that is no good JWT (${garbage}) gets the error challenge`);
    c.send(`<response xmlns='${NS.SASL}'>${b64('\x01')}</response>`);
    t.equal(condition(await c.next()), 'not-authorized');
    t.equal(logLines.findLast((l) => l.event === 'auth-failure')?.reason, reason, `logged as ${reason}`);
  }
  const insecure = await secureClient(t, false);
  insecure.c.send(`<auth xmlns='${NS.SASL}' mechanism='OAUTHBEARER'>${b64(`n,,\x01auth=Bearer ${await mint()}\x01\x01`)}</auth>`);
  t.equal(condition(await insecure.c.next()), 'encryption-required', 'never on a plain stream');
});

t.test('a JID claim and an OAUTHBEARER authzid at localhost. (a final dot, RFC 7622 §3.2) name the account at localhost', async (t) => {
  const token = await mint({ jid: 'alice@LocalHost.' });
  const { c } = await secureClient(t);
  c.send(`<auth xmlns='${NS.SASL}' mechanism='OAUTHBEARER'>${b64(`n,a=alice@localhost.,\x01auth=Bearer ${token}\x01\x01`)}</auth>`);
  const res = await c.next();
  t.ok(res.is('success', NS.SASL), `OAUTHBEARER success: ${res.toString()}`);
  const { c: d } = await secureClient(t);
  d.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('alice', token)}</auth>`);
  const viaPlain = await d.next();
  t.ok(viaPlain.is('success', NS.SASL), `PLAIN with the token as password, no authzid: ${viaPlain.toString()}`);
});

t.test('ordinary passwords still log in over PLAIN with token login on, even one with dots like a JWT', async (t) => {
  await server.addUser('carol', 'my.pass.word');
  for (const [user, password] of [['alice', 'alice-secret'], ['carol', 'my.pass.word']] as const) {
    const { c } = await secureClient(t);
    c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain(user, password)}</auth>`);
    t.ok((await c.next()).is('success', NS.SASL), `${user} with the password`);
  }
});

t.test('over BOSH too: a token logs in with PLAIN and with OAUTHBEARER (the session core knows no transport)', async (t) => {
  // ALLOW_INSECURE_PLAIN stands in for the TLS proxy here; the WebSocket tests above use X-Forwarded-Proto.
  const bosh = await withUsers(t, ['alice', 'bob'], { ...env, ALLOW_INSECURE_PLAIN: 'true' });
  const b = new RawBoshClient(`${bosh.httpUrl}/http-bind`);
  t.equal(await b.login('alice', await mint(), 'bosh'), 'alice@localhost/bosh', 'PLAIN with the token, then bind');
  const o = new RawBoshClient(`${bosh.httpUrl}/http-bind`);
  const created = await o.create();
  const offered = created.body?.getChild('features', NS.STREAM)?.getChild('mechanisms', NS.SASL)?.getChildren('mechanism').map((m) => m.text());
  t.ok(offered?.includes('OAUTHBEARER'), 'OAUTHBEARER offered');
  const auth = x('auth', { xmlns: NS.SASL, mechanism: 'OAUTHBEARER' }, b64(`n,a=bob@localhost,\x01auth=Bearer ${await mint({ jid: 'bob@localhost' })}\x01\x01`));
  t.ok((await o.send({}, auth)).body?.getChild('success', NS.SASL), 'OAUTHBEARER succeeds');
});

t.test('with SASL2 (XEP-0388) on: xmpp.js sends the token over SASL2 PLAIN, and OAUTHBEARER fails in the SASL2 namespace', async (t) => {
  const s2 = await withUsers(t, ['alice'], { ...env, SASL2_ENABLED: 'true' });
  const token2 = await mint();
  const alice = await login(t, s2, {
    resource: 'sasl2', credentials: (authenticate) => authenticate({ username: 'alice', password: token2 }, 'PLAIN'),
  });
  const sent = alice.sent.find((el) => el.is('authenticate', NS.SASL2));
  t.equal(sent?.attrs.mechanism, 'PLAIN', 'xmpp.js used SASL2 <authenticate mechanism="PLAIN"/>');
  t.match(alice.jid, /^alice@localhost\/sasl2/, 'and is bound (Bind2)');
  const c = await RawWsClient.connect(s2.wsUrl, 'xmpp', { 'x-forwarded-proto': 'https' });
  t.teardown(() => c.ws.terminate());
  const features = await c.openStream();
  const offered = features.getChild('authentication', NS.SASL2)?.getChildren('mechanism').map((m) => m.text());
  t.ok(offered?.includes('OAUTHBEARER'), 'SASL2 offers OAUTHBEARER');
  const bad = await mint({ aud: 'other.example' });
  c.send(`<authenticate xmlns='${NS.SASL2}' mechanism='OAUTHBEARER'><initial-response>${b64(`n,,\x01auth=Bearer ${bad}\x01\x01`)}</initial-response></authenticate>`);
  const challenge = await c.next();
  t.ok(challenge.is('challenge', NS.SASL2), 'a SASL2 challenge');
  t.same(JSON.parse(Buffer.from(challenge.text(), 'base64').toString('utf8')), { status: 'invalid_token' }, 'with the JSON status');
  c.send(`<response xmlns='${NS.SASL2}'>${b64('\x01')}</response>`);
  const failure = await c.next();
  t.ok(failure.is('failure', NS.SASL2), 'a SASL2 failure');
  t.equal(failure.getChildren().find((el) => el.local !== 'text')?.local, 'not-authorized');
});

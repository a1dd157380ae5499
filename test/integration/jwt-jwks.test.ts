/**
 * Token login with the web app's public keys (JWT_JWKS_URL): RS256 and ES256
 * tokens verified against a JSON Web Key Set served by a tiny local HTTP
 * server, which is fetched once, cached, and fetched again when a token names
 * a kid it does not hold (key rotation). A key server that cannot be reached
 * is the gateway's trouble: temporary-auth-failure. JWT_CREATE_USERS creates
 * an account at its first token login.
 */
import t, { type Test } from 'tap';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { withServer, withUsers, type UsersServer } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { plain } from '../helpers/scram-client.js';

interface SigningKey { kid: string; alg: 'RS256' | 'ES256'; privateKey: CryptoKey; jwk: JWK }

async function signingKey(kid: string, alg: 'RS256' | 'ES256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return { kid, alg, privateKey, jwk: { ...await exportJWK(publicKey), kid, alg, use: 'sig' } };
}

/** The web app's key server: serves whatever keys `published` holds, and counts the fetches. */
async function keyServer(tt: Test): Promise<{ url: string; published: SigningKey[]; fetches: () => number }> {
  const published: SigningKey[] = [];
  let fetches = 0;
  const http: Server = createServer((_req, res) => {
    fetches++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: published.map((k) => k.jwk) }));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  tt.teardown(() => new Promise<void>((resolve) => http.close(() => resolve())));
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/.well-known/jwks.json`, published, fetches: () => fetches };
}

const mint = (k: SigningKey, jid = 'alice@localhost'): Promise<string> =>
  new SignJWT({ jid, exp: Math.floor(Date.now() / 1000) + 300 }).setProtectedHeader({ alg: k.alg, kid: k.kid }).sign(k.privateKey);

const condition = (el: XmlElement): string | undefined => el.getChildren().find((c) => c.local !== 'text')?.local;

/** One PLAIN login with `token` as the password on a protected stream; the server's answer. */
async function tokenLogin(tt: Test, server: UsersServer, token: string, user = 'alice'): Promise<XmlElement> {
  const c = await RawWsClient.connect(server.wsUrl, 'xmpp', { 'x-forwarded-proto': 'https' });
  tt.teardown(() => c.ws.terminate());
  await c.openStream();
  c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain(user, token)}</auth>`);
  return c.next(8000);
}

const keys = await keyServer(t);
const rsa1 = await signingKey('rsa-1', 'RS256');
const ec1 = await signingKey('ec-1', 'ES256');
keys.published.push(rsa1, ec1);
// No cooldown: a test cannot wait out the default 30 s between two fetches.
const server = await withUsers(t, ['alice', 'bob'], { JWT_JWKS_URL: keys.url, JWT_JWKS_COOLDOWN: '0' });

t.test('RS256 and ES256 tokens verify against the key set, which is fetched once and cached', async (t) => {
  t.ok((await tokenLogin(t, server, await mint(rsa1))).is('success', NS.SASL), 'RS256');
  t.ok((await tokenLogin(t, server, await mint(ec1, 'bob@localhost'), 'bob')).is('success', NS.SASL), 'ES256');
  t.equal(keys.fetches(), 1, 'one fetch for both logins');
});

t.test('key rotation: a token with a new kid makes the gateway fetch the set again; the retired key is refused', async (t) => {
  const rsa2 = await signingKey('rsa-2', 'RS256');
  keys.published.splice(0, keys.published.length, rsa2, ec1);
  const before = keys.fetches();
  t.ok((await tokenLogin(t, server, await mint(rsa2))).is('success', NS.SASL), 'the new key is picked up');
  t.equal(keys.fetches(), before + 1, 'by one new fetch');
  t.equal(condition(await tokenLogin(t, server, await mint(rsa1))), 'not-authorized', 'the retired key no longer logs in');
});

t.test('an HS256 token signed with a public key as the HMAC secret is refused (algorithm confusion)', async (t) => {
  const forged = await new SignJWT({ jid: 'alice@localhost', exp: Math.floor(Date.now() / 1000) + 300 })
    .setProtectedHeader({ alg: 'HS256', kid: 'rsa-2' })
    .sign(new TextEncoder().encode(JSON.stringify(keys.published[0]!.jwk)));
  t.equal(condition(await tokenLogin(t, server, forged)), 'not-authorized');
});

t.test('an unreachable key server is temporary-auth-failure, not not-authorized', async (t) => {
  const gone = await keyServer(t);
  const url = gone.url.replace(/:\d+\//, ':1/'); // port 1: nothing listens there
  const s = await withUsers(t, ['alice'], { JWT_JWKS_URL: url, JWT_JWKS_COOLDOWN: '0' });
  t.equal(condition(await tokenLogin(t, s, await mint(rsa1))), 'temporary-auth-failure');
});

t.test('JWT_CREATE_USERS=true creates the account at its first token login', async (t) => {
  const s = await withServer(t, { JWT_JWKS_URL: keys.url, JWT_JWKS_COOLDOWN: '0', JWT_CREATE_USERS: 'true' });
  t.equal(await s.storage.users.get('localhost', 'newbie'), undefined, 'no account before');
  t.ok((await tokenLogin(t, s, await mint(ec1, 'newbie@localhost'), 'newbie')).is('success', NS.SASL), 'the first login succeeds');
  t.ok(await s.storage.users.get('localhost', 'newbie'), 'the account exists now');
  t.ok((await tokenLogin(t, s, await mint(ec1, 'newbie@localhost'), 'newbie')).is('success', NS.SASL), 'and the next login finds it');
});

/**
 * A password change ends the token logins minted before it, as it ends the
 * account's FAST tokens (storage triggers) and its live token sessions
 * (account-changes.ts): a JWT whose `iat` (RFC 7519 §4.1.6) is before the
 * account's last change of credentials is refused (not-authorized, reason
 * `credentials-changed`), over PLAIN and OAUTHBEARER alike; one minted after
 * the change logs in. A token without `iat` cannot show it is newer: refused
 * once the password has been changed, still accepted for an account whose
 * credentials never changed since it was made. Before, such a token logged in
 * until it expired.
 *
 * The change is the storage call `xmpp-web-gateway user passwd` makes
 * (src/cli/user.ts), on the running server's store; or an operator's UPDATE
 * of the credentials column in SQL, on SQLite and on PostgreSQL (there with
 * the credentials kept in memory from logins before it): a trigger stamps
 * that change too (SQLite's migration 16, PostgreSQL's 11).
 */
import t, { type Test } from 'tap';
import { SignJWT } from 'jose';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { DATABASE_FILE, deriveStoredCredentials, openPostgresStorage, openSqliteStorage, type Storage } from '../../src/storage/index.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually } from '../helpers/eventually.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { plain } from '../helpers/scram-client.js';

const SECRET = 'a-web-app-secret-of-at-least-32-characters';
const key = new TextEncoder().encode(SECRET);
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

function mint(jid: string, iat: number | undefined): Promise<string> {
  const claims: Record<string, unknown> = { jid, exp: nowSeconds() + 3600 };
  if (iat !== undefined) claims.iat = iat;
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(key);
}

const server = await withUsers(t, { alice: 'alice-secret', bob: 'bob-secret' }, { JWT_SECRET: SECRET, JWT_CLOCK_TOLERANCE: '0' });
const condition = (el: XmlElement): string | undefined => el.getChildren().find((c) => c.local !== 'text')?.local;
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** One attempt on a fresh protected stream: PLAIN with the token as password, or OAUTHBEARER. */
async function attempt(tt: Test, mechanism: 'PLAIN' | 'OAUTHBEARER', user: string, token: string, wsUrl = server.wsUrl): Promise<XmlElement> {
  const c = await RawWsClient.connect(wsUrl, 'xmpp', { 'x-forwarded-proto': 'https' });
  tt.teardown(() => c.ws.terminate());
  await c.openStream();
  const payload = mechanism === 'PLAIN' ? plain(user, token) : b64(`n,,\x01auth=Bearer ${token}\x01\x01`);
  c.send(`<auth xmlns='${NS.SASL}' mechanism='${mechanism}'>${payload}</auth>`);
  const answer = await c.next();
  // OAUTHBEARER's refusal: the error challenge, then the failure after the client's kvsep (RFC 7628 §3.2.2).
  if (answer.is('challenge', NS.SASL)) {
    c.send(`<response xmlns='${NS.SASL}'>${b64('\x01')}</response>`);
    return c.next();
  }
  return answer;
}

t.test('a token minted before a password change no longer logs in; one minted after it does', async (t) => {
  const before = await mint('alice@localhost', nowSeconds() - 60);
  const noIat = await mint('alice@localhost', undefined);
  for (const m of ['PLAIN', 'OAUTHBEARER'] as const) {
    t.ok((await attempt(t, m, 'alice', before)).is('success', NS.SASL), `${m}: the token logs in before the change`);
    t.ok((await attempt(t, m, 'alice', noIat)).is('success', NS.SASL), `${m}: so does one without iat (the credentials never changed)`);
  }

  await server.storage.users.setCredentials('localhost', 'alice', await deriveStoredCredentials('alice-new-secret', server.config.scramIterations));

  for (const m of ['PLAIN', 'OAUTHBEARER'] as const) {
    const refused = await attempt(t, m, 'alice', before);
    t.ok(refused.is('failure', NS.SASL), `${m}: the token minted before the change is refused`);
    t.equal(condition(refused), 'not-authorized', `${m}: not-authorized`);
    t.equal(condition(await attempt(t, m, 'alice', noIat)), 'not-authorized', `${m}: a token without iat is refused after a change`);
  }
  const after = await mint('alice@localhost', nowSeconds());
  t.ok((await attempt(t, 'PLAIN', 'alice', after)).is('success', NS.SASL), 'a token minted after the change logs in');
  t.ok((await attempt(t, 'PLAIN', 'bob', await mint('bob@localhost', nowSeconds() - 60))).is('success', NS.SASL), "another account's tokens are untouched");

  const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
  t.match(text, /xmpp_token_logins_total\{result="failure",reason="credentials-changed"\} 4/, 'counted under their own reason');
});

/**
 * alice (password alice-secret) on a server over `storage`, logged in by password and by a token twice
 * each (PostgreSQL then keeps her credentials); `update` runs the operator's UPDATE of her credentials to
 * alice-new-secret's, and `seen` waits until the server could know (PostgreSQL: its NOTIFY dropped them).
 */
async function changedInSql(t: Test, storage: Storage, update: (credentials: string) => Promise<unknown>, seen: () => Promise<unknown>): Promise<void> {
  const s = await withUsers(t, { alice: 'alice-secret' }, { JWT_SECRET: SECRET, JWT_CLOCK_TOLERANCE: '0' }, storage);
  const before = await mint('alice@localhost', nowSeconds() - 60);
  for (let i = 0; i < 2; i++) {
    t.ok((await attempt(t, 'PLAIN', 'alice', before, s.wsUrl)).is('success', NS.SASL), `token login ${i + 1} before the change`);
    t.ok((await attempt(t, 'PLAIN', 'alice', 'alice-secret', s.wsUrl)).is('success', NS.SASL), `password login ${i + 1} before the change`);
  }
  await update(JSON.stringify(await deriveStoredCredentials('alice-new-secret', s.config.scramIterations)));
  await seen();
  for (const m of ['PLAIN', 'OAUTHBEARER'] as const) {
    t.equal(condition(await attempt(t, m, 'alice', before, s.wsUrl)), 'not-authorized', `${m}: the token minted before the UPDATE is refused`);
  }
  t.equal(condition(await attempt(t, 'PLAIN', 'alice', 'alice-secret', s.wsUrl)), 'not-authorized', 'so is the old password');
  t.ok((await attempt(t, 'PLAIN', 'alice', 'alice-new-secret', s.wsUrl)).is('success', NS.SASL), 'the new password logs in');
  t.ok((await attempt(t, 'PLAIN', 'alice', await mint('alice@localhost', nowSeconds()), s.wsUrl)).is('success', NS.SASL), 'a token minted after the UPDATE logs in');
}

t.test('SQLite: the credentials changed by an UPDATE in SQL end the tokens minted before it', async (t) => {
  const dir = t.testdir();
  const storage = openSqliteStorage(dir);
  // The operator's sqlite3 shell: another connection to the file.
  const admin = new Database(join(dir, DATABASE_FILE));
  t.teardown(() => admin.close());
  await changedInSql(t, storage, async (credentials) => admin.prepare('UPDATE users SET credentials = ? WHERE host = ? AND username = ?').run(credentials, 'localhost', 'alice'),
    async () => undefined);
});

t.test('PostgreSQL, credentials kept in memory: the credentials changed by an UPDATE in SQL end the tokens minted before it', async (t) => {
  const postgres = await startPostgres();
  t.teardown(() => postgres.stop());
  const url = await postgres.createDatabase();
  const dropped: string[] = [];
  const storage = await openPostgresStorage({ url, credentialCacheBytes: 1 << 20, onCredentialsDropped: (a) => { dropped.push(a ? a[1] : '*'); } });
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  t.teardown(() => admin.end());
  await changedInSql(t, storage, (credentials) => admin.query('UPDATE users SET credentials = $1 WHERE host = $2 AND username = $3', [credentials, 'localhost', 'alice']),
    () => eventually(() => dropped.includes('alice'), { timeout: 30_000, message: 'the NOTIFY that drops her kept credentials' }));
});

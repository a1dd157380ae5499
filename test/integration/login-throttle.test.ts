/**
 * Failed logins are counted across connections (issue 13): per address and
 * per address+account, with exponential backoff, so a reconnect no longer
 * resets the count; and each failure leaves one log line. Addresses come
 * from X-Forwarded-For through the trusted loopback proxy, as behind nginx.
 */
import t, { type Test } from 'tap';
import { Writable } from 'node:stream';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { startServer, withUsers } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { plain, scramFinal, scramFirst } from '../helpers/scram-client.js';

const logLines: Array<Record<string, unknown>> = [];
const sink = new Writable({ write(chunk: Buffer, _enc, done) { logLines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done(); } });

const env = {
  ALLOW_INSECURE_PLAIN: 'true', SASL_MAX_FAILURES: '5', LOGIN_FAILURES_PER_ACCOUNT: '2', LOGIN_FAILURES_PER_IP: '4', LOGIN_BACKOFF_MAX: '60',
};
const server = await withUsers(t, { alice: 'alice-secret' }, env, undefined, { logger: { level: 'info', stream: sink } });
const url = server.wsUrl;

const condition = (el: XmlElement) => el.getChildren().find((c) => c.local !== 'text')?.local;

/** A fresh connection from `ip`, stream opened, features read. */
async function from(t: Test, ip: string): Promise<RawWsClient> {
  const c = await RawWsClient.connect(url, 'xmpp', { 'x-forwarded-for': ip });
  t.teardown(() => c.ws.terminate());
  await c.openStream();
  return c;
}

async function plainLogin(t: Test, ip: string, user: string, pass: string): Promise<XmlElement> {
  const c = await from(t, ip);
  c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain(user, pass)}</auth>`);
  return c.next();
}

t.test('wrong passwords over separate connections are counted together; the owner elsewhere still logs in', async (t) => {
  const attacker = '203.0.113.50';
  for (let i = 0; i < 2; i++) t.equal(condition(await plainLogin(t, attacker, 'alice', `guess${i}`)), 'not-authorized', `guess ${i} on a new connection`);
  // The third failure passes the two free ones: from now on this pair waits 1 s, then 2 s, ...
  t.equal(condition(await plainLogin(t, attacker, 'alice', 'guess2')), 'not-authorized');
  const c = await from(t, attacker);
  c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('alice', 'alice-secret')}</auth>`);
  const refused = await c.next();
  t.equal(condition(refused), 'temporary-auth-failure', 'even the right password is refused while the pair waits');
  t.match(refused.getChildText('text'), /try again in \d+ s/);
  t.equal(streamErrorCondition(await c.next()), 'policy-violation', 'and the stream ends');

  t.ok((await plainLogin(t, '198.51.100.7', 'alice', 'alice-secret')).is('success', NS.SASL), 'the owner, from another address, is not locked out');
});

t.test('SCRAM failures count the same, and a throttled SCRAM attempt is refused before any challenge', async (t) => {
  const ip = '203.0.113.60';
  for (let i = 0; i < 3; i++) {
    const c = await from(t, ip);
    const first = scramFirst('alice');
    c.send(`<auth xmlns='${NS.SASL}' mechanism='SCRAM-SHA-256'>${first.message}</auth>`);
    const challenge = await c.next();
    t.ok(challenge.is('challenge', NS.SASL));
    c.send(`<response xmlns='${NS.SASL}'>${scramFinal(first, challenge.text(), 'wrong-password')}</response>`);
    t.equal(condition(await c.next()), 'not-authorized', `SCRAM guess ${i}`);
  }
  const c = await from(t, ip);
  c.send(`<auth xmlns='${NS.SASL}' mechanism='SCRAM-SHA-256'>${scramFirst('alice').message}</auth>`);
  const refused = await c.next();
  t.equal(condition(refused), 'temporary-auth-failure');
  // As for PLAIN: the refusal says how long to wait, and the stream ends (a guesser pays a new connection).
  t.match(refused.getChildText('text'), /try again in \d+ s/, 'the wait is told, not a storage failure');
  t.equal(streamErrorCondition(await c.next()), 'policy-violation', 'and the stream ends');
});

t.test('an address spraying many accounts is slowed for every account it names', async (t) => {
  const ip = '2001:db8:aa::1';
  for (let i = 0; i < 5; i++) t.equal(condition(await plainLogin(t, ip, `nobody${i}`, 'x')), 'not-authorized');
  // Another address of the same IPv6 /64 is the same client.
  t.equal(condition(await plainLogin(t, '2001:db8:aa::2', 'someone-new', 'x')), 'temporary-auth-failure');
  t.ok((await plainLogin(t, '2001:db8:bb::1', 'alice', 'alice-secret')).is('success', NS.SASL), 'another /64 is not affected');
});

t.test('each failure leaves one auth-failure line with the user as given, the mechanism, the condition and the address; never the password', async (t) => {
  logLines.length = 0;
  await plainLogin(t, '192.0.2.99', 'Carol', 'hunter2-secret');
  const lines = logLines.filter((l) => l.event === 'auth-failure');
  t.equal(lines.length, 1);
  t.match(lines[0], { user: 'Carol', mechanism: 'PLAIN', condition: 'not-authorized', ip: '192.0.2.99' });
  t.notOk(logLines.some((l) => JSON.stringify(l).includes('hunter2')), 'no password in any log line');
  const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
  t.match(metrics, /xmpp_sasl_failures_total\{mechanism="PLAIN",condition="not-authorized"\} \d+/);
  t.match(metrics, /xmpp_sasl_failures_total\{mechanism="PLAIN",condition="temporary-auth-failure"\} \d+/);
});

t.test('unknown users look like real ones', async (t) => {
  const { mkdtempSync, rmSync, statSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { loadOrCreateSecret, SECRET_FILE } = await import('../../src/storage/secret.js');

  t.test("an unknown user's SCRAM salt is the same after a restart (the secret lives in DATA_DIR, 0600)", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'xwg-secret-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const saltFor = async (user: string): Promise<string> => {
      const a = await startServer(env, undefined, { unknownUserSecret: loadOrCreateSecret(dir) });
      try {
        const c = await RawWsClient.connect(a.wsUrl);
        await c.openStream();
        c.send(`<auth xmlns='${NS.SASL}' mechanism='SCRAM-SHA-256'>${scramFirst(user).message}</auth>`);
        const serverFirst = Buffer.from((await c.next()).text(), 'base64').toString('utf8');
        c.ws.terminate();
        return /,s=([^,]+),/.exec(serverFirst)![1]!;
      } finally {
        await a.close();
      }
    };
    const before = await saltFor('mallory');
    const after = await saltFor('mallory');
    t.equal(after, before, 'same salt from a second server on the same DATA_DIR');
    const { fakeCredentials } = await import('../../src/sasl/scram.js');
    t.equal(before, fakeCredentials('sha256', 'mallory', loadOrCreateSecret(dir), 4096).salt, 'derived from the secret kept in DATA_DIR, not from a per-process one');
    t.not(await saltFor('trudy'), before, 'another name, another salt');
    t.equal(statSync(join(dir, SECRET_FILE)).mode & 0o777, 0o600);
  });

  t.test('PLAIN derives a key for a missing user as for an existing one', async (t) => {
    // Before, a failure took a median 3.4 ms for an existing user and 0.4 ms for a
    // missing one: the hash ran only for existing users. With 100,000 iterations the
    // derivation dominates (tens of ms); the check is a ratio with a wide margin, not a time.
    const slow = await withUsers(t, { dave: 'dave-secret' }, { ALLOW_INSECURE_PLAIN: 'true', SCRAM_ITERATIONS: '100000' });
    const slowUrl = slow.wsUrl;
    const failureTime = async (user: string): Promise<number> => {
      const c = await RawWsClient.connect(slowUrl);
      await c.openStream();
      const start = process.hrtime.bigint();
      c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain(user, 'wrong')}</auth>`);
      t.equal(condition(await c.next(5000)), 'not-authorized');
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      c.ws.terminate();
      return ms;
    };
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[1]!;
    const existing = median([await failureTime('dave'), await failureTime('dave'), await failureTime('dave')]);
    const missing = median([await failureTime('nobody1'), await failureTime('nobody2'), await failureTime('nobody3')]);
    t.ok(missing > existing / 4, `a missing user's failure (${missing.toFixed(1)} ms) costs about what an existing one's does (${existing.toFixed(1)} ms)`);
  });
});

import t from 'tap';
import { NS } from '../../src/xml/index.js';
import { withServer, withUsers } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { waitUntil } from '../helpers/eventually.js';
import { plain } from '../helpers/scram-client.js';

const server = await withUsers(t, { alice: 'alice-secret' }, { ALLOW_INSECURE_PLAIN: 'true', SASL_MAX_FAILURES: '3' });

async function opened(): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl);
  c.open();
  await c.next();
  await c.next();
  return c;
}
const failureCondition = (el: { getChildren(): { local: string }[] }) => el.getChildren().find((c) => c.local !== 'text')?.local;

t.test('each SASL failure carries its RFC 6120 §6.5 condition', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['unknown mechanism', `<auth xmlns='${NS.SASL}' mechanism='X-MADE-UP'>=</auth>`, 'invalid-mechanism'],
    ['wrong password', `<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('alice', 'nope')}</auth>`, 'not-authorized'],
    ['unknown user', `<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('mallory', 'x')}</auth>`, 'not-authorized'],
    ['bad base64', `<auth xmlns='${NS.SASL}' mechanism='PLAIN'>***</auth>`, 'incorrect-encoding'],
    ['malformed PLAIN message', `<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${Buffer.from('just-one-part').toString('base64')}</auth>`, 'malformed-request'],
    ['authzid of another user', `<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('alice', 'alice-secret', 'bob@localhost')}</auth>`, 'invalid-authzid'],
    ['malformed SCRAM client-first', `<auth xmlns='${NS.SASL}' mechanism='SCRAM-SHA-1'>${Buffer.from('garbage').toString('base64')}</auth>`, 'malformed-request'],
    ['response without an exchange', `<response xmlns='${NS.SASL}'/>`, 'malformed-request'],
  ];
  for (const [name, frame, condition] of cases) {
    const c = await opened();
    c.send(frame);
    const failure = await c.next();
    t.ok(failure.is('failure', NS.SASL), `${name}: <failure/>`);
    t.equal(failureCondition(failure), condition, `${name}: ${condition}`);
    c.close();
  }
});

t.test('abort is answered with aborted and authentication can start again', async (t) => {
  const c = await opened();
  c.send(`<auth xmlns='${NS.SASL}' mechanism='SCRAM-SHA-1'/>`);
  const challenge = await c.next();
  t.ok(challenge.is('challenge', NS.SASL), 'no initial response gets an empty challenge');
  c.send(`<abort xmlns='${NS.SASL}'/>`);
  t.equal(failureCondition(await c.next()), 'aborted');
  c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('alice', 'alice-secret')}</auth>`);
  t.ok((await c.next()).is('success', NS.SASL));
  c.close();
});

t.test('repeated failures close the stream with policy-violation', async (t) => {
  const c = await opened();
  // SASL_MAX_FAILURES=3: the first attempt and three retries (RFC 6120 §6.4.5).
  for (let i = 0; i < 4; i++) {
    c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('alice', `wrong${i}`)}</auth>`);
    t.equal(failureCondition(await c.next()), 'not-authorized');
  }
  const err = await c.next();
  t.equal(streamErrorCondition(err), 'policy-violation');
  c.send(`<close xmlns='${NS.FRAMING}'/>`);
  await c.waitClosed();
});

t.test('PLAIN is offered over TLS as reported by a trusted proxy, and only then', async (t) => {
  const strict = await withServer(t, { TRUSTED_PROXIES: '127.0.0.1' });
  const untrusting = await withServer(t, { TRUSTED_PROXIES: 'none' });
  const mechanisms = async (url: string) => {
    const ws = new (await import('ws')).default(url, 'xmpp', { headers: { 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' } });
    const frames: string[] = [];
    ws.on('message', (d) => frames.push(d.toString()));
    await new Promise((r) => ws.once('open', r));
    ws.send(`<open xmlns='${NS.FRAMING}' to='localhost' version='1.0'/>`);
    await waitUntil(() => frames.length >= 2, { timeout: 2000 });
    ws.close();
    return frames[1] ?? '';
  };
  t.match(await mechanisms(strict.wsUrl), /PLAIN/, 'secure via the trusted proxy');
  const sessions = [...strict.app.sessions.all];
  t.ok(sessions.some((s) => s.ip === '203.0.113.7'), 'client address from X-Forwarded-For');
  t.notMatch(await mechanisms(untrusting.wsUrl), /PLAIN/, 'forwarded headers from an untrusted peer are ignored');
  t.notOk([...untrusting.app.sessions.all].some((s) => s.ip === '203.0.113.7'), 'its X-Forwarded-For is ignored');
});

t.test('a storage failure during authentication is temporary-auth-failure and does not count as a failed attempt', async (t) => {
  const { createMemoryStorage } = await import('../../src/storage/index.js');
  const storage = createMemoryStorage();
  const broken = { ...storage, users: { ...storage.users, get: async () => { throw new Error('database is locked'); } } };
  const s = await withServer(t, { ALLOW_INSECURE_PLAIN: 'true', SASL_MAX_FAILURES: '2' }, broken);
  const c = await RawWsClient.connect(s.wsUrl);
  c.open();
  await c.next();
  await c.next();
  for (let i = 0; i < 3; i++) {
    c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('alice', 'x')}</auth>`);
    t.equal(failureCondition(await c.next()), 'temporary-auth-failure');
  }
  // SASL_MAX_FAILURES=2 (retries): three SCRAM attempts would close the stream if the storage failure counted.
  for (let i = 0; i < 3; i++) {
    c.send(`<auth xmlns='${NS.SASL}' mechanism='SCRAM-SHA-1'>${Buffer.from('n,,n=alice,r=abcdefgh').toString('base64')}</auth>`);
    t.equal(failureCondition(await c.next()), 'temporary-auth-failure', `SCRAM too (${i})`);
  }
  c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('alice', 'x')}</auth>`);
  t.equal(failureCondition(await c.next()), 'temporary-auth-failure', 'and the stream is still there to answer');
  t.notOk(c.closed, 'the stream stays open for a retry');
  c.close();
});

t.test("PLAIN's key derivation runs off the event loop: other sessions are answered meanwhile", async (t) => {
  // The most iterations SCRAM_ITERATIONS allows: PBKDF2 takes a long while, far longer than a round trip.
  const slow = await withUsers(t, { carol: 'carol-secret' }, { ALLOW_INSECURE_PLAIN: 'true', SCRAM_ITERATIONS: '1000000' });
  const open = async () => {
    const c = await RawWsClient.connect(slow.wsUrl);
    t.teardown(() => c.close());
    c.open();
    await c.next();
    await c.next();
    return c;
  };
  const a = await open();
  const b = await open();
  const order: string[] = [];
  a.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('carol', 'carol-secret')}</auth>`);
  const success = a.next().then((el) => { order.push('PLAIN'); return el; });
  b.send(`<auth xmlns='${NS.SASL}' mechanism='X-MADE-UP'>=</auth>`);
  const other = b.next().then((el) => { order.push('other'); return el; });
  t.ok((await success).is('success', NS.SASL), 'the PLAIN login succeeds');
  t.equal(failureCondition(await other), 'invalid-mechanism', 'the other session got its answer');
  t.same(order, ['other', 'PLAIN'], 'the other session was answered while PLAIN was still deriving');
});

t.test('while PLAIN derives, <abort/> and a second <auth/> end that exchange: its result is never sent, and the next attempt stands alone', async (t) => {
  const slow = await withUsers(t, { carol: 'carol-secret' }, { ALLOW_INSECURE_PLAIN: 'true', SCRAM_ITERATIONS: '1000000', SASL_MAX_FAILURES: '5' });
  const good = `<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('carol', 'carol-secret')}</auth>`;
  for (const [interruption, frame, condition] of [
    ['abort', `<abort xmlns='${NS.SASL}'/>`, 'aborted'],
    ['a second auth', good, 'malformed-request'],
  ] as const) {
    const c = await RawWsClient.connect(slow.wsUrl);
    t.teardown(() => c.close());
    c.open();
    await c.next();
    await c.next();
    c.send(good);
    c.send(frame);
    const first = await c.next();
    t.equal(failureCondition(first), condition, `${interruption}: answered with ${condition}`);
    // A third attempt; if the interrupted one still answered, its <success/> would come first.
    c.send(good);
    t.ok((await c.next()).is('success', NS.SASL), `${interruption}: the next attempt succeeds`);
    c.open();
    t.equal((await c.next()).local, 'open', `${interruption}: nothing in between: the restarted stream's header comes next`);
    t.ok((await c.next()).getChild('bind', NS.BIND), `${interruption}: then features with bind`);
  }
});

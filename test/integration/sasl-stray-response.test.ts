/**
 * A <response/> with no exchange in progress is no authentication attempt:
 * RFC 6120 §6.4.5's "configurable but reasonable number of retries" counts
 * attempts, so such an element gets <failure><malformed-request/></failure>
 * (§6.5.7) and is not counted towards SASL_MAX_FAILURES. Before, each one
 * counted, so two stray elements closed an unauthenticated stream before the
 * client tried to log in, and closed an authenticated, bound stream with
 * policy-violation "too many failed authentication attempts". (Prosody
 * answers each with a <failure/> and counts none.)
 */
import t from 'tap';
import { Writable } from 'node:stream';
import { NS } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { authenticate, failureCondition as sasl2Condition, plainResponse } from '../helpers/sasl2.js';
import { plain } from '../helpers/scram-client.js';
import { scrape, value } from '../helpers/metrics-text.js';

const logLines: Array<Record<string, unknown>> = [];
const sink = new Writable({ write(chunk: Buffer, _enc, done) { logLines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done(); } });
const server = await withUsers(t, { alice: 'alice-secret' }, { ALLOW_INSECURE_PLAIN: 'true', SASL2_ENABLED: 'true', SASL_MAX_FAILURES: '2' },
  undefined, { logger: { level: 'info', stream: sink } });
const failureCondition = (el: { getChildren(): { local: string }[] }) => el.getChildren().find((c) => c.local !== 'text')?.local;
const STRAY = `<response xmlns='${NS.SASL}'/>`;

async function connect(): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.close());
  return c;
}

t.test('before any <auth/>: malformed-request, and the login that follows is not refused', async (t) => {
  const c = await connect();
  await c.openStream();
  for (let i = 0; i < 3; i++) {
    c.send(STRAY);
    const answer = await c.next();
    t.ok(answer.is('failure', NS.SASL), `stray response ${i + 1}: <failure/>`);
    t.equal(failureCondition(answer), 'malformed-request', `stray response ${i + 1}: malformed-request`);
  }
  c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('alice', 'alice-secret')}</auth>`);
  t.ok((await c.next()).is('success', NS.SASL), 'the login succeeds on the same stream');
});

t.test('after a login: the authenticated stream is not closed for it', async (t) => {
  const c = await connect();
  await c.login('alice', 'alice-secret', 'legacy');
  for (let i = 0; i < 3; i++) {
    c.send(STRAY);
    t.equal(failureCondition(await c.next()), 'malformed-request', `stray response ${i + 1}: malformed-request`);
  }
  c.send(`<iq xmlns='jabber:client' type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const reply = await c.next();
  t.equal(reply.attr('type'), 'result', 'the session still answers');
});

t.test('one whose payload is not even base64 is no attempt either', async (t) => {
  const c = await connect();
  await c.login('alice', 'alice-secret', 'garbled');
  for (let i = 0; i < 3; i++) {
    c.send(`<response xmlns='${NS.SASL}'>***</response>`);
    t.equal(failureCondition(await c.next()), 'malformed-request', `stray response ${i + 1}: malformed-request (no exchange to decode it for)`);
  }
  c.send(`<iq xmlns='jabber:client' type='get' id='p3' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  t.equal((await c.next()).attr('type'), 'result', 'the session still answers');
});

t.test('after a SASL2 login: the same', async (t) => {
  const c = await connect();
  await c.openStream();
  c.send(authenticate({ mechanism: 'PLAIN', initial: plainResponse('alice', 'alice-secret'), bind: { tag: 'sasl2' } }).toString());
  t.ok((await c.next()).is('success', NS.SASL2), 'SASL2 <success/>');
  await c.next(); // the features
  for (let i = 0; i < 3; i++) {
    c.send(`<response xmlns='${NS.SASL2}'/>`);
    t.equal(sasl2Condition(await c.next()), 'malformed-request', `stray SASL2 response ${i + 1}: malformed-request`);
    c.send(`<response xmlns='${NS.SASL2}'>***</response>`);
    t.equal(sasl2Condition(await c.next()), 'malformed-request', `stray SASL2 response ${i + 1}, not base64: malformed-request`);
  }
  c.send(`<iq xmlns='jabber:client' type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  t.equal((await c.next()).attr('type'), 'result', 'the session still answers');
});

t.test('no "authentication failed" line and no failure metric for it: it is no authentication attempt (RFC 6120 §6.4.5)', async (t) => {
  const c = await connect();
  await c.login('alice', 'alice-secret', 'quiet');
  const failures = async () => {
    const samples = await scrape(server);
    return { total: value(samples, 'xmpp_sasl_total', { result: 'failure' }), byCondition: value(samples, 'xmpp_sasl_failures_total') };
  };
  const before = await failures();
  const linesBefore = logLines.filter((l) => l.msg === 'authentication failed' || l.event === 'auth-failure').length;
  for (const stray of [STRAY, `<response xmlns='${NS.SASL}'>***</response>`, `<response xmlns='${NS.SASL}'>${plain('alice', 'x')}</response>`]) {
    c.send(stray);
    t.equal(failureCondition(await c.next()), 'malformed-request', 'the client is still told: malformed-request');
  }
  c.send(`<iq xmlns='jabber:client' type='get' id='p4' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  t.equal((await c.next()).attr('type'), 'result', 'the session still answers');
  t.same(await failures(), before, 'xmpp_sasl_total{result="failure"} and xmpp_sasl_failures_total are unchanged');
  t.equal(logLines.filter((l) => l.msg === 'authentication failed' || l.event === 'auth-failure').length, linesBefore, 'no "authentication failed" line');
});

t.test('an <abort/> with no exchange, and an <auth/> on an authenticated stream: answered aborted, no "authentication failed" line, no failure metric', async (t) => {
  const failures = async () => {
    const samples = await scrape(server);
    return { total: value(samples, 'xmpp_sasl_total', { result: 'failure' }), byCondition: value(samples, 'xmpp_sasl_failures_total') };
  };
  const authFailureLines = () => logLines.filter((l) => l.msg === 'authentication failed' || l.event === 'auth-failure').length;
  const before = await failures();
  const linesBefore = authFailureLines();
  const c = await connect();
  await c.openStream();
  // RFC 6120 §6.4.4 answers <abort/> with <failure><aborted/></failure>, as Prosody does with none in progress: no attempt ended.
  for (let i = 0; i < 3; i++) {
    c.send(`<abort xmlns='${NS.SASL}'/>`);
    t.equal(failureCondition(await c.next()), 'aborted', `abort ${i + 1} before any <auth/>: aborted`);
    c.send(`<abort xmlns='${NS.SASL2}'/>`);
    t.equal(sasl2Condition(await c.next()), 'aborted', `SASL2 abort ${i + 1} before any <authenticate/>: aborted`);
  }
  c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('alice', 'alice-secret')}</auth>`);
  t.ok((await c.next()).is('success', NS.SASL), 'the login succeeds on the same stream');
  await c.openStream();
  c.send(`<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='${NS.BIND}'><resource>again</resource></bind></iq>`);
  t.equal((await c.next()).attr('type'), 'result', 'bound');
  for (let i = 0; i < 3; i++) {
    c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('alice', 'alice-secret')}</auth>`);
    t.equal(failureCondition(await c.next()), 'aborted', `<auth/> ${i + 1} on the authenticated stream: aborted`);
    c.send(`<abort xmlns='${NS.SASL}'/>`);
    t.equal(failureCondition(await c.next()), 'aborted', `abort ${i + 1} after the login: aborted`);
  }
  c.send(`<iq xmlns='jabber:client' type='get' id='p5' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  t.equal((await c.next()).attr('type'), 'result', 'the session still answers');
  t.same(await failures(), before, 'xmpp_sasl_total{result="failure"} and xmpp_sasl_failures_total are unchanged');
  t.equal(authFailureLines(), linesBefore, 'no "authentication failed" line');
});

t.test('an <abort/> that ends an exchange in progress is still a failed attempt, logged and counted', async (t) => {
  const c = await connect();
  await c.openStream();
  const before = value(await scrape(server), 'xmpp_sasl_failures_total', { mechanism: 'SCRAM-SHA-256', condition: 'aborted' });
  c.send(`<auth xmlns='${NS.SASL}' mechanism='SCRAM-SHA-256'/>`);
  t.ok((await c.next()).is('challenge', NS.SASL), 'the exchange began: its empty challenge');
  c.send(`<abort xmlns='${NS.SASL}'/>`);
  t.equal(failureCondition(await c.next()), 'aborted');
  t.equal(value(await scrape(server), 'xmpp_sasl_failures_total', { mechanism: 'SCRAM-SHA-256', condition: 'aborted' }), before + 1, 'counted under aborted');
  t.ok(logLines.some((l) => l.event === 'auth-failure' && l.condition === 'aborted' && l.mechanism === 'SCRAM-SHA-256'), 'and logged');
});

t.test('a wrong password still counts: SASL_MAX_FAILURES=2 (retries) closes the stream at the third', async (t) => {
  const c = await connect();
  await c.openStream();
  c.send(STRAY);
  t.equal(failureCondition(await c.next()), 'malformed-request');
  for (let i = 0; i < 3; i++) {
    c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('alice', `wrong${i}`)}</auth>`);
    t.equal(failureCondition(await c.next()), 'not-authorized', `wrong password ${i + 1}`);
  }
  const end = await c.next();
  t.equal(streamErrorCondition(end), 'policy-violation', 'then the stream error');
  c.send(`<close xmlns='${NS.FRAMING}'/>`);
  await c.waitClosed();
});

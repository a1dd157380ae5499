/**
 * Issue 17 item 1, XEP-0198: enables by transport, resumption outcomes with
 * the transports before and after (a page that moves from WebSocket to BOSH
 * and back), hibernation time, resume timeouts, where a timed-out session's
 * stanzas went, and the queue depth at each <a/>; read from /metrics.
 */
import t, { type Test } from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { withUsers, type TestServer } from '../helpers/server.js';
import { TRANSPORTS, bosh, websocket, type TransportAdapter, type TransportClient } from '../helpers/transport-clients.js';
import { baseline, scrape, value } from '../helpers/metrics-text.js';
import { eventually } from '../helpers/eventually.js';

// BOSH_MAX_WAIT: an <a/> alone is answered (empty) within 2 s.
const PLAIN = { ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '2' };
const server = await withUsers(t, ['alice', 'bob'], PLAIN);
const isSm = (el: XmlElement) => el.ns === NS.SM && el.local !== 'r';

/** Logs in on `adapter`, enables resumable stream management; returns the client and its smid. */
async function enabled(t: Test, s: TestServer, adapter: TransportAdapter, user: string, resource: string): Promise<{ c: TransportClient; smid: string }> {
  const c = await adapter.connect(t, s);
  await c.login(user, `${user}-pw`, resource);
  await c.send(`<enable xmlns='${NS.SM}' resume='true'/>`);
  const answer = await c.until(isSm);
  if (!answer.is('enabled', NS.SM)) throw new Error(`enable failed: ${answer.toString()}`);
  return { c, smid: answer.attr('id')! };
}

/** A new stream on `adapter`, authenticated as `user`, asks to resume `smid`; resolves with <resumed/> or <failed/>. */
async function resume(t: Test, s: TestServer, adapter: TransportAdapter, user: string, smid: string): Promise<XmlElement> {
  const c = await adapter.connect(t, s);
  await c.authenticate(user, `${user}-pw`);
  await c.send(`<resume xmlns='${NS.SM}' previd='${smid}' h='0'/>`);
  return c.until(isSm);
}

const hibernating = async (s: TestServer) => value(await scrape(s), 'xmpp_sessions', { state: 'hibernating' });

for (const adapter of TRANSPORTS) {
  t.test(`${adapter.name}: enable is counted by transport, and the queue depth at each <a/>`, async (t) => {
    const delta = await baseline(server);
    const { c } = await enabled(t, server, adapter, 'alice', `enable-${adapter.name}`);
    t.equal(await delta('xmpp_sm_enabled_total', { transport: adapter.name }), 1);
    t.equal(await delta('xmpp_sm_enabled_total'), 1, 'on no other transport');
    await c.send(`<a xmlns='${NS.SM}' h='0'/>`);
    await eventually(async () => (await delta('xmpp_sm_queue_depth_count')) === 1, { message: 'one queue depth sample' });
    await c.close();
  });
}

t.test('a page reload from WebSocket to BOSH resumes: outcome, transports and time hibernated', async (t) => {
  const delta = await baseline(server);
  const { c, smid } = await enabled(t, server, websocket, 'alice', 'reload');
  c.drop();
  await eventually(async () => (await hibernating(server)) === 1, { message: 'the session hibernates' });
  t.ok((await resume(t, server, bosh, 'alice', smid)).is('resumed', NS.SM), 'resumed over BOSH');
  t.equal(await delta('xmpp_sm_resumes_total', { outcome: 'resumed', from: 'websocket', to: 'bosh' }), 1);
  t.equal(await delta('xmpp_sm_resumes_total'), 1, 'nothing else counted');
  t.equal(await delta('xmpp_sm_hibernation_seconds_count'), 1, 'the time it hibernated is observed');
});

t.test('a resumption ends its carrier stream as resumed: not a stream error, once', async (t) => {
  // The new stream that carries <resume/> is started (and counted) before it is known to resume; its end is
  // counted too, so started and ended stay balanced, but as what it is: no stream error was sent or seen.
  const delta = await baseline(server);
  const { c, smid } = await enabled(t, server, websocket, 'alice', 'carrier');
  c.drop();
  await eventually(async () => (await hibernating(server)) === 1, { message: 'the session hibernates' });
  t.ok((await resume(t, server, bosh, 'alice', smid)).is('resumed', NS.SM), 'resumed over BOSH');
  t.equal(await delta('xmpp_sessions_ended_total', { reason: 'stream-error' }), 0, 'no session ended with a stream error');
  t.equal(await delta('xmpp_stream_errors_total'), 0, 'nor was any stream error sent');
  t.equal(await delta('xmpp_sessions_ended_total', { transport: 'bosh', reason: 'resumed' }), 1, 'the carrier ended as resumed');
  t.equal(await delta('xmpp_sessions_ended_total'), 1, 'and nothing else ended');
});

t.test('and back from BOSH to WebSocket', async (t) => {
  const delta = await baseline(server);
  const { smid } = await enabled(t, server, bosh, 'alice', 'back');
  t.ok((await resume(t, server, websocket, 'alice', smid)).is('resumed', NS.SM));
  t.equal(await delta('xmpp_sm_resumes_total', { outcome: 'resumed', from: 'bosh', to: 'websocket' }), 1);
});

t.test('a made-up smid is unknown-smid; another account\'s smid is wrong-user', async (t) => {
  const delta = await baseline(server);
  t.ok((await resume(t, server, websocket, 'alice', 'made-up-smid')).is('failed', NS.SM));
  t.equal(await delta('xmpp_sm_resumes_total', { outcome: 'unknown-smid', from: 'none', to: 'websocket' }), 1);
  const { smid } = await enabled(t, server, websocket, 'bob', 'mine');
  const answer = await resume(t, server, bosh, 'alice', smid);
  t.ok(answer.is('failed', NS.SM) && answer.getChild('item-not-found', NS.STANZAS), 'answered as an unknown smid would be');
  t.equal(await delta('xmpp_sm_resumes_total', { outcome: 'wrong-user', from: 'websocket', to: 'bosh' }), 1, 'but counted as wrong-user');
});

t.test('a resume timeout: counted, its stanzas handed over by destination, a late resume is timed-out', async (t) => {
  const s = await withUsers(t, ['carol', 'dave', 'erin'], { ...PLAIN, SM_RESUME_TIMEOUT: '1' });
  const delta = await baseline(s);
  const erin = await websocket.connect(t, s);
  await erin.login('erin', 'erin-pw');
  // dave has another available resource; carol has none.
  const dave2 = await websocket.connect(t, s);
  await dave2.login('dave', 'dave-pw', 'two');
  await dave2.send("<presence xmlns='jabber:client'/>");
  const carol = await enabled(t, s, websocket, 'carol', 'gone');
  const dave = await enabled(t, s, websocket, 'dave', 'gone');
  carol.c.drop();
  dave.c.drop();
  await eventually(async () => (await hibernating(s)) === 2, { message: 'both hibernate' });
  await erin.send("<message xmlns='jabber:client' to='carol@localhost/gone' type='chat' id='m1'><body>1</body></message>");
  await erin.send("<message xmlns='jabber:client' to='dave@localhost/gone' type='chat' id='m2'><body>2</body></message>");
  await erin.send("<iq xmlns='jabber:client' to='carol@localhost/gone' type='get' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>");
  // SM_RESUME_TIMEOUT=1: both time out.
  t.equal((await erin.until((el) => el.attr('id') === 'q1', 10_000)).attr('type'), 'error', 'the IQ is bounced');
  await dave2.until((el) => el.attr('id') === 'm2');
  t.equal(await delta('xmpp_sm_resume_timeouts_total'), 2);
  t.equal(await delta('xmpp_sessions_ended_total', { transport: 'websocket', reason: 'resume-timeout' }), 2);
  t.equal(await delta('xmpp_sm_handed_over_total', { to: 'offline' }), 1, "carol's message to offline storage");
  t.equal(await delta('xmpp_sm_handed_over_total', { to: 'resource' }), 1, "dave's to his other resource");
  t.equal(await delta('xmpp_sm_handed_over_total', { to: 'bounced' }), 1, 'the IQ bounced');
  await eventually(async () => (await delta('xmpp_offline_messages_total', { event: 'stored' })) === 1, { message: 'stored offline' });
  t.ok((await resume(t, s, bosh, 'carol', carol.smid)).is('failed', NS.SM), 'too late');
  t.equal(await delta('xmpp_sm_resumes_total', { outcome: 'timed-out', from: 'none', to: 'bosh' }), 1, 'counted as timed-out, not unknown');
});

t.test('a resume timeout is no stream error: the hibernating session had no stream to carry one', async (t) => {
  const s = await withUsers(t, ['frank'], { ...PLAIN, SM_RESUME_TIMEOUT: '1' });
  const delta = await baseline(s);
  const { c } = await enabled(t, s, websocket, 'frank', 'gone');
  c.drop();
  await eventually(async () => (await delta('xmpp_sm_resume_timeouts_total')) === 1, { message: 'the session times out' });
  t.equal(await delta('xmpp_sessions_ended_total', { reason: 'resume-timeout' }), 1, 'ended as a resume timeout');
  t.equal(await delta('xmpp_stream_errors_total'), 0, 'no stream error counted: none was sent');
});

t.test('a resumption refused for an h above what was sent is a failed resume, counted with its outcome', async (t) => {
  const s = await withUsers(t, ['gina'], PLAIN);
  const delta = await baseline(s);
  const { c, smid } = await enabled(t, s, websocket, 'gina', 'too-high');
  c.drop();
  await eventually(async () => (await hibernating(s)) === 1, { message: 'the session hibernates' });
  const carrier = await bosh.connect(t, s);
  await carrier.authenticate('gina', 'gina-pw');
  // Nothing was sent to the session under stream management: h='5' acknowledges stanzas that never were.
  await carrier.send(`<resume xmlns='${NS.SM}' previd='${smid}' h='5'/>`);
  const answer = await carrier.until(isSm);
  t.ok(answer.is('failed', NS.SM) && answer.getChild('handled-count-too-high', NS.SM), 'refused: handled-count-too-high');
  t.equal(await delta('xmpp_sm_events_total', { event: 'resume-failed' }), 1, 'a failed resume');
  t.equal(await delta('xmpp_sm_resumes_total', { outcome: 'handled-count-too-high', from: 'websocket', to: 'bosh' }), 1, 'by its outcome');
  t.equal(await delta('xmpp_sm_resumes_total', { outcome: 'resumed' }), 0, 'not a resumption');
});

t.test('a resumption that replaces a transport still open counts the conflict stream error that transport gets', async (t) => {
  const s = await withUsers(t, ['hana'], PLAIN);
  const delta = await baseline(s);
  const { c, smid } = await enabled(t, s, websocket, 'hana', 'twice');
  // The old WebSocket still looks alive (a network change the server has not noticed): XEP-0198 §5 replaces it.
  t.ok((await resume(t, s, bosh, 'hana', smid)).is('resumed', NS.SM), 'resumed over BOSH');
  t.equal(await c.streamError(), 'conflict', 'the old stream ends with conflict');
  t.equal(await delta('xmpp_stream_errors_total', { condition: 'conflict' }), 1, 'counted as the stream error it is');
  t.equal(await delta('xmpp_stream_errors_total'), 1, 'and nothing else');
});

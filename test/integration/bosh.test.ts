/**
 * XEP-0124 / XEP-0206 protocol tests over raw HTTP: one test (or more) per
 * rule of the BOSH transport, on a real port with Node's http client.
 * BOSH_MAX_WAIT is 2 s so empty answers come quickly.
 */
import t, { type Test } from 'tap';
import { NS, serialize, x, type XmlElement } from '../../src/xml/index.js';
import { openSqliteStorage } from '../../src/storage/index.js';
import { startServer, type TestServer, withServer, withUsers } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { RawBoshClient, payloads, post, terminalCondition, type BoshResponse } from '../helpers/bosh-client.js';
import { eventually, sleep } from '../helpers/eventually.js';

const server = await withUsers(t, { alice: 'alice-secret', bob: 'bob-secret' }, { ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '2' });
const url = `${server.httpUrl}/http-bind`;

function client(tt: Test, opts: { rid?: number; sid?: string } = {}, target = url): RawBoshClient {
  const c = new RawBoshClient(target, opts);
  tt.teardown(() => c.destroy());
  return c;
}

async function wsClient(tt: Test, user: string, password: string, resource: string, target: TestServer = server): Promise<{ ws: RawWsClient; jid: string }> {
  const ws = await RawWsClient.connect(target.wsUrl);
  tt.teardown(() => ws.close());
  const jid = await ws.login(user, password, resource);
  return { ws, jid };
}

/** Tracks whether a promise has settled, for "still held" checks. */
function track<T>(p: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let done = false;
  p.then(() => { done = true; }, () => { done = true; });
  return { promise: p, settled: () => done };
}

function ping(id: string): XmlElement {
  return x('iq', { xmlns: NS.CLIENT, type: 'get', id, to: 'localhost' }, x('ping', { xmlns: NS.PING }));
}

function chat(to: string, body: string, id?: string): XmlElement {
  return x('message', { xmlns: NS.CLIENT, to, type: 'chat', id }, x('body', {}, body));
}

function expectTerminate(tt: Test, res: BoshResponse, condition: string | undefined, status = 200): void {
  tt.equal(res.status, status, `HTTP ${status}`);
  tt.equal(res.body?.attr('type'), 'terminate', 'type=terminate');
  tt.ok(res.body?.is('body', NS.HTTPBIND), 'the answer is a <body/> in the httpbind namespace');
  tt.equal(res.body?.attr('condition'), condition, `condition is ${condition ?? 'absent'}`);
}

t.test('session creation: the response carries every XEP-0124 §7.2 and XEP-0206 §4 attribute and the stream features', async (t) => {
  const c = client(t);
  const rid = c.rid;
  const res = await c.create({ route: 'xmpp:localhost:5222', from: 'alice@localhost', content: 'text/xml; charset=utf-8' });
  t.equal(res.status, 200);
  t.equal(res.headers['content-type'], 'text/xml; charset=utf-8');
  const b = res.body!;
  t.ok(b.is('body', NS.HTTPBIND));
  t.equal(b.attr('type'), undefined, 'not a terminate');
  const sid = b.attr('sid') ?? '';
  t.ok(Buffer.from(sid, 'base64url').length >= 16, 'the sid carries at least 128 bits');
  t.equal(b.attr('wait'), '2', 'wait is capped by BOSH_MAX_WAIT');
  t.equal(b.attr('hold'), '1');
  t.equal(b.attr('requests'), '2', 'requests = hold + 1');
  t.equal(b.attr('inactivity'), '60');
  t.equal(b.attr('polling'), '5');
  t.equal(b.attr('maxpause'), '120');
  t.equal(b.attr('ver'), '1.11');
  t.equal(b.attr('from'), 'localhost');
  t.ok((b.attr('authid') ?? '').length > 0, 'authid is the stream id');
  t.equal(b.attr('ack'), undefined, 'no ack: the client did not ask for acknowledgements');
  t.equal(b.attr('xmlns:xmpp'), NS.XBOSH);
  t.equal(b.attr('xmpp:version'), '1.0');
  t.equal(b.attr('xmpp:restartlogic'), 'true');
  const features = b.getChild('features', NS.STREAM);
  t.ok(features, 'the stream features are in the creation response (their content: transport-contract.test.ts)');
  t.not(sid, (await client(t).create()).body?.attr('sid'), 'sids differ');
  const again = await c.raw(x('body', { xmlns: NS.HTTPBIND, rid, sid, to: 'localhost' }));
  t.equal(again.text, res.text, 'repeating the creation rid gives the creation response again');
});

t.test("'wait' and 'hold' are capped, 'requests' follows 'hold', 'ver' is the lower of the two", async (t) => {
  const capped = await client(t).create({ wait: 600, hold: 5, ver: '2.3' });
  t.equal(capped.body?.attr('wait'), '2');
  t.equal(capped.body?.attr('hold'), '1');
  t.equal(capped.body?.attr('requests'), '2');
  t.equal(capped.body?.attr('ver'), '1.11');
  const lower = await client(t).create({ wait: 1, hold: 0, ver: '1.6' });
  t.equal(lower.body?.attr('wait'), '1', 'a wait below the maximum is granted as asked');
  t.equal(lower.body?.attr('hold'), '0');
  t.equal(lower.body?.attr('requests'), '1');
  t.equal(lower.body?.attr('ver'), '1.6');
  // §12: "The increase SHOULD be greater than the value it specifies for the 'polling' attribute" (5 s here).
  t.equal(lower.body?.attr('inactivity'), '66', 'a polling session gets an inactivity increased by more than its polling interval (§12)');
  const noWait = await client(t).create({ wait: undefined, hold: undefined });
  t.equal(noWait.body?.attr('wait'), '2', 'no wait means the maximum');
  t.equal(noWait.body?.attr('hold'), '1', 'no hold means 1');
});

t.test('an unknown host gets the host-unknown terminal condition and leaves no session', async (t) => {
  const before = server.app.bosh.stats().sessions;
  const res = await client(t).create({ to: 'example.org' });
  expectTerminate(t, res, 'host-unknown');
  t.equal(res.body?.getChild('error', NS.STREAM), undefined, 'host-unknown is its own condition, not a wrapped stream error');
  t.equal(server.app.bosh.stats().sessions, before);
});

t.test("an empty 'to' gets improper-addressing", async (t) => {
  expectTerminate(t, await client(t).create({ to: '' }), 'improper-addressing');
});

t.test('a request with nothing to send is answered empty after wait', async (t) => {
  const c = client(t);
  await c.create({ wait: 1 });
  const res = await c.send();
  t.equal(res.status, 200);
  t.equal(res.body?.attr('type'), undefined);
  t.same(payloads(res.body), [], 'empty body');
});

t.test('with hold=1, a second request makes the server answer the held one at once', async (t) => {
  // wait=60: only the hold rule (§8), not the wait, can answer the first request within the client's 10 s bound.
  const s = await withServer(t, { BOSH_MAX_WAIT: '60' });
  const c = client(t, {}, `${s.httpUrl}/http-bind`);
  await c.create({ wait: 60 });
  const first = track(c.send());
  await eventually(() => s.app.bosh.stats().held === 1, { timeout: 8000, message: 'the first request is held' });
  t.notOk(first.settled(), 'the first request is held');
  const second = track(c.send());
  const r1 = await first.promise;
  t.same(payloads(r1.body), [], 'the held request is answered empty');
  t.equal(s.app.bosh.stats().held, 1, 'the new request is now the held one');
  t.notOk(second.settled());
  const bye = await c.terminate();
  t.equal(terminalCondition(await second.promise), '', 'the terminate is acknowledged on the oldest request');
  t.equal(terminalCondition(bye), undefined);
});

t.test('a request ahead of a gap is held until the gap fills, and payloads go in rid order', async (t) => {
  const bob = await wsClient(t, 'bob', 'bob-secret', 'order');
  const c = client(t);
  await c.login('alice', 'alice-secret', 'order');
  const gap = c.body({}, chat(bob.jid, 'first'), ping('p-order'));
  const ahead = c.body({}, chat(bob.jid, 'second'));
  const earlyRes = track(c.raw(ahead));
  await sleep(200);
  t.notOk(earlyRes.settled(), 'the later rid waits for the gap');
  const gapRes = await c.raw(gap);
  t.ok(payloads(gapRes.body).some((p) => p.attr('id') === 'p-order'), 'the gap request gets the ping result');
  const m1 = await bob.ws.until((el) => el.local === 'message');
  const m2 = await bob.ws.until((el) => el.local === 'message');
  t.same([m1.getChildText('body'), m2.getChildText('body')], ['first', 'second'], 'payloads are forwarded in rid order (§14.2)');
  const er = await earlyRes.promise;
  t.equal(er.body?.attr('type'), undefined);
});

t.test('a request waiting for a gap is answered too when the request that fills it gets the terminate body of a closed stream (§13, §14.2)', async (t) => {
  // wait=60: only the terminate, not the wait, can answer the request that waits for the gap.
  const s = await withServer(t, { ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '60' });
  await s.addUser('alice', 'alice-secret');
  const c = client(t, {}, `${s.httpUrl}/http-bind`);
  await c.login('alice', 'alice-secret', 'gap', { wait: 60 });
  const gap = c.body();
  const ahead = track(c.raw(c.body()));
  await eventually(() => s.app.bosh.stats().pending === 1, { message: 'the later rid waits for the gap' });
  // The server closes the stream while no request is held: a login with the same resource replaces the session.
  const ws = await RawWsClient.connect(s.wsUrl);
  t.teardown(() => ws.close());
  await ws.login('alice', 'alice-secret', 'gap');
  await eventually(() => s.app.bosh.stats().held === 0 && s.app.sessions.get('localhost', 'alice', 'gap')?.transport === 'websocket', { message: 'the BOSH session replaced' });
  const filled = await c.raw(gap);
  t.equal(terminalCondition(filled), 'remote-stream-error', 'the request that fills the gap gets the terminate body');
  t.ok(filled.body?.getChild('error', NS.STREAM)?.getChild('conflict'), 'with the conflict inside');
  await eventually(() => ahead.settled(), { message: 'the request ahead of the gap answered too' });
  t.equal(terminalCondition(await ahead.promise), 'other-request', 'the other open request gets other-request (§17.2)');
  t.equal(s.app.bosh.stats().openRequests, 0, 'no request is left open');
});

t.test('a repeated rid gets the same response again (§14.3)', async (t) => {
  const c = client(t);
  await c.login('alice', 'alice-secret');
  const req = c.body({}, ping('p-repeat'));
  const first = await c.raw(req);
  t.ok(payloads(first.body).some((p) => p.attr('id') === 'p-repeat'));
  const second = await c.raw(req);
  t.equal(second.text, first.text, 'byte for byte the same response');
  const next = await c.send({}, ping('p-after'));
  t.ok(payloads(next.body).some((p) => p.attr('id') === 'p-after'), 'the session goes on');
});

t.test('a response lost on the way is sent again after the server closed the stream; the next rid gets the terminate body (§14.3, §13)', async (t) => {
  const c = client(t);
  await c.login('alice', 'alice-secret', 'lost-then-closed');
  const req = c.body({}, ping('p-lost'));
  // Its response is lost on the way (the client never reads it), and no request is held after it.
  const first = await c.raw(req);
  t.ok(payloads(first.body).some((p) => p.attr('id') === 'p-lost'));
  // The server closes the stream meanwhile: a login with the same resource replaces the session.
  const ws = await wsClient(t, 'alice', 'alice-secret', 'lost-then-closed');
  await eventually(() => server.app.sessions.get('localhost', 'alice', 'lost-then-closed')?.transport === 'websocket', { message: 'the BOSH session replaced' });
  t.ok(ws.jid);
  const again = await c.raw(req);
  t.equal(again.text, first.text, 'the repeated rid gets its buffered response, the ping result');
  const next = await c.send();
  t.equal(terminalCondition(next), 'remote-stream-error', 'the next request gets the terminate body');
  t.ok(next.body?.getChild('error', NS.STREAM)?.getChild('conflict'), 'with the conflict inside');
});

t.test('a closed stream\'s final body goes to the session\'s next request, not to one with a rid outside its window (§14.2, §13)', async (t) => {
  const c = client(t);
  await c.login('alice', 'alice-secret', 'closed-outsider');
  // The server closes the stream while no request is held: a login with the same resource replaces the session.
  await wsClient(t, 'alice', 'alice-secret', 'closed-outsider');
  await eventually(() => server.app.sessions.get('localhost', 'alice', 'closed-outsider')?.transport === 'websocket', { message: 'the BOSH session replaced' });
  // Whoever knows the sid, with a rid not of the session's sequence, gets item-not-found and nothing of it.
  for (const rid of [c.rid + 5, c.rid - 50]) {
    const outsider = await c.raw(x('body', { xmlns: NS.HTTPBIND, sid: c.sid, rid }));
    t.equal(terminalCondition(outsider), 'item-not-found', `rid ${rid} is refused`);
    t.notOk(outsider.body?.getChild('error', NS.STREAM), 'without the stream error meant for the client');
  }
  const next = await c.send();
  t.equal(terminalCondition(next), 'remote-stream-error', 'the client\'s next request still gets the terminate body');
  t.ok(next.body?.getChild('error', NS.STREAM)?.getChild('conflict'), 'with the conflict inside');
});

t.test('repeating a rid that is still held answers the old request with a recoverable error (§14.3)', async (t) => {
  const c = client(t);
  await c.create({ wait: 1 });
  const req = c.body();
  const old = c.raw(req);
  await sleep(100);
  const repeat = track(c.raw(req));
  const oldRes = await old;
  t.equal(oldRes.body?.attr('type'), 'error', 'the first copy gets type=error');
  const newRes = await repeat.promise;
  t.equal(newRes.body?.attr('type'), undefined, 'the repeat is answered normally');
});

t.test('a rid beyond the window or too old gets item-not-found and ends the session (§14.2, §14.3)', async (t) => {
  const sessionsBefore = server.app.bosh.stats().sessions;
  const ahead = client(t);
  await ahead.create();
  ahead.rid += 2; // next + 2 is outside a window of 2
  expectTerminate(t, await ahead.send(), 'item-not-found');
  ahead.rid -= 3;
  expectTerminate(t, await ahead.send(), 'item-not-found');
  t.equal(server.app.bosh.stats().sessions, sessionsBefore, 'the session is gone');

  const old = client(t);
  await old.login('alice', 'alice-secret');
  old.rid -= 4;
  expectTerminate(t, await old.send(), 'item-not-found');
});

t.test('restart after SASL success: xmpp:restart answers with the bind feature; a restart on an open stream is a stream error', async (t) => {
  const c = client(t);
  await c.create();
  const auth = x('auth', { xmlns: NS.SASL, mechanism: 'PLAIN' }, Buffer.from('\0alice\0alice-secret').toString('base64'));
  const success = await c.send({}, auth);
  t.ok(success.body?.getChild('success', NS.SASL));
  const restarted = await c.restart();
  const features = restarted.body?.getChild('features', NS.STREAM);
  t.ok(features?.getChild('bind', NS.BIND), 'bind is offered after the restart');
  t.equal(restarted.body?.attr('xmlns:stream'), NS.STREAM, 'the body declares the stream prefix (XEP-0206 §3)');

  const early = client(t);
  await early.create();
  const res = await early.restart();
  expectTerminate(t, res, 'remote-stream-error');
  t.equal(streamErrorCondition(res.body!.getChild('error', NS.STREAM)!), 'bad-format', 'the stream error travels inside');
});

t.test('a stream error from the core becomes remote-stream-error with the <stream:error/> inside (XEP-0206 §7)', async (t) => {
  const c = client(t);
  await c.create();
  const res = await c.send({}, chat('bob@localhost', 'too early'));
  expectTerminate(t, res, 'remote-stream-error');
  t.equal(res.body?.attr('xmlns:stream'), NS.STREAM);
  t.equal(streamErrorCondition(res.body!.getChild('error', NS.STREAM)!), 'not-authorized');
  expectTerminate(t, await c.send(), 'item-not-found', 200);
});

t.test('stanzas in the httpbind namespace are taken as jabber:client, and outgoing stanzas are qualified', async (t) => {
  const c = client(t);
  await c.login('alice', 'alice-secret');
  const res = await c.raw(`<body xmlns='${NS.HTTPBIND}' rid='${c.rid++}' sid='${c.sid}'><iq type='get' id='unq' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq></body>`);
  const pong = payloads(res.body).find((p) => p.attr('id') === 'unq');
  t.equal(pong?.attr('type'), 'result');
  t.equal(pong?.ns, NS.CLIENT, 'the answer is in jabber:client');
  t.equal(pong?.attr('xmlns'), NS.CLIENT, 'with an explicit xmlns');
});

t.test('terminate with stanzas delivers them, ends the session and others see it go unavailable', async (t) => {
  const bob = await wsClient(t, 'bob', 'bob-secret', 'watch');
  const other = await wsClient(t, 'alice', 'alice-secret', 'ws-other');
  other.ws.send(`<presence xmlns='jabber:client'/>`);
  await other.ws.until((el) => el.local === 'presence' && el.attr('from') === other.jid);
  const c = client(t);
  const jid = await c.login('alice', 'alice-secret', 'bosh-leaving');
  const available = await c.send({}, x('presence', { xmlns: NS.CLIENT }));
  t.equal(available.status, 200);
  await other.ws.until((el) => el.local === 'presence' && el.attr('from') === jid && el.attr('type') === undefined);
  const held = track(c.send());
  await sleep(100);
  const res = await c.terminate(chat(bob.jid, 'bye'), x('presence', { xmlns: NS.CLIENT, type: 'unavailable' }));
  const msg = await bob.ws.until((el) => el.local === 'message');
  t.equal(msg.getChildText('body'), 'bye', 'the message in the terminate body is delivered');
  t.equal(msg.attr('from'), jid);
  const gone = await other.ws.until((el) => el.local === 'presence' && el.attr('from') === jid);
  t.equal(gone.attr('type'), 'unavailable', 'the other resource sees the BOSH resource go unavailable');
  const heldRes = await held.promise;
  t.equal(heldRes.body?.attr('type'), 'terminate', 'the oldest open request acknowledges the termination (§13)');
  t.equal(res.body?.attr('type'), undefined, 'the terminate request itself gets an empty body');
  t.equal(server.app.sessions.get('localhost', 'alice', 'bosh-leaving'), undefined, 'the session is gone');
  expectTerminate(t, await c.send(), 'item-not-found');
});

t.test('terminate alone: the server sends unavailable presence on behalf of an available resource', async (t) => {
  const other = await wsClient(t, 'alice', 'alice-secret', 'ws-watch2');
  other.ws.send(`<presence xmlns='jabber:client'/>`);
  await other.ws.until((el) => el.local === 'presence' && el.attr('from') === other.jid);
  const c = client(t);
  const jid = await c.login('alice', 'alice-secret', 'bosh-quiet');
  await c.send({}, x('presence', { xmlns: NS.CLIENT }));
  const res = await c.terminate();
  t.equal(res.body?.attr('type'), 'terminate', 'the only open request gets type=terminate');
  const gone = await other.ws.until((el) => el.local === 'presence' && el.attr('from') === jid && el.attr('type') === 'unavailable');
  t.ok(gone);
});

/** Logs `user` in over WebSocket and expects `body` from offline storage, delay-stamped, exactly once. */
async function expectOfflineOnce(tt: Test, user: string, password: string, body: string): Promise<void> {
  const next = await wsClient(tt, user, password, 'next');
  next.ws.send(`<presence xmlns='jabber:client'/>`);
  const msg = await next.ws.until((el) => el.local === 'message');
  tt.equal(msg.getChildText('body'), body, 'the undelivered message comes from offline storage');
  tt.ok(msg.getChild('delay', NS.DELAY), 'with a delay stamp');
  next.ws.send(serialize(ping('after-offline')));
  const rest = await next.ws.until((el) => el.local === 'message' || (el.local === 'iq' && el.attr('id') === 'after-offline'));
  tt.equal(rest.local, 'iq', 'delivered once');
}

t.test('after the client terminates nothing more is sent to it: a stanza still queued stays unacked under SM and reaches the next login from offline storage', async (t) => {
  await server.addUser('dora', 'dora-secret');
  const bob = await wsClient(t, 'bob', 'bob-secret', 'sender');
  const c = client(t);
  const jid = await c.login('dora', 'dora-secret', 'bosh-sm-leaving');
  const enabled = await c.send({}, x('presence', { xmlns: NS.CLIENT }), x('enable', { xmlns: NS.SM, resume: 'true' }));
  t.ok(payloads(enabled.body).some((el) => el.local === 'enabled' && el.ns === NS.SM), 'SM is enabled');
  // No request is held now: the message waits in the session's queue.
  bob.ws.send(serialize(chat(jid, 'still queued', 'q1')));
  bob.ws.send(serialize(ping('after-q1')));
  await bob.ws.until((el) => el.local === 'iq' && el.attr('id') === 'after-q1'); // routing is done by now
  const res = await c.terminate();
  t.equal(res.body?.attr('type'), 'terminate', 'the terminate is acknowledged');
  t.same(payloads(res.body).map((el) => el.local), [], 'no payload after the client said goodbye (no message, no <r/>)');
  await eventually(() => server.app.sessions.get('localhost', 'dora', 'bosh-sm-leaving') === undefined, { timeout: 8000, message: 'the session is gone' });
  await expectOfflineOnce(t, 'dora', 'dora-secret', 'still queued');
});

t.test('without stream management, what is still queued when the client terminates is handed over: the message to offline storage, the IQ bounced', async (t) => {
  await server.addUser('erin', 'erin-secret');
  const bob = await wsClient(t, 'bob', 'bob-secret', 'sender-nosm');
  const c = client(t);
  const jid = await c.login('erin', 'erin-secret', 'bosh-leaving-nosm');
  await c.send({}, x('presence', { xmlns: NS.CLIENT }));
  // No request is held now: both wait in the session's queue.
  bob.ws.send(serialize(chat(jid, 'queued without SM', 'q2')));
  bob.ws.send(`<iq xmlns='jabber:client' type='get' id='to-leaver' to='${jid}'><query xmlns='jabber:iq:version'/></iq>`);
  bob.ws.send(serialize(ping('after-q2')));
  await bob.ws.until((el) => el.local === 'iq' && el.attr('id') === 'after-q2');
  const res = await c.terminate();
  t.equal(res.body?.attr('type'), 'terminate', 'the terminate is acknowledged');
  t.same(payloads(res.body).map((el) => el.local), [], 'nothing is sent after the client said goodbye');
  const bounced = await bob.ws.until((el) => el.local === 'iq' && el.attr('id') === 'to-leaver');
  t.equal(bounced.attr('type'), 'error', 'the IQ request nobody will answer comes back as an error');
  t.ok(bounced.getChild('error')?.getChild('service-unavailable', NS.STANZAS), 'service-unavailable');
  await expectOfflineOnce(t, 'erin', 'erin-secret', 'queued without SM');
});

t.test('without stream management, a message queued when the session times out goes to another resource of the account', async (t) => {
  const s = await withUsers(t, { carol: 'carol-secret', dave: 'dave-secret' }, { BOSH_INACTIVITY: '1', BOSH_MAX_WAIT: '1', ALLOW_INSECURE_PLAIN: 'true' });
  const dave = await wsClient(t, 'dave', 'dave-secret', 'sender', s);
  const other = await wsClient(t, 'carol', 'carol-secret', 'ws-stays', s);
  other.ws.send(`<presence xmlns='jabber:client'/>`);
  await other.ws.until((el) => el.local === 'presence' && el.attr('from') === other.jid);
  const c = client(t, {}, `${s.httpUrl}/http-bind`);
  const jid = await c.login('carol', 'carol-secret', 'bosh-goes');
  await c.send({}, x('presence', { xmlns: NS.CLIENT }));
  // Full-JID message to the BOSH resource, which never polls again.
  dave.ws.send(serialize(chat(jid, 'for the BOSH tab', 'q3')));
  await eventually(() => s.app.sessions.size === 2, { timeout: 8000, message: 'the BOSH session times out' });
  const msg = await other.ws.until((el) => el.local === 'message');
  t.equal(msg.getChildText('body'), 'for the BOSH tab', 'the undelivered message reaches the resource that is still there');
  t.equal(msg.attr('from'), dave.jid);
  t.ok(msg.getChild('delay', NS.DELAY), 'with a delay stamp');
});

t.test('an unknown sid gets item-not-found with HTTP 200 (§17.2)', async (t) => {
  const c = client(t, { sid: 'no-such-session' });
  expectTerminate(t, await c.send(), 'item-not-found', 200);
});

t.test('bad bodies get bad-request', async (t) => {
  const cases: Array<[string, string]> = [
    ['not well-formed', `<body xmlns='${NS.HTTPBIND}' rid='5'>`],
    ['empty', ''],
    ['wrong root', `<foo xmlns='${NS.HTTPBIND}' rid='5' ver='1.11'/>`],
    ['wrong namespace', `<body xmlns='jabber:client' rid='5' ver='1.11'/>`],
    ['missing rid', `<body xmlns='${NS.HTTPBIND}' to='localhost' ver='1.11'/>`],
    ['rid zero', `<body xmlns='${NS.HTTPBIND}' rid='0' to='localhost' ver='1.11'/>`],
    ['rid not a number', `<body xmlns='${NS.HTTPBIND}' rid='12a' to='localhost' ver='1.11'/>`],
    ['rid above 2^53', `<body xmlns='${NS.HTTPBIND}' rid='9007199254740992' to='localhost' ver='1.11'/>`],
    ['character data', `<body xmlns='${NS.HTTPBIND}' rid='5' to='localhost' ver='1.11'>hello</body>`],
    ['comment', `<body xmlns='${NS.HTTPBIND}' rid='5' to='localhost'><!-- x --></body>`],
    ['DOCTYPE', `<!DOCTYPE body [<!ENTITY e 'x'>]><body xmlns='${NS.HTTPBIND}' rid='5'>&e;</body>`],
    ['unknown type', `<body xmlns='${NS.HTTPBIND}' rid='5' to='localhost' type='bogus' ver='1.11'/>`],
    ['bad wait', `<body xmlns='${NS.HTTPBIND}' rid='5' to='localhost' wait='soon' ver='1.11'/>`],
  ];
  for (const [name, body] of cases) {
    await t.test(name, async (t) => expectTerminate(t, await post(url, body), 'bad-request'));
  }
  const nothing = await post(url, undefined, { headers: { 'content-type': '' } });
  expectTerminate(t, nothing, 'bad-request');
});

t.test('a legacy client (no ver) gets the deprecated HTTP status with the terminal condition (§17.1)', async (t) => {
  const res = await post(url, `<body xmlns='${NS.HTTPBIND}' rid='5' to='localhost' wait='soon'/>`);
  expectTerminate(t, res, 'bad-request', 400);
  const c = client(t);
  await c.create({ ver: undefined });
  c.rid += 5;
  expectTerminate(t, await c.send(), 'item-not-found', 404);
});

t.test("a client's recoverable binding error (type='error') does not end the session (§17: the client MAY report binding errors)", async (t) => {
  const c = client(t);
  await c.login('alice', 'alice-secret', 'reports-error');
  const res = await c.send({ type: 'error' }, ping('p-error'));
  t.equal(res.body?.attr('type'), undefined, `not a terminate (${res.text.slice(0, 200)})`);
  t.ok(payloads(res.body).some((p) => p.attr('id') === 'p-error'), 'its payloads are processed');
  const next = await c.send({}, ping('p-next'));
  t.ok(payloads(next.body).some((p) => p.attr('id') === 'p-next'), 'the session goes on');
});

t.test('a bad request on a live session ends it', async (t) => {
  const c = client(t);
  await c.create();
  expectTerminate(t, await c.raw(`<body xmlns='${NS.HTTPBIND}' sid='${c.sid}' rid='${c.rid}' pause='forever'/>`), 'bad-request');
  expectTerminate(t, await c.send(), 'item-not-found');
});

t.test('any Content-Type is accepted (§4: it is ignored)', async (t) => {
  for (const ct of ['text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'application/json', 'application/xml']) {
    const c = client(t);
    const res = await c.raw(x('body', { xmlns: NS.HTTPBIND, rid: c.rid++, to: 'localhost', ver: '1.11', 'xmpp:version': '1.0', 'xmlns:xmpp': NS.XBOSH }), { headers: { 'content-type': ct } });
    t.ok(res.body?.attr('sid'), `${ct}: a session is created`);
  }
});

t.test("the 'content' attribute sets the response Content-Type, but only to XML or plain text", async (t) => {
  const plain = client(t);
  const created = await plain.create({ content: 'text/plain; charset=utf-8' });
  t.equal(created.headers['content-type'], 'text/plain; charset=utf-8');
  t.equal(created.headers['x-content-type-options'], 'nosniff');
  const html = client(t);
  t.equal((await html.create({ content: 'text/html' })).headers['content-type'], 'text/xml; charset=utf-8', 'text/html is refused');
});

t.test('an oversized body gets policy-violation and the server keeps serving', async (t) => {
  const big = `<body xmlns='${NS.HTTPBIND}' rid='5' to='localhost'><message xmlns='jabber:client'><body>${'x'.repeat(300_000)}</body></message></body>`;
  const res = await post(url, big);
  expectTerminate(t, res, 'policy-violation');
  const justOver = `<body xmlns='${NS.HTTPBIND}' rid='5'>${'<a/>'.repeat(65_536)}</body>`;
  expectTerminate(t, await post(url, justOver), 'policy-violation');
  const deep = `<body xmlns='${NS.HTTPBIND}' rid='5' to='localhost'>${'<a>'.repeat(200)}${'</a>'.repeat(200)}</body>`;
  expectTerminate(t, await post(url, deep), 'policy-violation');
  const c = client(t);
  t.ok((await c.create()).body?.attr('sid'), 'a new session still works');
});

t.test('more simultaneous requests than requests= is overactivity: policy-violation (§11)', async (t) => {
  const c = client(t);
  await c.create({ wait: 2 });
  const base = c.rid;
  const held = track(c.raw(c.body())); // base: held
  await sleep(100);
  c.rid = base + 2;
  const ahead = track(c.raw(c.body())); // base + 2: waits for the gap
  await sleep(100);
  c.rid = base + 1;
  const third = await c.send(); // base + 1: three unanswered requests with requests=2
  expectTerminate(t, third, 'policy-violation');
  t.equal(terminalCondition(await held.promise), 'other-request', 'the held request learns that another request ended the session');
  t.equal(terminalCondition(await ahead.promise), 'other-request');
  expectTerminate(t, await c.send(), 'item-not-found');
});

t.test('one extra request is allowed when it terminates the session (§11)', async (t) => {
  const c = client(t);
  await c.login('alice', 'alice-secret');
  const base = c.rid;
  const held = track(c.raw(c.body()));
  await sleep(100);
  c.rid = base + 2;
  const ahead = track(c.raw(c.body()));
  await sleep(100);
  c.rid = base + 1;
  const res = await c.terminate();
  t.not(terminalCondition(res), 'policy-violation');
  t.equal((await held.promise).body?.attr('type'), 'terminate', 'the oldest request acknowledges the termination');
  t.equal(terminalCondition(res), undefined, 'the others get empty bodies');
  // Never processed: an empty body would tell a client that its payloads were taken.
  t.equal(terminalCondition(await ahead.promise), 'item-not-found', 'a request with a later rid than the terminate is for a session that is over (§17.2)');
});

t.test('a polling session that polls faster than polling= gets policy-violation (§12)', async (t) => {
  const c = client(t);
  const created = await c.create({ hold: 0 });
  t.equal(created.body?.attr('requests'), '1');
  const first = await c.send();
  t.same(payloads(first.body), [], 'a poll is answered at once');
  expectTerminate(t, await c.send(), 'policy-violation');
});

t.test('ack: responses acknowledge the highest rid received, and a lower client ack gets a report (§9)', async (t) => {
  const c = client(t);
  const createRid = c.rid;
  const created = await c.create({ ack: 1, wait: 1 });
  t.equal(created.body?.attr('ack'), String(createRid), 'the creation response carries ack = its rid');
  const first = track(c.send());
  await sleep(100);
  const second = track(c.send());
  const r1 = await first.promise;
  t.equal(r1.body?.attr('ack'), String(createRid + 2), 'the answer to rid+1 acknowledges rid+2, received meanwhile');
  const r2 = await second.promise;
  t.equal(r2.body?.attr('ack'), undefined, "no 'ack' when it would equal the rid answered");
  // The client says it lacks the response to createRid + 2: the next response reports it, at once.
  const third = track(c.send({ ack: createRid + 1 }));
  const r3 = await third.promise;
  t.equal(r3.body?.attr('report'), String(createRid + 2));
  t.match(r3.body?.attr('time'), /^\d+$/, "'time' is the milliseconds since that response");
  const again = await c.raw(x('body', { xmlns: NS.HTTPBIND, rid: createRid + 2, sid: c.sid }));
  t.equal(again.text, r2.text, 'the unacknowledged response is still there to be asked for (§14.3)');
  // A request without 'ack' says every earlier response arrived (§9.2): they are not kept any more.
  t.equal((await c.send()).body?.attr('type'), undefined);
  const late = await c.raw(x('body', { xmlns: NS.HTTPBIND, rid: createRid + 2, sid: c.sid }));
  t.equal(terminalCondition(late), 'item-not-found', 'a response the client acknowledged by omission is gone');
});

t.test('key sequencing: a wrong key gets item-not-found (§15)', async (t) => {
  const { createHash } = await import('node:crypto');
  const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');
  const keys = ['seed'];
  for (let i = 0; i < 4; i++) keys.push(sha1(keys[keys.length - 1]!));
  // keys[4] = K(4) goes first as newkey, then K(3), K(2)...
  const c = client(t);
  await c.create({ newkey: keys[4], wait: 1 });
  const ok = await c.raw(c.body({ key: keys[3] }));
  t.equal(ok.body?.attr('type'), undefined, 'the right key is accepted');
  expectTerminate(t, await c.raw(c.body({ key: keys[3] })), 'item-not-found');
});

t.test('key sequencing covers repeated rids: a held or answered request is not served to a request without its key (§15, §14.3)', async (t) => {
  // Found in a hostile review: a repeated or still-open rid was served before the key was checked,
  // so whoever knew the sid took over the held request and its payload, and replayed answered ones.
  const { createHash } = await import('node:crypto');
  const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');
  const keys = ['seed'];
  for (let i = 0; i < 6; i++) keys.push(sha1(keys[keys.length - 1]!));
  const forged = (body: XmlElement, attrs: Record<string, string | undefined>): XmlElement => {
    const copy = body.clone();
    for (const [k, v] of Object.entries(attrs)) copy.setAttr(k, v);
    return copy;
  };

  const replayed = client(t);
  await replayed.create({ newkey: keys[6], wait: 1 });
  const answeredReq = replayed.body({ key: keys[5] });
  const answered = await replayed.raw(answeredReq);
  t.equal(terminalCondition(answered), undefined, 'the owner\'s request is answered');
  t.equal((await replayed.raw(answeredReq)).text, answered.text, 'the owner may repeat it, key and all (§14.3)');
  expectTerminate(t, await replayed.raw(forged(answeredReq, { key: undefined })), 'item-not-found');

  const heldOne = client(t);
  await heldOne.create({ newkey: keys[6], wait: 2 });
  const heldReq = heldOne.body({ key: keys[5] });
  const held = heldOne.raw(heldReq);
  await sleep(100);
  expectTerminate(t, await heldOne.raw(forged(heldReq, { key: 'not-the-key' })), 'item-not-found');
  const heldAnswer = await held;
  t.not(terminalCondition(heldAnswer), undefined, 'the held request is not handed to the forger: the session ends for both');
  t.same(payloads(heldAnswer.body), [], 'and carries nothing');
});

t.test('pause (§10) answers held requests at once and keeps the session past its inactivity, within maxpause', async (t) => {
  const s = await withServer(t, { BOSH_INACTIVITY: '1', BOSH_MAX_PAUSE: '3', BOSH_MAX_WAIT: '5' });
  const c = client(t, {}, `${s.httpUrl}/http-bind`);
  const created = await c.create();
  t.equal(created.body?.attr('maxpause'), '3');
  const heldReq = c.body();
  const held = track(c.raw(heldReq));
  await sleep(100);
  const paused = await c.send({ pause: 1000 });
  t.same(payloads(paused.body), [], 'the pause request is answered at once, without payloads');
  const heldRes = await held.promise;
  t.equal(terminalCondition(heldRes), undefined, 'the held request is answered too');
  t.equal((await c.raw(heldReq)).text, heldRes.text, 'its response is buffered like any other (§14.3)');
  await sleep(1800);
  t.equal(s.app.bosh.stats().sessions, 1, 'the session outlives its 1 s inactivity during the pause');
  await eventually(() => s.app.bosh.stats().sessions === 0, { timeout: 8000, message: 'the pause, capped at maxpause, runs out' });
  t.equal(s.app.sessions.size, 0, 'the XMPP session ended with it');
});

t.test('inactivity ends the session and the XMPP session with it', async (t) => {
  const s = await withUsers(t, { carol: 'carol-secret' }, { BOSH_INACTIVITY: '1', BOSH_MAX_WAIT: '1', ALLOW_INSECURE_PLAIN: 'true' });
  const c = client(t, {}, `${s.httpUrl}/http-bind`);
  await c.login('carol', 'carol-secret');
  t.equal(s.app.sessions.size, 1);
  await eventually(() => s.app.bosh.stats().sessions === 0, { timeout: 8000, message: 'the BOSH session times out' });
  await eventually(() => s.app.sessions.size === 0, { timeout: 8000, message: 'the XMPP session ends' });
  expectTerminate(t, await c.send(), 'item-not-found');
});

t.test('the number of sessions per client address is capped', async (t) => {
  const s = await withServer(t, { BOSH_MAX_SESSIONS_PER_IP: '2' });
  const target = `${s.httpUrl}/http-bind`;
  const a = client(t, {}, target);
  await a.create();
  await client(t, {}, target).create();
  expectTerminate(t, await client(t, {}, target).create(), 'policy-violation');
  const proxied = await post(target, `<body xmlns='${NS.HTTPBIND}' rid='77' to='localhost' ver='1.11'/>`, { headers: { 'x-forwarded-for': '203.0.113.9' } });
  t.ok(proxied.body?.attr('sid'), 'another address behind the trusted proxy has its own count');
  await a.terminate();
  t.ok((await client(t, {}, target).create()).body?.attr('sid'), 'a terminated session frees its slot');
});

t.test('CORS: preflight is answered, POST carries Access-Control-Allow-Origin, other routes are untouched', async (t) => {
  // Any page may use BOSH only when ALLOWED_ORIGINS says '*' (admission.test.ts has the default).
  const open = await withServer(t, { ALLOWED_ORIGINS: '*' });
  const url = `${open.httpUrl}/http-bind`;
  const pre = await post(url, undefined, {
    method: 'OPTIONS', headers: { origin: 'https://widget.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
  });
  t.equal(pre.status, 204);
  t.equal(pre.headers['access-control-allow-origin'], '*');
  t.match(pre.headers['access-control-allow-methods'], /POST/);
  t.match(pre.headers['access-control-allow-headers'], /content-type/i);
  const c = client(t, {}, url);
  const res = await c.raw(x('body', { xmlns: NS.HTTPBIND, rid: c.rid++, to: 'localhost', ver: '1.11' }), { headers: { origin: 'https://widget.example' } });
  t.equal(res.headers['access-control-allow-origin'], '*');
  const health = await post(`${open.httpUrl}/healthz`, undefined, { method: 'GET', headers: { origin: 'https://widget.example' } });
  t.equal(health.headers['access-control-allow-origin'], undefined, 'CORS is scoped to the BOSH path');

  const s = await withServer(t, { BOSH_CORS_ORIGINS: 'https://chat.example.com' });
  const target = `${s.httpUrl}/http-bind`;
  const allowed = await post(target, undefined, { method: 'OPTIONS', headers: { origin: 'https://chat.example.com', 'access-control-request-method': 'POST' } });
  t.equal(allowed.headers['access-control-allow-origin'], 'https://chat.example.com');
  const denied = await post(target, undefined, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
  t.equal(denied.headers['access-control-allow-origin'], undefined, 'an origin not listed gets no CORS grant');
});

t.test('GET returns a short human-readable page; HTTP keep-alive is on', async (t) => {
  const res = await post(url, undefined, { method: 'GET' });
  t.equal(res.status, 200);
  t.match(res.headers['content-type'], /^text\/html/);
  t.match(res.text, /BOSH/);
  const c = client(t);
  const created = await c.create();
  t.equal(created.headers.connection, 'keep-alive');
});

t.test('host-meta advertises the BOSH endpoint (XEP-0156)', async (t) => {
  const res = await post(`${server.httpUrl}/.well-known/host-meta.json`, undefined, { method: 'GET' });
  const links = JSON.parse(res.text) as { links: Array<{ rel: string; href: string }> };
  t.ok(links.links.some((l) => l.rel === 'urn:xmpp:alt-connections:xbosh' && l.href.endsWith('/http-bind')));
});

t.test('a held request the client drops counts as answered: later stanzas wait for the next request', async (t) => {
  // wait=60: only noticing the dropped connection, not the wait, can free the held request here.
  const s = await withUsers(t, { alice: 'alice-secret', bob: 'bob-secret' }, { ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '60' });
  const bob = await wsClient(t, 'bob', 'bob-secret', 'drop', s);
  const c = client(t, {}, `${s.httpUrl}/http-bind`);
  const jid = await c.login('alice', 'alice-secret', 'dropper');
  const controller = new AbortController();
  const dropped = c.raw(c.body(), { signal: controller.signal }).catch((err: Error) => err);
  await eventually(() => s.app.bosh.stats().held === 1, { timeout: 8000, message: 'the request is held' });
  controller.abort();
  t.ok((await dropped) instanceof Error, 'the client gave up on the request');
  await eventually(() => s.app.bosh.stats().held === 0, { timeout: 8000, message: 'the server notices' });
  bob.ws.send(`<message xmlns='jabber:client' to='${jid}' type='chat'><body>kept</body></message>`);
  await eventually(() => s.app.bosh.stats().queued === 1, { timeout: 8000, message: 'the message is queued' });
  const res = await c.send();
  t.equal(payloads(res.body).find((p) => p.local === 'message')?.getChildText('body'), 'kept', 'the next request carries it');
});

t.test('at shutdown, a message waiting in the BOSH queue for a request that will never come is stored offline', async (t) => {
  // Without XEP-0198, and with it but SM_BUFFER=false (acks only: SM's queue never held the message).
  for (const [label, env, enable] of [
    ['no XEP-0198', {}, false],
    ['XEP-0198 with SM_BUFFER=false', { SM_BUFFER: 'false' }, true],
  ] as const) {
    const dir = t.testdir();
    const storage = openSqliteStorage(dir);
    // A networked backend answers later than better-sqlite3 does: shutdown must wait for the write.
    const { push } = storage.offline;
    storage.offline = { ...storage.offline, push: async (...args) => { await sleep(200); return push(...args); } };
    const s = await startServer({ ALLOW_INSECURE_PLAIN: 'true', ...env }, storage);
    await s.addUser('carol', 'carol-secret');
    await s.addUser('dave', 'dave-secret');
    const dave = await wsClient(t, 'dave', 'dave-secret', 'sender', s);
    const c = client(t, {}, `${s.httpUrl}/http-bind`);
    const jid = await c.login('carol', 'carol-secret', 'bosh');
    const started = await c.send({}, x('presence', { xmlns: NS.CLIENT }), ...(enable ? [x('enable', { xmlns: NS.SM })] : []));
    if (enable) t.ok(payloads(started.body).some((el) => el.local === 'enabled' && el.ns === NS.SM), `${label}: SM is enabled`);
    dave.ws.send(serialize(chat(jid, `before the restart (${label})`, 'q4')));
    dave.ws.send(serialize(ping('after-q4')));
    await dave.ws.until((el) => el.local === 'iq' && el.attr('id') === 'after-q4'); // routing is done by now
    await s.close();
    const reopened = openSqliteStorage(dir);
    const stored = await reopened.offline.list('localhost', 'carol');
    await reopened.close();
    t.equal(stored.length, 1, `${label}: one message stored before the database closed`);
    t.match(stored[0]?.stanza, `before the restart (${label})`, `${label}: the one that was waiting`);
  }
});

t.test('shutdown answers held requests with system-shutdown at once', async (t) => {
  const s = await startServer({ BOSH_MAX_WAIT: '60' });
  const c = client(t, {}, `${s.httpUrl}/http-bind`);
  await c.create();
  const held = c.send();
  await eventually(() => s.app.bosh.stats().held === 1, { timeout: 8000, message: 'the request is held' });
  const closing = s.close();
  expectTerminate(t, await held, 'system-shutdown');
  await closing;
  t.same(s.app.bosh.stats(), { sessions: 0, held: 0, pending: 0, queued: 0, timers: 0, openRequests: 0, addresses: 0 });
});

t.test('a session started over HTTPS takes no request over plain HTTP: the connection is closed, the session goes on (§19.1)', async (t) => {
  // TLS as a trusted proxy reports it (X-Forwarded-Proto), on the same loopback port as plain HTTP.
  const s = await withUsers(t, { carol: 'carol-secret' }, { TRUSTED_PROXIES: '127.0.0.1', BOSH_MAX_WAIT: '2' });
  const tls = { 'x-forwarded-proto': 'https' };
  const c = client(t, {}, `${s.httpUrl}/http-bind`);
  const created = await c.raw(x('body', {
    xmlns: NS.HTTPBIND, 'xmlns:xmpp': NS.XBOSH, rid: c.rid++, to: 'localhost', wait: 2, hold: 1, ver: '1.11', 'xmpp:version': '1.0',
  }), { headers: tls });
  c.sid = created.body?.attr('sid');
  const mechanisms = created.body?.getChild('features', NS.STREAM)?.getChild('mechanisms', NS.SASL)?.getChildren('mechanism').map((m) => m.text());
  t.ok(mechanisms?.includes('PLAIN'), 'the secure session offers PLAIN');
  const plain = (password: string) => x('auth', { xmlns: NS.SASL, mechanism: 'PLAIN' }, Buffer.from(`\0carol\0${password}`).toString('base64'));
  const rid = c.rid;
  // The right password, over plain HTTP: it must not be read at all.
  const insecure = await c.raw(x('body', { xmlns: NS.HTTPBIND, rid, sid: c.sid }, plain('carol-secret'))).then(
    (res) => `answered with HTTP ${res.status}: ${res.text}`, (err: Error) => err);
  t.type(insecure, Error, 'the plain-HTTP request got no response: its connection was closed');
  // The same rid again over HTTPS, with a wrong password: had the first request been processed, this
  // would get its cached <success/> (§14.3); it is processed now, as the first request of that rid.
  const secure = await c.raw(x('body', { xmlns: NS.HTTPBIND, rid, sid: c.sid }, plain('wrong')), { headers: tls });
  t.equal(secure.body?.attr('type'), undefined, 'the session was not terminated');
  t.ok(secure.body?.getChild('failure', NS.SASL)?.getChild('not-authorized', NS.SASL), 'the rid was still free: the HTTPS request was the one processed');
  const ok = await c.raw(x('body', { xmlns: NS.HTTPBIND, rid: rid + 1, sid: c.sid }, plain('carol-secret')), { headers: tls });
  t.ok(ok.body?.getChild('success', NS.SASL), 'and the session logs in over HTTPS');
});

t.test('a response lost on the way can still be asked for after a newer request went through (§14.3)', async (t) => {
  const c = client(t);
  await c.create();
  const lost = c.rid;
  const first = c.send();
  const second = c.send();
  // hold=1: the second request makes the server answer the first; say that answer never arrived.
  const lostText = (await first).text;
  // With `lost` still outstanding for the client, it may send one more (requests=2).
  const third = c.send();
  t.equal((await second).body?.attr('type'), undefined, 'the second request was answered normally');
  const again = await c.raw(x('body', { xmlns: NS.HTTPBIND, rid: lost, sid: c.sid }));
  t.equal(again.text, lostText, 'the repeated rid gets the response that was lost, not item-not-found');
  t.equal((await third).body?.attr('type'), undefined, 'and the session goes on');
});

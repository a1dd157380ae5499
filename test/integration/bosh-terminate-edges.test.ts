/**
 * Two edges of a client's terminate (XEP-0124 §13) found in review, on a
 * real port over raw HTTP (a third, a terminate past the input bound, is in
 * bosh-terminate-backlog.test.ts):
 * - a terminate the core was slow to close (its queue busy with what came
 *   before) was answered at 'wait' with an empty <body/>: the client never
 *   learnt that the session ended;
 * - the payloads of a request with a later rid than the terminate were
 *   silently dropped (answered with an empty <body/>): such a request is for
 *   a session that is over and gets item-not-found (§17.2), its payloads not
 *   taken.
 * And a terminate whose request the client abandoned (its connection closed before the answer):
 * once a later rid came, which gets item-not-found, nothing can fetch the terminate body any more,
 * and the BOSH session ends at once; it waited for BOSH_INACTIVITY. Sent again (§14.3) before the core
 * closed the stream, the abandoned terminate got the empty <body/> it had counted as answered with, and the
 * session lived on to the next rid or its inactivity: it now waits for the terminate body as the first did.
 */
import t, { type Test } from 'tap';
import { NS, parseXml, x, type XmlElement } from '../../src/xml/index.js';
import { withUsers, type TestServer, type UsersServer } from '../helpers/server.js';
import { RawBoshClient, payloads, terminalCondition, type BoshResponse } from '../helpers/bosh-client.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { holdCalls } from '../helpers/hold-calls.js';
import { eventually } from '../helpers/eventually.js';
import { baseline } from '../helpers/metrics-text.js';

const ENV = { ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '60', BOSH_INACTIVITY: '60' };

const chat = (to: string, id: string, text: string): XmlElement => x('message', { xmlns: NS.CLIENT, to, type: 'chat', id }, x('body', {}, text));
const unavailable = (): XmlElement => x('presence', { xmlns: NS.CLIENT, type: 'unavailable' });

/** The ids of the messages stored offline for `user`, once the BOSH session and `owner`'s XMPP session `resource` are gone. */
async function storedAfterEnd(s: TestServer, user: string, owner: string, resource: string): Promise<(string | undefined)[]> {
  await eventually(() => s.app.bosh.stats().sessions === 0 && s.app.sessions.get('localhost', owner, resource) === undefined, { message: 'the sessions to end' });
  return (await s.storage.offline.list('localhost', user)).map((m) => parseXml(m.stanza).attr('id'));
}

/**
 * Alice over BOSH (`wait` seconds), and her terminate sent with a vCard set the store holds: the
 * core is still busy with it, so it has not closed her session yet. Resolves once the store holds it.
 */
async function terminateWhileClosing(t: Test, s: UsersServer, resource: string, wait: number): Promise<{
  alice: RawBoshClient; jid: string; terminated: Promise<BoshResponse>; release(): void;
}> {
  const alice = new RawBoshClient(`${s.httpUrl}/http-bind`);
  t.teardown(() => alice.destroy());
  const jid = await alice.login('alice', 'alice-pw', resource, { wait });
  const store = holdCalls(s.storage.vcards, 'set');
  t.teardown(() => store.release());
  const vcard = x('iq', { xmlns: NS.CLIENT, type: 'set', id: 'v1' }, x('vCard', { xmlns: NS.VCARD }, x('FN', {}, 'Alice')));
  const terminated = alice.terminate(vcard, unavailable());
  await store.entered;
  return { alice, jid, terminated, release: () => store.release() };
}

t.test('a terminate the core is slow to close gets the terminate body when wait runs out; what reaches the session afterwards is stored offline', async (t) => {
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, ENV);
  const { jid, terminated, release } = await terminateWhileClosing(t, server, 'slow', 1);
  const res = await terminated;
  t.equal(terminalCondition(res), '', `the terminate is answered with type=terminate, without a condition (${res.text})`);
  t.same(payloads(res.body), [], 'and nothing else: the client reads nothing more');
  t.equal(server.app.bosh.stats().sessions, 0, 'the BOSH session is over');
  // The XMPP session is still closing (its queue waits for the store): a message to it is handed over.
  const bob = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'sender');
  bob.send(`<message xmlns='jabber:client' to='${jid}' type='chat' id='meanwhile'><body>hi</body></message>`);
  await eventually(() => server.app.sessions.get('localhost', 'alice', 'slow')?.undeliveredStanzas?.length === 1, { message: 'the message to reach the closing session' });
  release();
  t.same(await storedAfterEnd(server, 'alice', 'alice', 'slow'), ['meanwhile'], 'the message sent meanwhile is stored offline');
  t.ok(await server.storage.vcards.get('localhost', 'alice'), "the terminate's vCard set was processed");
  t.equal(server.app.bosh.stats().timers, 0, 'no timer left');
});

t.test("a request with a later rid than the client's terminate, while the core is still closing, gets item-not-found: its message is not taken", async (t) => {
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, ENV);
  const { alice, terminated, release } = await terminateWhileClosing(t, server, 'after', 5);
  const late = await alice.send({}, chat('bob@localhost', 'late', 'after the goodbye'));
  t.equal(terminalCondition(late), 'item-not-found', `the session is over for the client (§17.2) (${late.text})`);
  release();
  t.equal(terminalCondition(await terminated), '', 'the terminate gets the terminate body');
  t.same(await storedAfterEnd(server, 'bob', 'alice', 'after'), [], 'the refused message was not processed');
});

t.test("a body that does not parse, with a later rid than the client's terminate, gets item-not-found as one that parses: the terminate still gets the terminate body", async (t) => {
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, ENV);
  const { alice, terminated, release } = await terminateWhileClosing(t, server, 'after-malformed', 5);
  const late = await alice.raw(`<body xmlns='${NS.HTTPBIND}' sid='${alice.sid}' rid='${alice.rid++}'><message xmlns='jabber:client'></body>`);
  t.equal(terminalCondition(late), 'item-not-found', `the session is over for the client (§13, §17.2), whatever the body holds (${late.text})`);
  release();
  t.equal(terminalCondition(await terminated), '', 'the terminate gets the terminate body, not other-request');
});

t.test("a well-formed body with an unknown type, with a later rid than the client's terminate, gets item-not-found: the terminate still gets the terminate body", async (t) => {
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, ENV);
  const { alice, terminated, release } = await terminateWhileClosing(t, server, 'after-bad-type', 5);
  const late = await alice.raw(`<body xmlns='${NS.HTTPBIND}' sid='${alice.sid}' rid='${alice.rid++}' type='bogus'/>`);
  t.equal(terminalCondition(late), 'item-not-found', `the session is over for the client (§13, §17.2), whatever the body holds (${late.text})`);
  release();
  t.equal(terminalCondition(await terminated), '', 'the terminate gets the terminate body, not bad-request\'s end');
});

t.test("a request for a rid after the terminate that arrived before it (§14.2) gets item-not-found once the terminate is processed: its message is not taken", async (t) => {
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, ENV);
  const alice = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => alice.destroy());
  await alice.login('alice', 'alice-pw', 'early', { wait: 30 });
  const terminate = alice.body({ type: 'terminate' }, unavailable());
  const early = alice.send({}, chat('bob@localhost', 'early', 'after the goodbye'));
  await eventually(() => server.app.bosh.stats().pending === 1, { message: 'the later rid waiting for the gap' });
  const goodbye = await alice.raw(terminate);
  t.equal(terminalCondition(goodbye), '', 'the terminate gets the terminate body');
  t.equal(terminalCondition(await early), 'item-not-found', 'the later rid is for a session that is over (§17.2)');
  t.same(await storedAfterEnd(server, 'bob', 'alice', 'early'), [], 'the refused message was not processed');
});

/** Alice's terminate (with a vCard set the store holds, so the core has not closed yet), abandoned by the client once the store holds it. */
async function abandonedTerminate(t: Test, s: UsersServer, resource: string, wait = 30): Promise<{ alice: RawBoshClient; goodbye: XmlElement; release(): void }> {
  const alice = new RawBoshClient(`${s.httpUrl}/http-bind`);
  t.teardown(() => alice.destroy());
  await alice.login('alice', 'alice-pw', resource, { wait });
  const store = holdCalls(s.storage.vcards, 'set');
  t.teardown(() => store.release());
  const vcard = x('iq', { xmlns: NS.CLIENT, type: 'set', id: 'v1' }, x('vCard', { xmlns: NS.VCARD }, x('FN', {}, 'Alice')));
  const abort = new AbortController();
  const goodbye = alice.body({ type: 'terminate' }, vcard, unavailable());
  const terminated = alice.raw(goodbye, { signal: abort.signal }).catch((err: Error) => err);
  await store.entered;
  abort.abort();
  t.ok(await terminated instanceof Error, 'the client abandoned its terminate');
  await eventually(() => s.app.bosh.stats().held === 0, { message: 'the server to notice' });
  return { alice, goodbye, release: () => store.release() };
}

t.test('a later rid after an abandoned terminate, once the core closed the stream, gets item-not-found and ends the BOSH session at once', async (t) => {
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, ENV);
  const { alice, release } = await abandonedTerminate(t, server, 'abandoned-closed');
  release();
  await eventually(() => server.app.sessions.get('localhost', 'alice', 'abandoned-closed') === undefined, { message: 'the core to close the stream' });
  t.equal(server.app.bosh.stats().sessions, 1, 'the BOSH session waits for a request to fetch the terminate body');
  const delta = await baseline(server);
  const late = await alice.send();
  t.equal(terminalCondition(late), 'item-not-found', `the later rid is for a session that is over (§17.2) (${late.text})`);
  t.same(server.app.bosh.stats(), { ...server.app.bosh.stats(), sessions: 0, held: 0, pending: 0, queued: 0, timers: 0, addresses: 0 }, 'the BOSH session is gone at once, nothing left');
  t.equal(await delta('xmpp_bosh_sessions_ended_total', { reason: 'terminate' }), 1, 'counted as ended by the terminate');
  t.equal(terminalCondition(await alice.send()), 'item-not-found', 'its sid is no longer known');
});

t.test('a later rid after an abandoned terminate, while the core is still closing, gets item-not-found and ends the BOSH session at once; the terminate is still processed', async (t) => {
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, ENV);
  const { alice, release } = await abandonedTerminate(t, server, 'abandoned-closing');
  const late = await alice.send({}, chat('bob@localhost', 'late', 'after the goodbye'));
  t.equal(terminalCondition(late), 'item-not-found', `the later rid is for a session that is over (§17.2) (${late.text})`);
  t.equal(server.app.bosh.stats().sessions, 0, 'the BOSH session is gone at once');
  t.equal(server.app.bosh.stats().timers, 0, 'no timer left');
  release();
  t.same(await storedAfterEnd(server, 'bob', 'alice', 'abandoned-closing'), [], 'the refused message was not processed');
  t.ok(await server.storage.vcards.get('localhost', 'alice'), "the terminate's vCard set was processed");
});

t.test('an abandoned terminate sent again (§14.3) once the core closed the stream gets the terminate body, and the BOSH session ends', async (t) => {
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, ENV);
  const { alice, goodbye, release } = await abandonedTerminate(t, server, 'abandoned-again');
  release();
  await eventually(() => server.app.sessions.get('localhost', 'alice', 'abandoned-again') === undefined, { message: 'the core to close the stream' });
  const again = await alice.raw(goodbye);
  t.equal(terminalCondition(again), '', `the terminate sent again gets the terminate body, not the empty one never sent (${again.text})`);
  t.equal(server.app.bosh.stats().sessions, 0, 'the BOSH session is over at once');
  t.equal(server.app.bosh.stats().timers, 0, 'no timer left');
});

t.test('an abandoned terminate sent again (§14.3) while the core is still closing waits for the terminate body, and the BOSH session ends with it', async (t) => {
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, ENV);
  const { alice, goodbye, release } = await abandonedTerminate(t, server, 'abandoned-again-early');
  const again = alice.raw(goodbye);
  const early = await Promise.race([again, eventually(() => server.app.bosh.stats().held === 1, { message: 'the terminate sent again to be held' }).then(() => undefined)]);
  t.equal(early, undefined, `the terminate sent again is held for the terminate body, not answered from the buffer (${early?.text ?? ''})`);
  release();
  const res = await again;
  t.equal(terminalCondition(res), '', `it gets the terminate body once the core closed the stream (${res.text})`);
  t.equal(server.app.bosh.stats().sessions, 0, 'the BOSH session is over at once');
  t.equal(server.app.bosh.stats().timers, 0, 'no timer left');
  t.ok(await server.storage.vcards.get('localhost', 'alice'), "the terminate's vCard set was processed");
});

t.test('an abandoned terminate sent again while the core is still closing gets the terminate body when wait runs out', async (t) => {
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, ENV);
  const { alice, goodbye, release } = await abandonedTerminate(t, server, 'abandoned-again-wait', 1);
  const res = await alice.raw(goodbye);
  t.equal(terminalCondition(res), '', `the terminate body, not an empty one: the session is over (${res.text})`);
  t.equal(server.app.bosh.stats().sessions, 0, 'the BOSH session is over');
  release();
  await eventually(() => server.app.sessions.get('localhost', 'alice', 'abandoned-again-wait') === undefined, { message: 'the core to close the stream' });
  t.equal(server.app.bosh.stats().timers, 0, 'no timer left');
});

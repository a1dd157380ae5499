/**
 * What a WebSocket client sent and the server had read but not yet run when the server closes the
 * stream (RFC 7395 §3.6, RFC 6120 §4.4: the closing party "continue[s] to process data received from
 * the other entity"). The client's frames wait in the transport's input pump (here for the inbound
 * stanza rate); when the server closed the session (replaced by a new connection with the same
 * resource, a shutdown) they were dropped unread, and frames the client sent before it read the
 * server's <close/> were too: its messages were lost. They are processed now (routed: delivered or
 * stored offline), as the core already did for input queued behind a handler. Frames of a transport
 * a resumption replaced (XEP-0198 §5) are not: <resumed h/> does not count them, and the client sends
 * them again (sm-resume-races.test.ts).
 */
import t, { type Test } from 'tap';
import { NS, parseXml } from '../../src/xml/index.js';
import { withUsers, type UsersServer } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { eventually } from '../helpers/eventually.js';

/** Five stanzas a second (a burst of five): a burst of messages waits in the input pump. */
const ENV = { ALLOW_INSECURE_PLAIN: 'true', MAX_INBOUND_STANZAS_PER_SECOND: '5', WS_CLOSE_TIMEOUT: '5' };
const COUNT = 20;

const chat = (i: number): string => `<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m${i}'><body>${i}</body></message>`;

async function storedForBob(s: UsersServer): Promise<string[]> {
  return (await s.storage.offline.list('localhost', 'bob')).map((m) => parseXml(m.stanza).attr('id') ?? '');
}

/** alice logged in over a raw WebSocket as `resource`. */
async function aliceOn(t: Test, s: UsersServer, resource: string): Promise<RawWsClient> {
  const alice = await RawWsClient.connect(s.wsUrl);
  t.teardown(() => alice.close());
  await alice.login('alice', 'alice-pw', resource);
  return alice;
}

/** Alice on `resource` with COUNT messages to bob (offline) sent at once: most of them wait for the rate. */
async function burst(t: Test, s: UsersServer, resource: string): Promise<RawWsClient> {
  const alice = await aliceOn(t, s, resource);
  for (let i = 0; i < COUNT; i++) alice.send(chat(i));
  await eventually(() => s.app.websocket.stats().pausedInputs === 1, { message: "alice's input to wait for the rate" });
  return alice;
}

const all = Array.from({ length: COUNT }, (_, i) => `m${i}`);

t.test('a session replaced by a new connection (conflict) still processes the messages it had read: none is lost', async (t) => {
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, ENV);
  const alice = await burst(t, server, 'desk');
  // A new connection for the same resource: the first gets conflict (RFC 6120 §7.7.2.2).
  await aliceOn(t, server, 'desk');
  t.equal(streamErrorCondition(await alice.until((el) => el.is('error', NS.STREAM))), 'conflict', 'the old stream is replaced');
  t.ok((await alice.next()).is('close', NS.FRAMING), 'and closed');
  alice.send(`<close xmlns='${NS.FRAMING}'/>`);
  await alice.waitClosed();
  await eventually(async () => (await storedForBob(server)).length === COUNT, { message: () => 'every message stored for bob' }).catch(() => undefined);
  t.same((await storedForBob(server)).sort(), [...all].sort(), 'every message alice sent is stored offline for bob');
});

t.test('a shutdown still processes the messages a WebSocket session had read: none is lost', async (t) => {
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, ENV);
  const alice = await burst(t, server, 'shutdown');
  server.app.core.shutdown();
  t.equal(streamErrorCondition(await alice.until((el) => el.is('error', NS.STREAM))), 'system-shutdown', 'the stream ends with system-shutdown');
  await eventually(async () => (await storedForBob(server)).length === COUNT, { message: () => 'every message stored for bob' }).catch(() => undefined);
  t.same((await storedForBob(server)).sort(), [...all].sort(), 'every message alice sent is stored offline for bob');
});

t.test("messages the client sent before it read the server's <close/> are processed (RFC 6120 §4.4), until its own <close/>", async (t) => {
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, { ALLOW_INSECURE_PLAIN: 'true', WS_CLOSE_TIMEOUT: '5' });
  const alice = await aliceOn(t, server, 'late');
  // A new connection for the same resource: the first gets conflict (RFC 6120 §7.7.2.2).
  await aliceOn(t, server, 'late');
  await alice.until((el) => el.is('close', NS.FRAMING));
  // As if sent while the server's <close/> was on its way.
  alice.send(chat(0));
  alice.send(chat(1));
  alice.send(`<close xmlns='${NS.FRAMING}'/>`);
  alice.send(chat(2));
  await alice.waitClosed();
  await eventually(async () => (await storedForBob(server)).length >= 2, { message: 'the messages to be stored for bob' }).catch(() => undefined);
  t.same((await storedForBob(server)).sort(), ['m0', 'm1'], "both messages sent before the client's <close/> are stored offline for bob, nothing after it");
});

t.test('a session resumed on a new connection (XEP-0198 §5): what the replaced transport held is not processed, <resumed h/> counts what was, and what the client sends again is stored once', async (t) => {
  // A guard of the exception, not a failure of the old code: processing that input would store messages twice.
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, ENV);
  const alice = await aliceOn(t, server, 'tab');
  alice.send(`<enable xmlns='${NS.SM}' resume='true'/>`);
  const smid = (await alice.until((el) => el.is('enabled', NS.SM))).attr('id');
  for (let i = 0; i < COUNT; i++) alice.send(chat(i));
  await eventually(() => server.app.websocket.stats().pausedInputs === 1, { message: "alice's input to wait for the rate" });
  const fresh = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => fresh.close());
  await fresh.authenticate('alice', 'alice-pw');
  fresh.send(`<resume xmlns='${NS.SM}' previd='${smid}' h='0'/>`);
  const h = Number((await fresh.until((el) => el.is('resumed', NS.SM))).attr('h'));
  t.ok(h < COUNT, `<resumed h='${h}'/> leaves out the messages the old transport still held`);
  t.equal(streamErrorCondition(await alice.until((el) => el.is('error', NS.STREAM))), 'conflict', 'the replaced transport gets conflict');
  for (let i = h; i < COUNT; i++) fresh.send(chat(i));
  await eventually(async () => (await storedForBob(server)).length >= COUNT, { message: () => 'every message stored for bob' }).catch(() => undefined);
  t.same((await storedForBob(server)).sort(), [...all].sort(), 'every message stored once');
});

t.test('a stream the server closes because the account was deleted processes nothing more the client sends', async (t) => {
  // not-authorized: the server took the account's authorization away; what the client sends after (or
  // had queued) is not acted on as that account (neither is it after a rule broken, policy-violation).
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, { ALLOW_INSECURE_PLAIN: 'true', WS_CLOSE_TIMEOUT: '5' });
  const alice = await aliceOn(t, server, 'gone');
  alice.send(chat(0));
  await eventually(async () => (await storedForBob(server)).length === 1, { message: 'the message before the deletion stored' });
  await server.storage.users.delete('localhost', 'alice');
  t.equal(streamErrorCondition(await alice.until((el) => el.is('error', NS.STREAM), 10_000)), 'not-authorized', 'the stream ends with not-authorized');
  await alice.until((el) => el.is('close', NS.FRAMING));
  alice.send(chat(1));
  alice.send(chat(2));
  alice.send(`<close xmlns='${NS.FRAMING}'/>`);
  await alice.waitClosed();
  // A message that was routed would be stored by now: the client's <close/> came after both.
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.same(await storedForBob(server), ['m0'], 'only the message sent before the deletion is stored for bob');
});

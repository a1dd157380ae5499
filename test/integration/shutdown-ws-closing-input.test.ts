/**
 * A WebSocket stream the server closes for system-shutdown still processes what the client sends
 * until the client's <close/> (RFC 7395 §3.6, RFC 6120 §4.4; websocket.ts onClosingFrame), for up to
 * WS_CLOSE_TIMEOUT. The shutdown drained the core and closed the store without waiting for those
 * streams: a message the client sent after the drain was routed while the store closed (or after
 * shutdown() resolved and the process exited), so a message the server accepted was neither
 * delivered, stored nor bounced. The shutdown now waits for the closing WebSocket connections
 * (bounded by WS_CLOSE_TIMEOUT, and by half of SHUTDOWN_TIMEOUT) before the drain, and cuts those
 * left, so nothing is read after it.
 */
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { NS, parseXml } from '../../src/xml/index.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import { withUsers, type UsersServer } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const chat = (i: number): string => `<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m${i}'><body>${i}</body></message>`;

/** A store that writes offline messages at a disk's pace and, once closed, refuses writes (as a closed SQLite does). */
function closingStore() {
  const storage = createMemoryStorage();
  const state = { closed: false, writesAfterClose: 0 };
  const push = storage.offline.push.bind(storage.offline);
  storage.offline.push = async (...args: Parameters<typeof push>) => {
    if (state.closed) { state.writesAfterClose++; throw new Error('the store is closed'); }
    await sleep(20);
    if (state.closed) { state.writesAfterClose++; throw new Error('the store is closed'); }
    return push(...args);
  };
  const close = storage.close.bind(storage);
  storage.close = async () => { state.closed = true; return close(); };
  return { storage, state };
}

async function storedForBob(s: UsersServer): Promise<string[]> {
  return (await s.storage.offline.list('localhost', 'bob')).map((m) => parseXml(m.stanza).attr('id') ?? '');
}

/** Alice logged in; the server shutting down; her stream ended with system-shutdown and <close/>. */
async function shutdownUnderAlice(t: Test, env: Record<string, string>) {
  const { storage, state } = closingStore();
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, { ALLOW_INSECURE_PLAIN: 'true', ...env }, storage);
  const alice = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => alice.ws.terminate());
  await alice.login('alice', 'alice-pw', 'late');
  const session = server.app.sessions.get('localhost', 'alice', 'late')!;
  const before = session.stanzasIn;
  let storedAtEnd: string[] | undefined;
  const ending = server.app.shutdown().then(async () => { storedAtEnd = await storedForBob(server); });
  // On its way as the shutdown begins: it arrives after the close of her stream began (and, before, after the drain).
  alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='first'><body>first</body></message>`);
  t.equal(streamErrorCondition(await alice.until((el) => el.is('error', NS.STREAM))), 'system-shutdown', 'system-shutdown');
  await alice.until((el) => el.is('close', NS.FRAMING));
  return { server, state, alice, ending, read: () => session.stanzasIn - before, storedAtEnd: () => storedAtEnd };
}

/**
 * alice sends a message every 50 ms (at most 60) after system-shutdown and never her <close/>, until the shutdown
 * resolves; then what the server read is stored, and nothing reaches the store after it closed.
 */
async function sendsUntilCut(t: Test, env: Record<string, string>): Promise<{ read: () => number; sent: number }> {
  const { server, state, alice, ending, read, storedAtEnd } = await shutdownUnderAlice(t, env);
  let done = false;
  void ending.then(() => { done = true; });
  let sent = 0;
  for (; sent < 60 && !done && alice.ws.readyState === WebSocket.OPEN; sent++) {
    alice.send(chat(sent));
    await sleep(50);
  }
  await ending;
  t.equal(storedAtEnd()!.length, read(), 'every message the server read is stored offline when shutdown() resolves');
  await sleep(200);
  t.equal(state.writesAfterClose, 0, 'no offline write reaches the store after it closed');
  t.same((await storedForBob(server)).sort(), [...storedAtEnd()!].sort(), 'and nothing is written after');
  return { read, sent };
}

t.test("messages sent after the server's <close/>, until the client's own, are all stored before shutdown() resolves", async (t) => {
  const { server, state, alice, ending, read, storedAtEnd } = await shutdownUnderAlice(t, { WS_CLOSE_TIMEOUT: '5', SHUTDOWN_TIMEOUT: '20' });
  const sent: string[] = ['first'];
  // Spaced out: the core is idle between them (the old drain ended after the first).
  for (let i = 0; i < 8 && alice.ws.readyState === WebSocket.OPEN; i++) {
    alice.send(chat(i));
    sent.push(`m${i}`);
    await sleep(100);
  }
  if (alice.ws.readyState === WebSocket.OPEN) alice.send(`<close xmlns='${NS.FRAMING}'/>`);
  await ending;
  t.equal(sent.length, 9, "the stream stays readable until the client's <close/> (RFC 6120 §4.4)");
  t.same([...storedAtEnd()!].sort(), [...sent].sort(), 'every message sent before her <close/> is stored offline when shutdown() resolves');
  t.equal(read(), storedAtEnd()!.length, 'every message the server read is stored');
  await sleep(200);
  t.equal(state.writesAfterClose, 0, 'no offline write reaches the store after it closed');
  t.same((await storedForBob(server)).sort(), [...storedAtEnd()!].sort(), 'and nothing is written after');
});

t.test('a client that never sends <close/> is cut at WS_CLOSE_TIMEOUT; what the server read is stored, nothing is read after', async (t) => {
  const { read } = await sendsUntilCut(t, { WS_CLOSE_TIMEOUT: '1', SHUTDOWN_TIMEOUT: '20' });
  t.ok(read() > 0, 'the server read some of them');
});

t.test('the wait stays within SHUTDOWN_TIMEOUT: cut at half of it when WS_CLOSE_TIMEOUT is longer', async (t) => {
  const { sent } = await sendsUntilCut(t, { WS_CLOSE_TIMEOUT: '300', SHUTDOWN_TIMEOUT: '2' });
  t.ok(sent < 60, `shutdown() resolved, its connection cut, while the client was still sending (${sent} of 60 sent)`);
});

/**
 * XEP-0198 flow control (issue 10) on the wire: buffer_max bounds the
 * stanzas in flight, not the session. What does not fit waits and goes out
 * as acks come; only a client that stops acknowledging (SM_ACK_TIMEOUT) or
 * lets the waiting stanzas pass SM_PENDING_MAX_BYTES is closed, and then
 * every stanza is handed over, in order, once.
 */
import t, { type Test } from 'tap';
import { NS } from '../../src/xml/index.js';
import { type TestServer, withUsers } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { SmPeer, chat, routed } from '../helpers/sm-peer.js';
import { sleep } from '../helpers/xmppjs.js';
import { eventually, waitUntil } from '../helpers/eventually.js';

async function server(t: Test, env: Record<string, string>, ...users: string[]): Promise<TestServer> {
  return withUsers(t, users, { ALLOW_INSECURE_PLAIN: 'true', ...env });
}

/** A server with `env`, alice logged in as `resource` with SM, and bob ready to send to her. */
async function setup(t: Test, env: Record<string, string>, resource: string, autoAck = false): Promise<{ s: TestServer; alice: SmPeer; bob: RawWsClient; to: string }> {
  const s = await server(t, env, 'alice', 'bob');
  const alice = await SmPeer.login(s.wsUrl, 'alice', 'alice-pw', resource, { autoAck });
  const bob = await RawWsClient.connect(s.wsUrl);
  await bob.login('bob', 'bob-pw', 'sender');
  return { s, alice, bob, to: `alice@localhost/${resource}` };
}

function send(bob: RawWsClient, to: string, messageIds: string[], body?: string): void {
  for (const id of messageIds) bob.send(chat(to, id, body));
}

/** The ids of alice's stored offline messages, oldest first, once `n` are there. */
async function storedIds(s: TestServer, n: number): Promise<string[]> {
  await waitUntil(async () => (await s.storage.offline.count('localhost', 'alice')) >= n, { timeout: 4000 });
  return (await s.storage.offline.list('localhost', 'alice')).map((m) => /id="([^"]+)"/.exec(m.stanza)?.[1] ?? '?');
}

const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

t.test('a full unacked queue holds further stanzas until acks make room; the stream stays open', async (t) => {
  const { s, alice, bob, to } = await setup(t, { SM_BUFFER_MAX: '3' }, 'slow');
  send(bob, to, ids('o', 5));
  await routed(bob, 'p1');
  await alice.c.until((el) => el.is('r', NS.SM));
  await sleep(100);
  t.same(alice.messageIds(), ['o0', 'o1', 'o2'], 'buffer_max stanzas in flight, no more');
  t.notOk(alice.c.frames.some((el) => el.local === 'error' && el.ns === NS.STREAM), 'no stream error');
  alice.ack(3);
  await eventually(() => alice.messageIds().length === 5, { message: 'the two held messages after the ack' });
  t.same(alice.messageIds(), ids('o', 5), 'in order, once');
  alice.ack();
  await sleep(100);
  t.notOk(alice.c.closed, 'still open');
  t.ok(s.app.sessions.get('localhost', 'alice', 'slow')?.conn, 'the session keeps its transport');
  t.equal(await s.storage.offline.count('localhost', 'alice'), 0, 'nothing was handed over');
});

t.test('stanzas for a hibernating session wait, and after the resume come after the unacked ones as acks make room', async (t) => {
  const { s, alice, bob, to } = await setup(t, { SM_BUFFER_MAX: '2', SM_RESUME_TIMEOUT: '30' }, 'tab');
  send(bob, to, ids('h', 2));
  await eventually(() => alice.messageIds().length === 2, { message: 'the first two messages' });
  alice.c.ws.terminate();
  await eventually(() => s.app.sessions.get('localhost', 'alice', 'tab')?.conn === null, { message: 'hibernation' });
  send(bob, to, ids('h', 7).slice(2));
  await routed(bob, 'p1');

  const { peer: again, answer } = await SmPeer.resume(s.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true });
  t.ok(answer.is('resumed', NS.SM), 'resumed');
  await eventually(() => again.messageIds().length === 7, { timeout: 5000, message: 'all seven messages' }).catch((err: unknown) => {
    throw new Error(`${String(err)}; got ${again.messageIds().join(', ')}`, { cause: err });
  });
  await sleep(100);
  t.same(again.messageIds(), ids('h', 7), 'the two unacked, then the five that waited, in order, once');
  t.notOk(again.c.closed, 'the resumed stream stays open');
  t.equal(await s.storage.offline.count('localhost', 'alice'), 0, 'nothing was handed over');
});

t.test('a client that stops acknowledging is closed after SM_ACK_TIMEOUT and its stanzas are handed over in order', async (t) => {
  const { s, alice, bob, to } = await setup(t, { SM_ACK_TIMEOUT: '1', SM_BUFFER_MAX: '2' }, 'stuck');
  send(bob, to, ids('t', 4));
  await routed(bob, 'p1');
  const err = await alice.c.until((el) => el.local === 'error' && el.ns === NS.STREAM, 4000);
  t.equal(streamErrorCondition(err), 'connection-timeout');
  t.same(await storedIds(s, 4), ids('t', 4), 'the two unacked and the two waiting are stored offline, in order, once');
  t.notOk(bob.frames.some((el) => el.local === 'message' && el.attr('type') === 'error'), 'the sender got no error');
});

t.test('a client that answers <r/> is not closed by the ack timeout', async (t) => {
  const { alice, bob, to } = await setup(t, { SM_ACK_TIMEOUT: '1', SM_BUFFER_MAX: '2' }, 'live', true);
  for (let round = 0; round < 3; round++) {
    send(bob, to, ids(`l${round}-`, 3));
    await sleep(600);
  }
  await eventually(() => alice.messageIds().length === 9, { message: 'all nine messages' });
  await sleep(1200);
  t.notOk(alice.c.closed, 'still open after more than SM_ACK_TIMEOUT');
  t.same(alice.messageIds(), [0, 1, 2].flatMap((r) => ids(`l${r}-`, 3)), 'in order, once');
});

t.test('waiting stanzas beyond SM_PENDING_MAX_BYTES close the stream with policy-violation and are handed over in order', async (t) => {
  const { s, alice, bob, to } = await setup(t, { SM_BUFFER_MAX: '2', SM_PENDING_MAX_BYTES: '2048' }, 'full');
  send(bob, to, ids('s', 3));
  await routed(bob, 'p1');
  await sleep(100);
  t.notOk(alice.c.frames.some((el) => el.local === 'error' && el.ns === NS.STREAM), 'one stanza over buffer_max only waits: no stream error');
  t.ok(s.app.sessions.get('localhost', 'alice', 'full'), 'the session is still there');
  const big = 'x'.repeat(500);
  send(bob, to, ids('b', 5), big);
  const err = await alice.c.until((el) => el.local === 'error' && el.ns === NS.STREAM);
  t.equal(streamErrorCondition(err), 'policy-violation');
  t.same(await storedIds(s, 8), [...ids('s', 3), ...ids('b', 5)], 'every message is stored offline, in order, once');
});

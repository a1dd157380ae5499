/**
 * Issue 10 over a real WebSocket: a client that stops reading is no longer
 * read from (its output backlog stays bounded) and gets every answer, in
 * order, once it reads again; one stuck above the limit past the grace is
 * dropped with its messages handed over; and input faster than the inbound
 * rate is slowed, never dropped.
 */
import { ITEMS_PER_TURN } from '../../src/transports/input-pump.js';
import t from 'tap';
import type { Test } from 'tap';
import type { Socket } from 'node:net';
import type { TestServer } from '../helpers/server.js';
import { UNSHAPED, flowCount as count, flowServer, drainCounter } from '../helpers/flow.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { eventually } from '../helpers/eventually.js';
import { baseline } from '../helpers/metrics-text.js';

const HIGH = 65536;
const VCARD_TEXT = 60_000;

/** The TCP socket under a ws client: pausing it makes the client stop reading. */
const socketOf = (c: RawWsClient): Socket => (c.ws as unknown as { _socket: Socket })._socket;

/** Stanzas a bound session has had dispatched by the core (its own counter). */
function stanzasIn(server: TestServer, jid: string): number {
  const session = [...server.app.sessions.all].find((s) => s.full_jid === jid);
  return session?.stanzasIn ?? -1;
}

const flowCount = (server: TestServer, event: string): Promise<number> => count(server, 'websocket', event);

/** A logged-in raw client, closed at the end of `t`. */
async function connected(t: Test, server: TestServer, user: string): Promise<{ c: RawWsClient; jid: string }> {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.close());
  return { c, jid: await c.login(user, user[0]!, 'r') };
}

async function setBigVcard(c: RawWsClient): Promise<void> {
  c.send(`<iq xmlns='jabber:client' type='set' id='vset'><vCard xmlns='${NS.VCARD}'><DESC>${'v'.repeat(VCARD_TEXT)}</DESC></vCard></iq>`);
  const res = await c.until((el) => el.attr('id') === 'vset');
  if (res.attr('type') !== 'result') throw new Error(`vCard set failed: ${res.toString()}`);
}

t.test('a WebSocket that stops reading is not read from, its backlog stays bounded, and every IQ is answered in order afterwards', async (t) => {
  const drains = drainCounter((session) => session.username === 'bob');
  const server = await flowServer(t, { WS_MAX_BUFFERED_BYTES: String(HIGH), MAX_VCARD_SIZE: '70000', ...UNSHAPED }, ['alice', 'bob'], [drains.feature]);
  await setBigVcard((await connected(t, server, 'alice')).c);
  const { c: bob, jid: bobJid } = await connected(t, server, 'bob');
  const before = stanzasIn(server, bobJid);
  const delta = await baseline(server);
  // 500 x 60 KB of answers: far more than the loopback socket buffers take.
  const n = 500;
  socketOf(bob).pause();
  for (let i = 0; i < n; i++) bob.send(`<iq xmlns='jabber:client' type='get' id='v${i}' to='alice@localhost'><vCard xmlns='${NS.VCARD}'/></iq>`);

  // Processing stops (the count holds still for 200 ms) while bob does not read.
  let seen = -1;
  let still = 0;
  await eventually(() => {
    const now = stanzasIn(server, bobJid);
    still = now === seen ? still + 1 : 0;
    seen = now;
    return still >= 10;
  }, { timeout: 20_000, interval: 20, message: 'processing to stop' });
  t.ok(seen - before < n, `only ${seen - before} of ${n} requests were processed while bob did not read`);
  t.equal(server.app.websocket.stats().pausedInputs, 1, "the server is not reading bob's socket");
  t.ok(await flowCount(server, 'paused-output') >= 1, 'the pause is counted');
  const peak = server.app.websocket.stats().peakBufferedBytes;
  t.ok(peak > HIGH, 'the backlog did reach the mark (the test exercised it)');
  t.ok(peak <= 2 * HIGH + ITEMS_PER_TURN * (VCARD_TEXT + 1024), `the output backlog stayed within the limit plus one turn's replies (peak ${peak})`);

  socketOf(bob).resume();
  const ids: string[] = [];
  let withVcard = 0;
  while (ids.length < n) {
    const el: XmlElement = await bob.next(15_000);
    if (el.local !== 'iq') continue;
    if (el.attr('type') === 'result' && el.getChild('vCard', NS.VCARD)) withVcard++;
    ids.push(el.attr('id')!);
  }
  t.same(ids, Array.from({ length: n }, (_, i) => `v${i}`), 'every request answered once, in order');
  t.equal(withVcard, n, 'each answer is a result carrying the vCard');
  // Frames held in the backlog and written on drain are bytes sent too.
  const sent = await delta('xmpp_sent_bytes_total', { transport: 'websocket' });
  t.ok(sent >= n * VCARD_TEXT, `xmpp_sent_bytes_total counts every answer, held ones included (${sent} bytes)`);
  t.equal(server.app.websocket.stats().pausedInputs, 0, 'reading resumed');
  t.ok(drains.count() >= 1, `the session heard that its transport drained ('session-drained' ${drains.count()} times)`);
});

t.test('a reader stuck above twice the mark past the grace is dropped and its messages go to offline storage', async (t) => {
  // 400 × 50 KB is 20 MB: past MAX_OFFLINE_BYTES' 10 MiB default the tail would be bounced, not stored.
  const server = await flowServer(t, { WS_MAX_BUFFERED_BYTES: String(HIGH), WS_SLOW_CONSUMER_GRACE: '1', MAX_OFFLINE_BYTES: String(1024 ** 3), ...UNSHAPED }, ['alice', 'carol']);
  const { c: alice } = await connected(t, server, 'alice');
  const { c: carol, jid: carolJid } = await connected(t, server, 'carol');
  socketOf(carol).pause();
  // A paused client would wait ws's 30 s for a close handshake it can never read.
  t.teardown(() => carol.ws.terminate());

  const n = 400;
  const body = 'm'.repeat(50_000);
  for (let i = 0; i < n; i++) alice.send(`<message xmlns='jabber:client' to='${carolJid}' id='m${i}' type='chat'><body>${i} ${body}</body></message>`);
  await eventually(async () => (await flowCount(server, 'slow-consumer')) === 1, { timeout: 20_000, interval: 20, message: 'carol to be dropped as a slow consumer' });
  await eventually(() => server.app.sessions.all.size === 1, { timeout: 10_000, interval: 20, message: "carol's session to end" });
  // Every message after the drop goes offline too: wait for the last one.
  const ids = async () => (await server.storage.offline.list('localhost', 'carol')).map((m) => /id="(m\d+)"|id='(m\d+)'/.exec(m.stanza)?.slice(1).find(Boolean));
  await eventually(async () => (await ids()).includes(`m${n - 1}`), { timeout: 20_000, interval: 20, message: 'the last message to be stored offline' });
  const stored = (await ids()).map((id) => Number(id!.slice(1)));
  t.ok(stored.length > 1, `${stored.length} messages the socket never took were stored offline`);
  t.same(stored, [...stored].sort((a, b) => a - b), 'in the order they were sent');
  t.same(stored, Array.from({ length: stored.length }, (_, i) => stored[0]! + i), 'with no gap: nothing held was lost');
});

t.test('input faster than MAX_INBOUND_BYTES_PER_SECOND is slowed, and every stanza is processed, in order', async (t) => {
  const server = await flowServer(t, { MAX_INBOUND_BYTES_PER_SECOND: '8192', MAX_INBOUND_BURST_BYTES: '8192' }, ['dave']);
  const { c: dave } = await connected(t, server, 'dave');
  const n = 24;
  const pad = 'p'.repeat(1000);
  const started = Date.now();
  for (let i = 0; i < n; i++) dave.send(`<iq xmlns='jabber:client' type='get' id='p${i}-${pad}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const ids: string[] = [];
  while (ids.length < n) {
    const el = await dave.next(15_000);
    if (el.local === 'iq' && el.attr('type') === 'result') ids.push(el.attr('id')!.split('-')[0]!);
  }
  const seconds = (Date.now() - started) / 1000;
  t.same(ids, Array.from({ length: n }, (_, i) => `p${i}`), 'all answered, in order');
  t.ok(await flowCount(server, 'paused-rate') >= 1, 'the input waited for the rate');
  // About 24 KiB against an 8 KiB burst at 8 KiB/s: at least ~2 s (a lower bound, never flaky).
  t.ok(seconds >= 1.5, `the client was slowed (${seconds.toFixed(2)} s)`);
});

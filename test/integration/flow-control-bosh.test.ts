/**
 * Issue 10 over BOSH on a real port: one body full of vCard requests is
 * answered across many responses, each within BOSH_MAX_RESPONSE_BYTES plus
 * one stanza, with the session's queue bounded and every answer in order;
 * and a body sent faster than the inbound rate is slowed, nothing dropped.
 */
import { ITEMS_PER_TURN } from '../../src/transports/input-pump.js';
import t from 'tap';
import type { Test } from 'tap';
import type { TestServer } from '../helpers/server.js';
import { UNSHAPED, flowCount as count, flowServer, drainCounter } from '../helpers/flow.js';
import { RawBoshClient, payloads } from '../helpers/bosh-client.js';
import { NS, serialize, x, type XmlElement } from '../../src/xml/index.js';
import { waitUntil } from '../helpers/eventually.js';

const MAX_RESPONSE = 65536;
const MAX_QUEUED = 131072;
const VCARD_TEXT = 20_000;

const flowCount = (server: TestServer, event: string): Promise<number> => count(server, 'bosh', event);

/** A logged-in raw client, destroyed at the end of `t`. */
async function connected(t: Test, server: TestServer, user: string): Promise<RawBoshClient> {
  const c = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => c.destroy());
  await c.login(user, user[0]!, 'r');
  return c;
}

const iqGet = (id: string, to: string | undefined, payload: XmlElement): XmlElement =>
  x('iq', { xmlns: NS.CLIENT, type: 'get', id, to }, payload);

/** Posts `body` and then empty requests until `n` IQ answers arrived; returns them and each response's payload bytes. */
async function collect(
  c: RawBoshClient, children: XmlElement[], n: number, beforePolling: () => Promise<void> = async () => {},
): Promise<{ answers: XmlElement[]; sizes: number[] }> {
  const answers: XmlElement[] = [];
  const sizes: number[] = [];
  let res = await c.send({}, ...children);
  await beforePolling();
  for (let polls = 0; ; polls++) {
    if (res.body?.attr('type') === 'terminate') throw new Error(`terminated: ${res.text.slice(0, 200)}`);
    const got = payloads(res.body);
    sizes.push(got.reduce((sum, el) => sum + Buffer.byteLength(serialize(el)), 0));
    answers.push(...got.filter((el) => el.local === 'iq'));
    if (answers.length >= n || polls > 10 * n) break;
    res = await c.send();
  }
  return { answers, sizes };
}

t.test('one BOSH body with 300 vCard requests is answered in order across responses of at most BOSH_MAX_RESPONSE_BYTES plus one stanza', async (t) => {
  const drains = drainCounter((session) => session.username === 'bob');
  const server = await flowServer(t, {
    MAX_VCARD_SIZE: '70000', BOSH_MAX_RESPONSE_BYTES: String(MAX_RESPONSE), BOSH_MAX_QUEUED_BYTES: String(MAX_QUEUED), ...UNSHAPED,
  }, ['alice', 'bob'], [drains.feature]);
  const alice = await connected(t, server, 'alice');
  const set = await alice.send({}, x('iq', { xmlns: NS.CLIENT, type: 'set', id: 'vset' }, x('vCard', { xmlns: NS.VCARD }, x('DESC', {}, 'v'.repeat(VCARD_TEXT)))));
  t.equal(payloads(set.body)[0]?.attr('type'), 'result', 'the vCard is stored');

  const bob = await connected(t, server, 'bob');
  const n = 300;
  const requests = Array.from({ length: n }, (_, i) => iqGet(`v${i}`, 'alice@localhost', x('vCard', { xmlns: NS.VCARD })));
  // Bob fetches nothing more until the server has stopped processing his input for want of room.
  const { answers, sizes } = await collect(bob, requests, n, async () => {
    await waitUntil(async () => (await flowCount(server, 'paused-output')) > 0, { timeout: 5000 });
  });

  t.same(answers.map((a) => a.attr('id')), requests.map((r) => r.attr('id')), 'every request answered once, in order');
  t.equal(answers.filter((a) => a.attr('type') === 'result' && a.getChild('vCard', NS.VCARD)).length, n, 'each with the vCard');
  const oneStanza = VCARD_TEXT + 1024;
  t.ok(sizes.length > 10, `the answers came in ${sizes.length} responses`);
  t.ok(Math.max(...sizes) <= MAX_RESPONSE + oneStanza, `no response carried more than the cap plus one stanza (largest ${Math.max(...sizes)})`);
  t.ok(await flowCount(server, 'paused-output') >= 1, 'the input waited for the client to fetch');
  const peak = server.app.bosh.peakQueuedBytes();
  t.ok(drains.count() >= 1, `the session heard that its queue drained ('session-drained' ${drains.count()} times)`);
  t.ok(peak > MAX_QUEUED, 'the queue did reach its mark (the test exercised it)');
  // The replies to one turn's input (ITEMS_PER_TURN gets) are built before the pump sees the backlog.
  t.ok(peak <= MAX_QUEUED + ITEMS_PER_TURN * oneStanza, `the session's queue stayed within its bound plus one turn's replies (peak ${peak})`);
});

t.test('a client that never fetches is ended by inactivity; a message still waiting behind its paced requests is stored, not lost', async (t) => {
  const server = await flowServer(t, {
    MAX_VCARD_SIZE: '70000', BOSH_MAX_RESPONSE_BYTES: String(MAX_RESPONSE), BOSH_MAX_QUEUED_BYTES: String(MAX_QUEUED), BOSH_INACTIVITY: '1', ...UNSHAPED,
  }, ['alice', 'bob', 'erin']);
  const alice = await connected(t, server, 'alice');
  await alice.send({}, x('iq', { xmlns: NS.CLIENT, type: 'set', id: 'vset' }, x('vCard', { xmlns: NS.VCARD }, x('DESC', {}, 'v'.repeat(VCARD_TEXT)))));
  const bob = await connected(t, server, 'bob');
  const requests = Array.from({ length: 300 }, (_, i) => iqGet(`v${i}`, 'alice@localhost', x('vCard', { xmlns: NS.VCARD })));
  const last = x('message', { xmlns: NS.CLIENT, to: 'erin@localhost', type: 'chat', id: 'last' }, x('body', {}, 'after the vCards'));
  const first = await bob.send({}, ...requests, last);
  t.ok(payloads(first.body).length < 300, 'the first response carries only part of the answers');
  // Bob fetches nothing more: the session ends after BOSH_INACTIVITY.
  await waitUntil(async () => (await server.storage.offline.count('localhost', 'erin')) > 0, { timeout: 5000 });
  const stored = await server.storage.offline.list('localhost', 'erin');
  t.equal(stored.length, 1, "the message behind the requests reached erin's offline storage");
  t.match(stored[0]?.stanza ?? '', 'after the vCards');
  t.equal(server.app.sessions.get('localhost', 'bob', 'r'), undefined, "bob's session is gone");
  t.ok(server.app.bosh.peakQueuedBytes() <= MAX_QUEUED + ITEMS_PER_TURN * (VCARD_TEXT + 1024), 'the gets left when it ended were not answered into memory');
});

t.test('a BOSH body sent faster than MAX_INBOUND_BYTES_PER_SECOND is slowed, and every stanza is processed, in order', async (t) => {
  const server = await flowServer(t, { MAX_INBOUND_BYTES_PER_SECOND: '8192', MAX_INBOUND_BURST_BYTES: '8192' }, ['dave']);
  const dave = await connected(t, server, 'dave');
  const n = 24;
  const pad = 'p'.repeat(1000);
  const pings = Array.from({ length: n }, (_, i) => iqGet(`p${i}-${pad}`, undefined, x('ping', { xmlns: 'urn:xmpp:ping' })));
  const started = Date.now();
  const { answers } = await collect(dave, pings, n);
  const seconds = (Date.now() - started) / 1000;
  t.same(answers.map((a) => a.attr('id')!.split('-')[0]), pings.map((p) => p.attr('id')!.split('-')[0]), 'all answered, in order');
  t.ok(answers.every((a) => a.attr('type') === 'result'), 'each one a result');
  t.ok(await flowCount(server, 'paused-rate') >= 1, 'the input waited for the rate');
  // About 24 KiB against an 8 KiB burst at 8 KiB/s: at least ~2 s (a lower bound, never flaky).
  t.ok(seconds >= 1.5, `the client was slowed (${seconds.toFixed(2)} s)`);
});

t.test('a BOSH client that posts bodies faster than its input is processed gets policy-violation once it has two bodies waiting', async (t) => {
  const server = await flowServer(t, { MAX_STANZA_SIZE: '16384', MAX_INBOUND_BYTES_PER_SECOND: '1024', MAX_INBOUND_BURST_BYTES: '1024' }, ['dave']);
  const dave = await connected(t, server, 'dave');
  const pings = (tag: string) => Array.from({ length: 190 }, (_, i) => iqGet(`${tag}${i}`, undefined, x('ping', { xmlns: 'urn:xmpp:ping' })));
  // Each body is about 15 KiB against the 32 KiB bound (2 x MAX_STANZA_SIZE): after the first body's
  // 1 KiB burst, the three are over it for about twelve seconds at 1 KiB/s, however slow the machine.
  const first = await dave.send({}, ...pings('a'));
  t.not(first.body?.attr('type'), 'terminate', 'the first body is taken');
  const second = dave.send({}, ...pings('b'));
  const third = await dave.send({}, ...pings('c'));
  t.equal(third.body?.attr('type'), 'terminate', third.text.slice(0, 200));
  t.equal(third.body?.attr('condition'), 'policy-violation', 'more unprocessed input than two bodies is overactivity (XEP-0124 §11)');
  // The second request is held while the first body's pings are answered at the paced rate: it gets
  // their answers if one came before the third body arrived, and the terminate if it was still held.
  const held = await second;
  const answered = held.body?.attr('type') === undefined && payloads(held.body).length > 0
    && payloads(held.body).every((el) => el.is('iq') && el.attr('type') === 'result' && el.attr('id')!.startsWith('a'));
  t.ok(held.body?.attr('type') === 'terminate' || answered, `the second request is answered: the terminate, or the first body's answers (${held.text.slice(0, 200)})`);
  const after = await dave.send();
  t.equal(after.body?.attr('type'), 'terminate', 'the session is over');
  t.equal(server.app.sessions.get('localhost', 'dave', 'r'), undefined, "dave's session is gone");
});

/**
 * The SM journal's writes of one event-loop turn go to Redis as one script
 * (src/cluster/sm-batch.ts), on a real redis-server: the stanzas land in
 * their queues in order, the inbound counter keeps its last value, an ack
 * trims its queue, each write stays fenced on its own epoch, a turn with
 * more writes than BATCH_MAX_WRITES is split, a session's epoch is read
 * once per script and its pushes go as one RPUSH, and a hibernating
 * session's queue gets its record's TTL.
 */
import t, { type Test } from 'tap';
import { connectRedis, keyPrefix, type Redis } from '../../src/cluster/redis.js';
import type { ClusterNode } from '../../src/cluster/node.js';
import { createRedisSmRegistry, HIBERNATION_MARK_DELAY_MS } from '../../src/cluster/sm-registry.js';
import { BATCH_MAX_WRITES } from '../../src/cluster/sm-batch.js';
import { smKeys } from '../../src/cluster/sm-scripts.js';
import type { SmStateStore } from '../../src/storage/ports/sm-state.js';
import type { Session } from '../../src/xmpp/session.js';
import type { SmJournal } from '../../src/xmpp/features/stream-management/registry.js';
import { parseXml, DEFAULT_LIMITS, NS } from '../../src/xml/index.js';
import { startRedis } from '../helpers/redis.js';
import { eventually } from '../helpers/eventually.js';
import { pushed } from '../helpers/sm-journal.js';

const server = await startRedis();
t.teardown(() => server.stop());
const log = { info: () => undefined, warn: () => undefined, debug: () => undefined };

/** A journal of node `n1` on a database of its own, and a plain client to look at what it wrote. */
async function journalOn(t: Test) {
  const url = server.url();
  const redis = await connectRedis(url, log, 'sm-batch');
  const look = await connectRedis(url, log, 'look');
  t.teardown(() => { redis.destroy(); look.destroy(); });
  const prefix = keyPrefix(url);
  const node = { id: 'n1', prefix, redis, alive: async () => true } as unknown as ClusterNode;
  const registry = createRedisSmRegistry({ node, stale: {} as SmStateStore, log, marginSeconds: 60, release: () => undefined, replaced: async () => undefined });
  const journal = registry.journal;
  const session = (resource: string) => ({ host: 'localhost', username: 'alice', resource, anonymous: false, presence: undefined, priority: 0, interested: false, carbons: false }) as unknown as Session;
  for (const smid of ['s1', 's2']) journal.open(smid, session(smid), 300);
  await look.ping();
  await redis.ping();
  return { journal, registry, session, look, keys: smKeys(prefix) };
}

const item = (id: string) => ({ at: 1, stanza: parseXml(`<message xmlns='jabber:client' id='${id}'><body>${id}</body></message>`, DEFAULT_LIMITS, NS.CLIENT) });
const ids = (raws: string[]) => raws.map((r) => /id=["']([^"']+)["']/.exec(r)?.[1]);

/** Commands Redis ran since the last call, by name (INFO commandstats; a script's own calls included). */
async function commands(look: Redis): Promise<Record<string, number>> {
  const info = await look.info('commandstats');
  await look.configResetStat();
  return Object.fromEntries([...info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));
}

/** Scripts Redis ran since the last call (eval and evalsha). */
async function scripts(look: Redis): Promise<number> {
  const calls = await commands(look);
  return (calls.eval ?? 0) + (calls.evalsha ?? 0);
}

/** One turn of a busy node: 20 stanzas for each of s1 and s2, s1's inbound counter after each, s2's ack of 3; the pushes' answers. */
function busyTurn(journal: SmJournal): Promise<string[]> {
  const pushes: Promise<string>[] = [];
  for (let i = 1; i <= 20; i++) {
    pushes.push(pushed(journal, 's1', item(`a${i}`)), pushed(journal, 's2', item(`b${i}`)));
    journal.received('s1', i);
  }
  journal.ack('s2', 3, 3);
  return Promise.all(pushes);
}

t.test('the writes of one turn are one script: queues in order, the last inbound counter, the ack applied', async (t) => {
  const { journal, look, keys } = await journalOn(t);
  await scripts(look);
  const results = await busyTurn(journal);
  t.same(results, results.map(() => 'stored'), 'every stanza stored');
  t.equal(await scripts(look), 1, '41 pushes, 20 counters and an ack: one script');
  t.same(ids(await look.lRange(keys.queue('s1'), 0, -1)), Array.from({ length: 20 }, (_, i) => `a${i + 1}`), "s1's queue in order");
  t.same(ids(await look.lRange(keys.queue('s2'), 0, -1)), Array.from({ length: 17 }, (_, i) => `b${i + 4}`), "s2's queue in order, the three acknowledged gone");
  t.equal(await look.hGet(keys.record('s1'), 'counter_in'), '20', 'the last inbound counter');
  t.equal(await look.hGet(keys.record('s2'), 'counter_out'), '3');
});

t.test('each write of a batch is fenced on its own epoch', async (t) => {
  const { journal, look, keys } = await journalOn(t);
  // Another node took s1 over (epoch 2): this node's writes to it are refused, s2's go on.
  await look.hSet(keys.record('s1'), 'epoch', '2');
  const [s1, s2] = await Promise.all([pushed(journal, 's1', item('x1')), pushed(journal, 's2', item('y1'))]);
  t.equal(s1, 'fenced', 'the push to the session taken over is refused');
  t.equal(s2, 'stored', 'the push in the same script to a session still held is stored');
  t.same(await look.lRange(keys.queue('s1'), 0, -1), [], 'nothing written to the taken-over queue');
  t.same(ids(await look.lRange(keys.queue('s2'), 0, -1)), ['y1']);
});

t.test(`a turn with more than ${BATCH_MAX_WRITES} writes is split into scripts of at most that many`, async (t) => {
  const { journal, look, keys } = await journalOn(t);
  await scripts(look);
  const n = 2 * BATCH_MAX_WRITES + 10;
  const pushes = Array.from({ length: n }, (_, i) => pushed(journal, 's1', item(`m${i}`)));
  t.ok((await Promise.all(pushes)).every((r) => r === 'stored'), 'every stanza stored');
  t.equal(await scripts(look), 3, 'three scripts');
  t.equal(await look.lLen(keys.queue('s1')), n);
});

t.test("a session's epoch is read once per script, its pushes go as one RPUSH, and a connected session's queue needs no TTL", async (t) => {
  const { journal, look } = await journalOn(t);
  await commands(look);
  await busyTurn(journal);
  const calls = await commands(look);
  // Before: an HGET of the epoch per write (42) and a PTTL per stanza (40); 4 commands per message in the bench.
  t.equal(calls.hget, 2, 'one epoch read per session');
  t.equal(calls.rpush, 2, "each session's stanzas in one RPUSH");
  t.equal(calls.pttl ?? 0, 0, 'no PTTL: neither record has a TTL');
  t.equal(calls.ltrim, 1, 'the ack');
  t.equal(calls.hset, 2, 'the inbound counter (once) and the ack h');
});

t.test("pushes keep their order around an ack of the same turn", async (t) => {
  const { journal, look, keys } = await journalOn(t);
  const first = [1, 2, 3].map((i) => pushed(journal, 's1', item(`a${i}`)));
  await Promise.all(first);
  // One turn: a push, the client's ack of the three stored before it, another push.
  const turn = [pushed(journal, 's1', item('a4'))];
  journal.ack('s1', 3, 3);
  turn.push(pushed(journal, 's1', item('a5')));
  t.same(await Promise.all(turn), ['stored', 'stored']);
  t.same(ids(await look.lRange(keys.queue('s1'), 0, -1)), ['a4', 'a5'], 'the three acknowledged gone, the rest in order');
});

t.test("a hibernating session's queue expires with its record; once resumed, neither expires", async (t) => {
  const { journal, registry, session, look, keys } = await journalOn(t);
  registry.register('s1', session('s1'));
  journal.hibernated('s1', session('s1'), Date.now());
  // The record is marked (hibernated_at, a TTL) HIBERNATION_MARK_DELAY_MS after the cut: until then neither expires.
  t.equal(await pushed(journal, 's1', item('h0')), 'stored');
  t.equal(await look.pTTL(keys.queue('s1')), -1, 'before the mark the queue does not expire, as its record');
  await eventually(async () => (await look.pTTL(keys.record('s1'))) > 0, { timeout: HIBERNATION_MARK_DELAY_MS + 3000, message: "the record marked hibernating" });
  t.equal(await pushed(journal, 's1', item('h1')), 'stored');
  const ttl = await look.pTTL(keys.queue('s1'));
  t.ok(ttl > 300_000 && ttl <= 360_000, `the queue created while hibernating expires with the record (${ttl} ms)`);
  journal.resumed('s1');
  t.equal(await pushed(journal, 's1', item('h2')), 'stored');
  t.equal(await look.pTTL(keys.queue('s1')), -1, 'the queue no longer expires');
  t.equal(await look.pTTL(keys.record('s1')), -1, 'nor the record');
  t.same(ids(await look.lRange(keys.queue('s1'), 0, -1)), ['h0', 'h1', 'h2']);
});

t.test('a push for a session no longer held here is answered after the pushes before it, as kept in memory', async (t) => {
  const { journal, look, keys } = await journalOn(t);
  const order: string[] = [];
  const a = pushed(journal, 's1', item('a1')).then((r) => { order.push(`a1 ${r}`); });
  const b = pushed(journal, 'unknown', item('u1')).then((r) => { order.push(`u1 ${r}`); });
  await Promise.all([a, b]);
  t.same(order, ['a1 stored', 'u1 memory']);
  t.equal(await look.exists([keys.record('unknown'), keys.queue('unknown')]), 0, 'nothing written for it');
});

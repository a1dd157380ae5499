/**
 * The SM journal's writes of one event-loop turn go to Redis as one script
 * (src/cluster/sm-batch.ts), on a real redis-server: the stanzas land in
 * their queues in order, the inbound counter keeps its last value, an ack
 * trims its queue, each write stays fenced on its own epoch, and a turn
 * with more writes than BATCH_MAX_WRITES is split.
 */
import t, { type Test } from 'tap';
import { connectRedis, keyPrefix, type Redis } from '../../src/cluster/redis.js';
import type { ClusterNode } from '../../src/cluster/node.js';
import { createRedisSmRegistry } from '../../src/cluster/sm-registry.js';
import { BATCH_MAX_WRITES } from '../../src/cluster/sm-batch.js';
import { smKeys } from '../../src/cluster/sm-scripts.js';
import type { SmStateStore } from '../../src/storage/ports/sm-state.js';
import type { Session } from '../../src/xmpp/session.js';
import { parseXml, DEFAULT_LIMITS, NS } from '../../src/xml/index.js';
import { startRedis } from '../helpers/redis.js';

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
  const registry = createRedisSmRegistry({ node, stale: {} as SmStateStore, log, marginSeconds: 60, release: () => undefined });
  const journal = registry.journal;
  const session = (resource: string) => ({ host: 'localhost', username: 'alice', resource, anonymous: false, presence: undefined, priority: 0, interested: false, carbons: false }) as unknown as Session;
  for (const smid of ['s1', 's2']) journal.open(smid, session(smid), 300);
  await look.ping();
  await redis.ping();
  return { journal, look, keys: smKeys(prefix) };
}

const item = (id: string) => ({ at: 1, stanza: parseXml(`<message xmlns='jabber:client' id='${id}'><body>${id}</body></message>`, DEFAULT_LIMITS, NS.CLIENT) });
const ids = (raws: string[]) => raws.map((r) => /id=["']([^"']+)["']/.exec(r)?.[1]);

/** Scripts Redis ran since the last call (INFO commandstats: eval and evalsha). */
async function scripts(look: Redis): Promise<number> {
  const info = await look.info('commandstats');
  const calls = [...info.matchAll(/^cmdstat_(eval|evalsha):calls=(\d+)/gm)].reduce((s, m) => s + Number(m[2]), 0);
  await look.configResetStat();
  return calls;
}

t.test('the writes of one turn are one script: queues in order, the last inbound counter, the ack applied', async (t) => {
  const { journal, look, keys } = await journalOn(t);
  await scripts(look);
  const pushes: Promise<boolean>[] = [];
  for (let i = 1; i <= 20; i++) {
    pushes.push(journal.push('s1', item(`a${i}`)), journal.push('s2', item(`b${i}`)));
    journal.received('s1', i);
  }
  journal.ack('s2', 3, 3);
  t.same(await Promise.all(pushes), pushes.map(() => true), 'every stanza stored');
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
  const [s1, s2] = await Promise.all([journal.push('s1', item('x1')), journal.push('s2', item('y1'))]);
  t.equal(s1, false, 'the push to the session taken over is refused');
  t.equal(s2, true, 'the push in the same script to a session still held is stored');
  t.same(await look.lRange(keys.queue('s1'), 0, -1), [], 'nothing written to the taken-over queue');
  t.same(ids(await look.lRange(keys.queue('s2'), 0, -1)), ['y1']);
});

t.test(`a turn with more than ${BATCH_MAX_WRITES} writes is split into scripts of at most that many`, async (t) => {
  const { journal, look, keys } = await journalOn(t);
  await scripts(look);
  const n = 2 * BATCH_MAX_WRITES + 10;
  const pushes = Array.from({ length: n }, (_, i) => journal.push('s1', item(`m${i}`)));
  t.ok((await Promise.all(pushes)).every(Boolean), 'every stanza stored');
  t.equal(await scripts(look), 3, 'three scripts');
  t.equal(await look.lLen(keys.queue('s1')), n);
});

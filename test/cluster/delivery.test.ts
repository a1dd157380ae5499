/**
 * Cross-node delivery over Redis Streams (src/cluster/delivery.ts) on a
 * real redis-server: order, acknowledgement only after the handler, bounded
 * retries, the backlog cap, and a dead node's inbox drained by a survivor.
 * The kill -9 of a consumer mid-way is in delivery-crash.test.ts.
 */
import t, { type Test } from 'tap';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { connectRedis, keyPrefix, type Redis } from '../../src/cluster/redis.js';
import { joinCluster, type ClusterNode } from '../../src/cluster/node.js';
import { createRedisDelivery, DeliveryRefused, type Delivery, type DeliveryOptions, type InboxEntry } from '../../src/cluster/delivery.js';
import { eventually } from '../helpers/eventually.js';

let redis: TestRedis;
t.before(async () => { redis = await startRedis(); });
t.teardown(async () => { await redis.stop(); });

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
const CAPS = { log: quiet, maxEntries: 1000, maxBytes: 1 << 20, maxAttempts: 3, blockMs: 200 };

async function client(t: Test, url: string): Promise<Redis> {
  const c = await connectRedis(url, quiet, 'test');
  t.teardown(() => { if (c.isOpen) c.destroy(); });
  return c;
}

async function member(t: Test, url: string, id: string, ttlMs = 2000): Promise<ClusterNode> {
  const n = await joinCluster(await client(t, url), { id, prefix: keyPrefix(url), ttlMs, log: quiet });
  t.teardown(() => n.stop().catch(() => undefined));
  return n;
}

function delivery(t: Test, n: ClusterNode, opts: Partial<DeliveryOptions> = {}): Delivery {
  const d = createRedisDelivery(n, { ...CAPS, ...opts });
  t.teardown(() => d.stop());
  return d;
}

/** 'added', or the reason a DeliveryRefused gives. */
const outcome = (sent: Promise<void>): Promise<string> =>
  sent.then(() => 'added', (err: unknown) => (err instanceof DeliveryRefused ? err.reason : `unexpected: ${String(err)}`));

const stanza = (to: string, body = 'hi'): InboxEntry => ({ kind: 'stanza', to, xml: `<message to='${to}'><body>${body}</body></message>` });

t.test('entries arrive in the order they were sent, each once, and leave the stream when handled', async (t) => {
  const url = redis.url();
  const a = delivery(t, await member(t, url, 'a'));
  const bNode = await member(t, url, 'b');
  const b = delivery(t, bNode, { batch: 7 });
  const got: string[] = [];
  b.onEntry(async (entry, from) => { got.push(`${from}>${entry.to}`); });
  await b.start();
  const sent: string[] = [];
  for (let i = 0; i < 100; i++) {
    await a.send('b', stanza(`u${i}@x/r`));
    sent.push(`a>u${i}@x/r`);
  }
  await eventually(() => got.length >= 100, { message: '100 entries handled' });
  t.same(got, sent, 'in order, once each');
  const c = await client(t, url);
  await eventually(async () => (await c.xLen(`${keyPrefix(url)}inbox:b`)) === 0, { message: 'stream emptied (XDEL after XACK)' });
  t.equal(await c.get(`${keyPrefix(url)}inbox-bytes:b`), '0', 'the byte count is back to 0');
  t.equal(a.stats().sent, 100);
  t.equal(b.stats().handled, 100);
});

t.test('the acknowledgements of one read go out together, each after its handler, and all are answered', async (t) => {
  const url = redis.url();
  const a = delivery(t, await member(t, url, 'a'));
  const bNode = await member(t, url, 'b');
  // b's commands, watched: how many ACK scripts are waiting for Redis at once.
  let waiting = 0;
  let most = 0;
  const order: string[] = [];
  const watched = new Proxy(bNode.redis, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      if (prop !== 'eval') return value.bind(target);
      return (script: string, options: unknown) => {
        const call = (value as (s: string, o: unknown) => Promise<unknown>).call(target, script, options);
        if (!script.includes('XACK')) return call;
        order.push('ack');
        most = Math.max(most, ++waiting);
        return call.finally(() => { waiting--; });
      };
    },
  });
  const b = delivery(t, { ...bNode, redis: watched } as ClusterNode, { batch: 20 });
  b.onEntry(async (entry) => { order.push(entry.to); });
  // In b's inbox before it reads: one read gets all 20.
  for (let i = 0; i < 20; i++) await a.send('b', stanza(`u${i}@x/r`));
  await b.start();
  await eventually(() => b.stats().handled === 20 && waiting === 0, { message: '20 entries handled and acknowledged' });
  t.equal(most, 20, 'the 20 ACKs were sent without waiting for one another');
  // The i-th ACK goes out after the i-th handler ran (a turn later: after the SM journal's batch, delivery.ts).
  const handled = order.filter((o) => o !== 'ack');
  t.same(handled, Array.from({ length: 20 }, (_, i) => `u${i}@x/r`), 'handled in order');
  const acks = order.flatMap((o, i) => (o === 'ack' ? [i] : []));
  t.equal(acks.length, 20);
  t.ok(acks.every((at, i) => at > order.indexOf(`u${i}@x/r`)), 'each ACK after its own handler');
  const c = await client(t, url);
  t.equal(await c.xLen(`${keyPrefix(url)}inbox:b`), 0, 'all of them applied: the stream is empty');
});

t.test('a close entry comes through with its fields', async (t) => {
  const url = redis.url();
  const a = delivery(t, await member(t, url, 'a'));
  const b = delivery(t, await member(t, url, 'b'));
  const got: InboxEntry[] = [];
  b.onEntry(async (entry) => { got.push(entry); });
  await b.start();
  const close: InboxEntry = { kind: 'close', to: 'u@x/r', sid: 's1', condition: 'conflict', text: 'replaced' };
  await a.send('b', close);
  await eventually(() => got.length === 1, { message: 'the close entry' });
  t.same(got[0], close);
});

t.test('an entry stays pending while its handler runs, and is acknowledged when it resolves', async (t) => {
  const url = redis.url();
  const a = delivery(t, await member(t, url, 'a'));
  const b = delivery(t, await member(t, url, 'b'));
  let release!: () => void;
  const held = new Promise<void>((r) => { release = r; });
  let started = false;
  b.onEntry(async () => { started = true; await held; });
  await b.start();
  await a.send('b', stanza('u@x/r'));
  await eventually(() => started, { message: 'the handler started' });
  const c = await client(t, url);
  const stream = `${keyPrefix(url)}inbox:b`;
  t.equal((await c.xPending(stream, 'g')).pending, 1, 'pending while the handler has not finished');
  release();
  await eventually(async () => (await c.xPending(stream, 'g')).pending === 0, { message: 'acknowledged' });
  t.equal(await c.xLen(stream), 0);
});

t.test('a failing handler is retried in order, then the entry goes to the undeliverable fallback', async (t) => {
  const url = redis.url();
  const a = delivery(t, await member(t, url, 'a'));
  const b = delivery(t, await member(t, url, 'b'), { maxAttempts: 3 });
  const calls: string[] = [];
  const fallen: string[] = [];
  b.onEntry(async (entry) => {
    calls.push(entry.to);
    if (entry.to === 'bad@x/r') throw new Error('the session is busy');
  });
  b.onUndeliverable(async (entry) => { fallen.push(entry.to); });
  await a.send('b', stanza('one@x/r'));
  await a.send('b', stanza('bad@x/r'));
  await a.send('b', stanza('two@x/r'));
  await b.start();
  await eventually(() => calls.includes('two@x/r'), { message: 'the entry after the bad one' });
  t.same(calls, ['one@x/r', 'bad@x/r', 'bad@x/r', 'bad@x/r', 'two@x/r'], 'three attempts, and nothing overtakes the failing entry');
  t.same(fallen, ['bad@x/r'], 'then routed by the fallback, once');
  t.equal(b.stats().retried, 3);
  t.equal(b.stats().undeliverable, 1);
});

t.test('the backlog cap refuses new entries (entries and bytes) and counts them; space frees as entries are handled', async (t) => {
  const url = redis.url();
  const a = delivery(t, await member(t, url, 'a'), { maxEntries: 3 });
  await member(t, url, 'b');
  for (let i = 0; i < 3; i++) await a.send('b', stanza(`u${i}@x/r`));
  t.equal(await outcome(a.send('b', stanza('u3@x/r'))), 'inbox-full', 'refused');
  t.equal(a.stats().refused['inbox-full'], 1, 'counted');
  const c = await client(t, url);
  t.equal(await c.xLen(`${keyPrefix(url)}inbox:b`), 3, 'nothing trimmed, nothing added');

  const big = delivery(t, await member(t, url, 'big'), { maxBytes: 65536 });
  const cNode = await member(t, url, 'c');
  await big.send('c', stanza('v@x/r', 'x'.repeat(40000)));
  t.equal(await outcome(big.send('c', stanza('w@x/r', 'x'.repeat(40000)))), 'inbox-full', 'the byte cap');

  // c reads its inbox: the space is free again.
  const cDelivery = delivery(t, cNode);
  cDelivery.onEntry(async () => undefined);
  await cDelivery.start();
  await eventually(async () => (await c.xLen(`${keyPrefix(url)}inbox:c`)) === 0, { message: 'c read its inbox' });
  t.equal(await outcome(big.send('c', stanza('w@x/r', 'x'.repeat(40000)))), 'added', 'accepted once the inbox had room');
});

t.test('an entry for a node whose lease is gone is refused, not added where nobody reads it', async (t) => {
  const url = redis.url();
  const a = delivery(t, await member(t, url, 'a'));
  t.equal(await outcome(a.send('nobody', stanza('u@x/r'))), 'node-down');
  const c = await client(t, url);
  t.equal(await c.exists(`${keyPrefix(url)}inbox:nobody`), 0);
  t.equal(a.stats().refused['node-down'], 1);
});

t.test("a dead node's inbox is drained by the survivor told, in order, then deleted", async (t) => {
  const url = redis.url();
  const aNode = await member(t, url, 'a', 400);
  const a = delivery(t, aNode);
  const got: string[] = [];
  a.onEntry(async (entry, from) => { got.push(`${from}>${entry.to}`); });
  const drained: number[] = [];
  aNode.onNodeDown(async (dead) => { drained.push(await a.drain(dead)); });
  const bRedis = await client(t, url);
  const bNode = await joinCluster(bRedis, { id: 'b', prefix: keyPrefix(url), ttlMs: 400, log: quiet });
  const b = createRedisDelivery(bNode, CAPS);
  b.onEntry(async () => { throw new Error('b never gets to handle anything'); });
  await b.start();
  await b.stop();
  for (let i = 0; i < 5; i++) await a.send('b', stanza(`u${i}@x/r`));
  // b dies: its connection goes, its lease is not renewed any more.
  bRedis.destroy();
  await eventually(() => drained.length === 1, { timeout: 5000, message: "a drains b's inbox" });
  t.same(got, [0, 1, 2, 3, 4].map((i) => `a>u${i}@x/r`), 'every entry, in order');
  t.same(drained, [5]);
  const c = await client(t, url);
  t.equal(await c.exists(`${keyPrefix(url)}inbox:b`), 0, 'the stream is deleted');
  t.equal(await c.exists(`${keyPrefix(url)}inbox-bytes:b`), 0, 'and its byte count');
});

t.test('a node that leaves cleanly handles what is left in its own inbox, then refuses new entries', async (t) => {
  const url = redis.url();
  const a = delivery(t, await member(t, url, 'a'));
  const bNode = await member(t, url, 'b');
  const b = delivery(t, bNode);
  const got: string[] = [];
  b.onEntry(async (entry) => { got.push(entry.to); });
  await b.start();
  // What Cluster.leave does: stop reading; entries still arrive while the lease is current.
  await b.stop();
  await a.send('b', stanza('late1@x/r'));
  await a.send('b', stanza('late2@x/r'));
  t.same(got, [], 'not read after stop');
  await bNode.stop();
  t.equal(await outcome(a.send('b', stanza('later@x/r'))), 'node-down', 'refused once the lease is released');
  t.equal(await b.drain('b'), 2);
  t.same(got, ['late1@x/r', 'late2@x/r'], 'the leftovers went through the handler, in order');
  const c = await client(t, url);
  t.equal(await c.exists(`${keyPrefix(url)}inbox:b`), 0, 'and the inbox is gone');
});

t.test('an entry whose handler hands its work on is acknowledged when that is done; the next ones go on meanwhile', async (t) => {
  const url = redis.url();
  const a = delivery(t, await member(t, url, 'a'));
  const b = delivery(t, await member(t, url, 'b'));
  let release!: () => void;
  const work = new Promise<void>((resolve) => { release = resolve; });
  const got: string[] = [];
  b.onEntry(async (entry) => {
    got.push(entry.to);
    return entry.to === 'slow@x/r' ? { settled: work } : undefined;
  });
  await b.start();
  await a.send('b', stanza('slow@x/r'));
  await a.send('b', stanza('next@x/r'));
  await eventually(() => got.length === 2, { message: 'both handled: the second did not wait for the first one\'s work' });
  const c = await client(t, url);
  await eventually(async () => (await c.xLen(`${keyPrefix(url)}inbox:b`)) === 1, { message: 'the second acknowledged' });
  t.equal(await c.xLen(`${keyPrefix(url)}inbox:b`), 1, 'the first is still in the inbox while its work goes on');
  release();
  await eventually(async () => (await c.xLen(`${keyPrefix(url)}inbox:b`)) === 0, { message: 'acknowledged once its work is done' });
  t.same(got, ['slow@x/r', 'next@x/r'], 'each handled once');
});

/**
 * Cluster membership (src/cluster/node.ts) on a real Redis: leases, a
 * duplicate NODE_ID refused, a dead node noticed once, a lost lease told.
 */
import t, { type Test } from 'tap';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { connectRedis, keyPrefix, type Redis } from '../../src/cluster/redis.js';
import { joinCluster, type ClusterNode } from '../../src/cluster/node.js';
import { eventually } from '../helpers/eventually.js';
import { deferred } from '../helpers/deferred.js';

let redis: TestRedis;
t.before(async () => { redis = await startRedis(); });
t.teardown(async () => { await redis.stop(); });

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

async function client(t: Test, url: string): Promise<Redis> {
  const c = await connectRedis(url, quiet, 'test');
  t.teardown(() => c.destroy());
  return c;
}

async function node(t: Test, url: string, id: string, ttlMs = 500): Promise<ClusterNode> {
  const n = await joinCluster(await client(t, url), { id, prefix: keyPrefix(url), ttlMs, log: quiet });
  t.teardown(() => n.stop());
  return n;
}

t.test('members are the nodes whose lease is current; a clean stop is cleaned up after like a crash', async (t) => {
  const url = redis.url();
  const a = await node(t, url, 'a');
  const b = await node(t, url, 'b');
  const down: string[] = [];
  a.onNodeDown((id) => { down.push(id); });
  t.same((await a.members()).sort(), ['a', 'b']);
  t.ok(await a.alive('b'));
  await b.stop();
  t.notOk(await a.alive('b'), 'a stopped node is not alive');
  t.same(await a.members(), ['a']);
  // What b held (directory entries, inbox, hibernating sessions) is taken care of by a survivor.
  await eventually(() => down.includes('b'), { timeout: 5000, message: 'the survivor ran its handlers for b' });
});

t.test('a node restarted before anyone cleaned up after it recovers its own previous run', async (t) => {
  const url = redis.url();
  const first = await node(t, url, 'solo');
  await first.stop();
  const again = await node(t, url, 'solo');
  const down: string[] = [];
  again.onNodeDown((id) => { down.push(id); });
  await again.start();
  t.same(down, ['solo'], 'the handlers ran for its own previous run');
  const fresh = await node(t, url, 'fresh');
  const none: string[] = [];
  fresh.onNodeDown((id) => { none.push(id); });
  await fresh.start();
  t.same(none, [], 'a first start recovers nothing');
});

t.test('a second live process with the same NODE_ID is refused, naming the variable', async (t) => {
  const url = redis.url();
  await node(t, url, 'same');
  await t.rejects(node(t, url, 'same'), /NODE_ID="same" is invalid/);
});

t.test('a restarted node takes its name back once the dead lease runs out', async (t) => {
  const url = redis.url();
  const c = await client(t, url);
  // What a killed process leaves behind: its lease, not renewed any more.
  await c.set(`${keyPrefix(url)}node:phoenix`, 'old-token', { expiration: { type: 'PX', value: 400 } });
  const n = await node(t, url, 'phoenix');
  t.ok(await n.alive('phoenix'));
});

t.test('a node whose lease expires is reported down once, on one survivor', async (t) => {
  const url = redis.url();
  const seen: string[] = [];
  const a = await node(t, url, 'a');
  const b = await node(t, url, 'b');
  a.onNodeDown((id) => { seen.push(`a:${id}`); });
  b.onNodeDown((id) => { seen.push(`b:${id}`); });
  const c = await client(t, url);
  // 'gone' joined, then its process died: the lease expires, the membership stays.
  await c.sAdd(`${keyPrefix(url)}nodes`, 'gone');
  await c.set(`${keyPrefix(url)}node:gone`, 'x', { expiration: { type: 'PX', value: 200 } });
  await eventually(() => seen.length > 0, { timeout: 5000, message: 'the dead node reported' });
  await new Promise((r) => setTimeout(r, 600));
  t.equal(seen.length, 1, 'reported exactly once');
  t.match(seen[0], /^[ab]:gone$/);
});

t.test('a node that finds itself declared dead (lease gone, out of the member set) is told to stop serving', async (t) => {
  const url = redis.url();
  const n = await node(t, url, 'paused');
  let lost = false;
  n.onLost(() => { lost = true; });
  const c = await client(t, url);
  // What a survivor does once the lease of a paused node ran out: the removal from the member set is the fence.
  await c.del(`${keyPrefix(url)}node:paused`);
  await c.sRem(`${keyPrefix(url)}nodes`, 'paused');
  await eventually(() => lost, { timeout: 5000, message: 'onLost' });
  t.notOk(await n.alive('paused'), 'it no longer counts itself alive');
});

t.test('a lease that ran out unseen while the node is still a member is taken again: the node keeps serving', async (t) => {
  const url = redis.url();
  const n = await node(t, url, 'blinked');
  let lost = false;
  n.onLost(() => { lost = true; });
  const c = await client(t, url);
  const lease = `${keyPrefix(url)}node:blinked`;
  const token = await c.get(lease);
  // What a Redis restart longer than the lease leaves (AOF): the member set, no lease.
  await c.del(lease);
  await eventually(async () => (await c.get(lease)) === token, { timeout: 5000, message: 'the lease taken again with its token' });
  t.notOk(lost, 'not told to stop serving');
  t.ok(await n.alive('blinked'), 'it counts itself alive');
});

t.test('Redis restarting (AOF) for longer than the lease: every node takes its lease again, none is declared dead, none is lost', async (t) => {
  const aof = await startRedis({ aof: true });
  t.teardown(() => aof.stop(true));
  const url = aof.url();
  const down: string[] = [];
  let lost = 0;
  for (const id of ['a', 'b', 'c']) {
    const n = await node(t, url, id);
    n.onNodeDown((other) => { down.push(`${id}:${other}`); });
    n.onLost(() => { lost++; });
  }
  await aof.restart(1500, true);
  const c = await client(t, url);
  await eventually(async () => (await Promise.all(['a', 'b', 'c'].map((id) => c.exists(`${keyPrefix(url)}node:${id}`)))).every((e) => e === 1),
    { timeout: 10_000, message: 'every lease taken again' });
  // Past the time the first node back waits before it judges the others (a lease and the longest reconnect wait).
  await new Promise((r) => setTimeout(r, 500 + 2000 + 500));
  t.same(down, [], 'no node declared another dead');
  t.equal(lost, 0, 'no node was told to stop serving');
  t.same((await c.sMembers(`${keyPrefix(url)}nodes`)).sort(), ['a', 'b', 'c'], 'all still members');
});

t.test('a survivor keeps renewing its own lease while it handles a dead node, however long that takes', async (t) => {
  const url = redis.url();
  const look = await client(t, url);
  const a = await node(t, url, 'a');
  const b = await node(t, url, 'b');
  let started = false;
  const { promise: handled, resolve: release } = deferred();
  // Taking a big node's sessions over (and draining its inbox) can take longer than a lease.
  a.onNodeDown(async () => { started = true; await handled; });
  t.teardown(() => release());
  let lost = false;
  a.onLost(() => { lost = true; });
  await b.stop();
  await eventually(() => started, { timeout: 5000, message: 'a handles b\'s death' });
  const lease = `${keyPrefix(url)}node:a`;
  let last = await look.pTTL(lease);
  let renewals = 0;
  await eventually(async () => {
    const ttl = await look.pTTL(lease);
    if (ttl > last) renewals++;
    last = ttl;
    return renewals >= 3 || ttl < 0;
  }, { timeout: 5000, interval: 20, message: 'a\'s lease renewed or gone' });
  t.equal(renewals, 3, 'a\'s lease is renewed while it handles b\'s death');
  t.notOk(lost, 'a is still a member');
});

t.test('a node that leaves while it handles a dead node finishes its give-back handlers before the dead node is a member again, and runs no further down handler', async (t) => {
  const url = redis.url();
  const look = await client(t, url);
  const members = `${keyPrefix(url)}nodes`;
  const a = await node(t, url, 'a');
  const b = await node(t, url, 'b');
  const { promise: firstDone, resolve: endFirst } = deferred();
  t.teardown(() => endFirst());
  const ran: string[] = [];
  let started = false;
  a.onNodeDown(async () => { started = true; ran.push('first'); await firstDone; });
  a.onNodeDown(() => { ran.push('second'); });
  const { promise: giveBackDone, resolve: endGiveBack } = deferred();
  t.teardown(() => endGiveBack());
  let giving = false;
  a.onGiveBack(async (id) => { giving = true; ran.push(`give-back:${id}`); await giveBackDone; });
  await b.stop();
  await eventually(() => started, { timeout: 5000, message: "a handles b's death" });
  t.notOk(await look.sIsMember(members, 'b'), 'b is out of the member set while a handles it');
  a.leaving();
  endFirst();
  await eventually(() => giving, { timeout: 5000, message: 'the give-back handler runs' });
  await new Promise((r) => setTimeout(r, 200));
  t.notOk(await look.sIsMember(members, 'b'), 'b is not given back while the give-back handler runs');
  endGiveBack();
  await eventually(async () => look.sIsMember(members, 'b'), { timeout: 5000, message: 'b given back' });
  t.same(ran, ['first', 'give-back:b'], 'the handler after the leave did not run; the give-back handler did');
});

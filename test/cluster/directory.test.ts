/**
 * The session directory (src/cluster/directory.ts) on a real redis-server:
 * every node's mirror converges on what Redis holds, in Redis order; a
 * mirror that starts late loads what exists; updates and removals only
 * touch their own session; a dead node's entries and a previous run's are
 * removed.
 */
import t, { type Test } from 'tap';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { connectRedis, keyPrefix } from '../../src/cluster/redis.js';
import { joinCluster, type ClusterNode } from '../../src/cluster/node.js';
import { createDirectory, type DirEntry, type DirFields, type Directory } from '../../src/cluster/directory.js';
import { eventually } from '../helpers/eventually.js';

let redis: TestRedis;
t.before(async () => { redis = await startRedis(); });
t.teardown(async () => { await redis.stop(); });

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

interface Member { readonly node: ClusterNode; readonly dir: Directory; readonly changes: string[] }

async function member(t: Test, url: string, id: string): Promise<Member> {
  const conn = await connectRedis(url, quiet, id);
  const node = await joinCluster(conn, { id, prefix: keyPrefix(url), ttlMs: 2000, log: quiet });
  const changes: string[] = [];
  const dir = createDirectory(node, (bare, resource, entry) => { changes.push(`${bare}/${resource}=${entry ? entry.sid : 'gone'}`); }, quiet);
  t.teardown(async () => {
    await dir.stop();
    await node.stop().catch(() => undefined);
    if (conn.isOpen) conn.destroy();
  });
  return { node, dir, changes };
}

const fields = (node: string, sid: string, over: Partial<DirFields> = {}): DirFields => ({
  node, sid, priority: 0, presence: null, interested: false, carbons: false, anonymous: false, ...over,
});
/** Nodes a and b on a database of their own, their mirrors started. */
async function pair(t: Test): Promise<{ url: string; a: Member; b: Member }> {
  const url = redis.url();
  const a = await member(t, url, 'a');
  const b = await member(t, url, 'b');
  await a.dir.start();
  await b.dir.start();
  return { url, a, b };
}

const sidAt = (m: Member, bare: string, resource: string): string | undefined => m.dir.entries(bare)?.get(resource)?.sid;

t.test('binds, updates and removals reach every mirror; a late mirror loads what exists', async (t) => {
  const { url, a, b } = await pair(t);
  await a.dir.bind('alice@x', 'r1', fields('a', 'a:1', { priority: 5 }));
  await eventually(() => sidAt(b, 'alice@x', 'r1') === 'a:1', { message: 'b sees alice/r1' });
  t.ok(await a.dir.update('alice@x', 'r1', fields('a', 'a:1', { presence: '<presence/>', carbons: true })) > 0, 'its own entry is updated');
  await eventually(() => b.dir.entries('alice@x')?.get('r1')?.carbons === true, { message: 'b sees the update' });
  t.equal(b.dir.entries('alice@x')?.get('r1')?.presence, '<presence/>');
  t.equal(await a.dir.update('alice@x', 'r1', fields('a', 'a:other')), 0, 'an update with another sid is refused');
  t.equal(await a.dir.remove('alice@x', 'r1', 'a:other'), false, 'so is a removal');
  await a.dir.bind('bob@x', 'r', fields('a', 'a:2'));
  const late = await member(t, url, 'c');
  await late.dir.start();
  t.equal(sidAt(late, 'alice@x', 'r1'), 'a:1', 'a mirror started later loads the entries');
  t.equal(late.dir.entries('alice@x')?.get('r1')?.carbons, true, 'with their last state');
  t.ok(await a.dir.remove('alice@x', 'r1', 'a:1'));
  await eventually(() => b.dir.entries('alice@x') === undefined && late.dir.entries('alice@x') === undefined, { message: 'the removal everywhere' });
  t.ok(b.changes.includes('alice@x/r1=gone'));
});

t.test('concurrent binds of one resource: every mirror ends on the one Redis kept (last bind wins)', async (t) => {
  const { a, b } = await pair(t);
  const seqs: number[] = [];
  for (let i = 0; i < 20; i++) {
    seqs.push(...await Promise.all([
      a.dir.bind('alice@x', 'same', fields('a', `a:${i}`)),
      b.dir.bind('alice@x', 'same', fields('b', `b:${i}`)),
    ]));
  }
  t.equal(new Set(seqs).size, seqs.length, 'every write has its own sequence number');
  const stored = JSON.parse((await a.node.redis.hGet(`${a.node.prefix}dir:alice@x`, 'same'))!) as DirEntry;
  t.equal(stored.seq, Math.max(...seqs), 'Redis holds the last write');
  await eventually(() => sidAt(a, 'alice@x', 'same') === stored.sid && sidAt(b, 'alice@x', 'same') === stored.sid, { message: 'both mirrors agree with Redis' });
});

t.test('a dead node\'s entries are removed, and so are those a previous run of a node left', async (t) => {
  const { url, a, b } = await pair(t);
  await b.dir.bind('bob@x', 'r1', fields('b', 'b:1'));
  await b.dir.bind('bob@x', 'r2', fields('b', 'b:2'));
  await a.dir.bind('bob@x', 'r3', fields('a', 'a:3'));
  await eventually(() => a.dir.entries('bob@x')?.size === 3, { message: 'a sees three resources' });
  t.equal(await a.dir.removeNode('b'), 2, 'node b\'s two entries');
  await eventually(() => a.dir.entries('bob@x')?.size === 1 && b.dir.entries('bob@x')?.size === 1, { message: 'the removals published' });
  t.equal(sidAt(a, 'bob@x', 'r3'), 'a:3', 'the other node\'s entry stays');
  // A restart of node a (same NODE_ID) with a fresh directory: what its previous run wrote is removed at start.
  await a.dir.stop();
  await a.node.stop();
  const again = await member(t, url, 'a');
  await again.dir.start();
  t.equal(again.dir.entries('bob@x'), undefined, 'the previous run\'s entry is gone');
  await eventually(() => b.dir.entries('bob@x') === undefined, { message: 'and b was told' });
});

// A previous run's sessions are ended one by one at start (their contacts told, directory-module.ts), before the
// listener opens. Each entry goes once ended: a start cut short (its startup probe, a crash) goes on where it stopped.
t.test('a previous run\'s entries are removed as they are ended: a start cut short does not end them again', async (t) => {
  const url = redis.url();
  const a = await member(t, url, 'a');
  await a.dir.start();
  const resources = ['r1', 'r2', 'r3', 'r4', 'r5'];
  for (const r of resources) await a.dir.bind('bob@x', r, fields('a', `a:${r}`));
  await a.dir.stop();
  await a.node.stop();
  const ended: string[] = [];
  const restart = async (failAt?: string) => {
    const conn = await connectRedis(url, quiet, 'a');
    const node = await joinCluster(conn, { id: 'a', prefix: keyPrefix(url), ttlMs: 2000, log: quiet });
    const dir = createDirectory(node, () => undefined, quiet, undefined, async ({ resource }) => {
      if (resource === failAt) throw new Error('cut short');
      ended.push(resource);
    });
    const outcome = await dir.start().then(() => 'started', (err: Error) => err.message);
    await dir.stop();
    await node.stop().catch(() => undefined);
    if (conn.isOpen) conn.destroy();
    return outcome;
  };
  t.equal(await restart('r4'), 'cut short', 'the first restart stops at r4');
  const firstRun = [...ended].sort();
  t.ok(firstRun.length >= 1 && !firstRun.includes('r4'), `it ended some before r4 (${firstRun.join(',')})`);
  ended.length = 0;
  t.equal(await restart(), 'started', 'the second restart starts');
  t.same([...ended].sort(), resources.filter((r) => !firstRun.includes(r)), 'and ends only the entries the first did not');
  const look = await connectRedis(url, quiet, 'look');
  t.teardown(() => look.destroy());
  t.same(await look.hGetAll(`${keyPrefix(url)}dir:bob@x`), {}, 'none is left in Redis');
});

t.test('a refused removal leaves the node\'s list alone: a dead node\'s newer session on that resource is still removed', async (t) => {
  // One node, two sessions on one resource (RFC 6120 §7.7.2.2 on one node): the older one's removal
  // comes after the newer one's bind (directory-module.ts: its own bind write came back after it had
  // ended in conflict). The removal is refused by sid, and must not take the resource out of the
  // node's list either, or the survivor of the node's death never removes the newer entry.
  const { a, b } = await pair(t);
  await a.dir.bind('alice@x', 'r', fields('a', 'a:old'));
  await a.dir.bind('alice@x', 'r', fields('a', 'a:new'));
  t.equal(await a.dir.remove('alice@x', 'r', 'a:old'), false, 'the older session\'s removal is refused');
  t.equal(await a.node.redis.hGet(`${a.node.prefix}dir:alice@x`, 'r').then((v) => v && (JSON.parse(v) as DirEntry).sid), 'a:new', 'the newer entry stays');
  t.equal(await b.dir.removeNode('a'), 1, 'node a dies: its entry for alice@x/r is removed');
  t.equal(await a.node.redis.hGet(`${a.node.prefix}dir:alice@x`, 'r'), null, 'gone from Redis');
  await eventually(() => b.dir.entries('alice@x') === undefined, { message: 'and from the mirrors' });
});

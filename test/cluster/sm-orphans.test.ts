/**
 * A dead node's resumable sessions (src/cluster/sm-orphans.ts) on a real
 * redis-server, the survivor's sweep driven directly: what it claims is
 * only what the dead node still owns. A session resumed on another node
 * while the sweep runs (between its read of the dead node's set and its
 * claim of that session) stays the resumer's. The dead node's own directory
 * entry is not taken for a newer session (TAKEOVER's RFC 6120 §7.7.2.2
 * check), even once its node id runs again.
 */
import t from 'tap';
import { connectRedis, keyPrefix } from '../../src/cluster/redis.js';
import { joinCluster, type ClusterNode } from '../../src/cluster/node.js';
import { createOrphans } from '../../src/cluster/sm-orphans.js';
import { createRedisSmRegistry } from '../../src/cluster/sm-registry.js';
import { smKeys } from '../../src/cluster/sm-scripts.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import { x } from '../../src/xml/index.js';
import { startRedis } from '../helpers/redis.js';
import { pushed } from '../helpers/sm-journal.js';
import { startDeadOwner } from './sm-dead-owner.js';

const server = await startRedis();
t.teardown(() => server.stop());
const log = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };

t.test('a session resumed on another node while the survivor sweeps the dead node\'s set stays the resumer\'s', async (t) => {
  const url = server.url();
  const prefix = keyPrefix(url);
  const keys = smKeys(prefix);
  const dead = await startDeadOwner(t, url, 'n0', { resource: 'tablet', max: 60, ids: ['d1', 'd2'] });
  await dead.kill();
  // n2 resumes the session (a <resume/> that reached it: the TAKEOVER script).
  const r2 = await connectRedis(url, log, 'n2');
  t.teardown(() => r2.destroy());
  const n2 = createRedisSmRegistry({
    node: { id: 'n2', prefix, redis: r2, alive: async () => true } as unknown as ClusterNode,
    stale: createMemoryStorage().smState, log, marginSeconds: 60, release: () => undefined, replaced: async () => undefined,
  });
  // n1, the survivor told of n0's death: its sweep read n0's set before the resumption, the record after.
  const r1 = await connectRedis(url, log, 'n1');
  t.teardown(() => r1.destroy());
  let resumed: unknown;
  const hmGet = r1.hmGet.bind(r1);
  Object.defineProperty(r1, 'hmGet', {
    value: async (...args: Parameters<typeof hmGet>) => {
      resumed ??= await n2.journal.claim(dead.smid, { host: 'localhost', username: 'alice', anonymous: false });
      return hmGet(...args);
    },
  });
  const orphans = createOrphans({ node: { id: 'n1', prefix, redis: r1 } as unknown as ClusterNode, stale: createMemoryStorage().smState, staleH: false, log });
  t.teardown(() => orphans.release());
  await orphans.adoptNode('n0');
  t.ok(resumed !== undefined && typeof resumed === 'object', 'n2 took the session over from the dead node');
  t.equal(await r2.hGet(keys.record(dead.smid), 'owner'), 'n2', 'the record is still the resumer\'s');
  t.equal(orphans.size, 0, 'the survivor does not wait to hand over a session resumed elsewhere');
  t.same(await r2.sMembers(keys.node('n1')), [], 'nor holds it in its set');
  const stanza = x('message', { xmlns: 'jabber:client', to: 'alice@localhost/tablet', type: 'chat', id: 'after' }, x('body', {}, 'after'));
  t.equal(await pushed(n2.journal, dead.smid, { stanza, at: Date.now() }), 'stored', 'the resumer\'s next stanza is stored: it still owns the session');
});

t.test('a dead node\'s session adopted while its directory entry is still there resumes once that node id runs again: the entry is its own, not a newer session', async (t) => {
  const url = server.url();
  const prefix = keyPrefix(url);
  const dead = await startDeadOwner(t, url, 'n0', { resource: 'tablet', max: 60, ids: ['d1'] });
  // The entry n0 wrote when it bound alice/tablet (directory.ts's layout), not removed yet.
  const look = await connectRedis(url, log, 'look');
  t.teardown(() => look.destroy());
  await look.hSet(`${prefix}dir:alice@localhost`, 'tablet', JSON.stringify({
    seq: 1, node: 'n0', sid: 'n0:7', priority: 0, presence: null, interested: false, carbons: false, anonymous: false,
  }));
  await dead.kill();
  // n0 runs again (a restart with the same NODE_ID): its lease is live, the entry of its previous run still there.
  const again = await connectRedis(url, log, 'n0-again');
  t.teardown(() => again.destroy());
  const rerun = await joinCluster(again, { id: 'n0', prefix, ttlMs: 300, log });
  t.teardown(() => rerun.stop());
  const r1 = await connectRedis(url, log, 'n1');
  t.teardown(() => r1.destroy());
  const orphans = createOrphans({ node: { id: 'n1', prefix, redis: r1 } as unknown as ClusterNode, stale: createMemoryStorage().smState, staleH: false, log });
  t.teardown(() => orphans.release());
  await orphans.adoptNode('n0');
  t.equal(orphans.size, 1, 'n1 adopted the session');
  const r2 = await connectRedis(url, log, 'n2');
  t.teardown(() => r2.destroy());
  const ended: string[] = [];
  const n2 = createRedisSmRegistry({
    node: { id: 'n2', prefix, redis: r2, alive: async () => true } as unknown as ClusterNode,
    stale: createMemoryStorage().smState, log, marginSeconds: 60, release: () => undefined,
    replaced: async (smid) => { ended.push(smid); },
  });
  const claim = await n2.journal.claim(dead.smid, { host: 'localhost', username: 'alice', anonymous: false });
  t.ok(typeof claim === 'object', `the resumption takes the session over (${typeof claim === 'object' ? 'claimed' : claim})`);
  t.same(ended, [], 'and does not end it as replaced');
});

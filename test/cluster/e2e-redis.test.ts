/**
 * End to end (issue 14 item 7): Redis restarting under a running cluster.
 * 3 gateway processes behind nginx in round-robin (test/helpers/e2e.ts), a
 * Redis with an append-only file fsynced at every write; strophe.js (XEP-0198
 * on, over WebSocket) and xmpp.js as the clients. Redis goes away for
 * longer than the nodes' lease (CLUSTER_NODE_TTL) and comes back on the same
 * port and directory: every node says not ready meanwhile and ready after,
 * none exits, and what Redis held survives: a hibernating session's queue
 * (resumed on another node after its owner is killed) and a directory entry
 * (messages to it from every node arrive).
 */
import t from 'tap';
import { withBalancedCluster, nodeWith } from '../helpers/e2e.js';
import { startRedis } from '../helpers/redis.js';
import { eventually, sleep } from '../helpers/eventually.js';
import { ids, page } from '../helpers/strophe-page.js';
import { becomeAvailable, login, xml } from '../helpers/xmppjs.js';
import { connectRedis, keyPrefix } from '../../src/cluster/redis.js';
import type { TestServer } from '../helpers/server.js';

t.setTimeout(120_000);
const LEASE_MS = 1500;
const DOWN_MS = 3 * LEASE_MS;
const readyz = async (port: number): Promise<number> => (await fetch(`http://127.0.0.1:${port}/readyz`)).status;

t.test('Redis restarts (AOF) for longer than a lease: nodes stay, say not ready then ready, and the queued state survives', async (t) => {
  const redis = await startRedis({ aof: true });
  t.teardown(() => redis.stop(true));
  const { cluster, front } = await withBalancedCluster(t, { redis, env: { CLUSTER_NODE_TTL: String(LEASE_MS) } });
  for (const u of ['alice', 'bob', 'carol']) await cluster.addUser(u, `${u}-pw`);
  const bob = await login(t, front, { username: 'bob', password: 'bob-pw', resource: 'desk' });
  await becomeAvailable(bob);

  // alice's page enables XEP-0198, then goes away: her session hibernates on its node.
  const me = 'alice@localhost/tab';
  const tab = new Map<string, string>();
  const page1 = page(t, front, tab);
  await page1.connect(me, 'alice-pw');
  await eventually(() => page1.conn.sm?.state.enabled, { message: 'strophe.js to get <enabled/>' });
  page1.unload();
  const owner = await eventually(() => { const i = nodeWith(cluster, (e) => e.event === 'session-hibernated' && e.jid === me); return i >= 0 ? i + 1 : 0; },
    { timeout: 10_000, message: "alice's session to hibernate" }) - 1;
  const sent = ['q1', 'q2', 'q3'];
  for (const id of sent) await bob.xmpp.send(xml('message', { to: me, type: 'chat', id }, xml('body', {}, id)));
  const probe = await connectRedis(cluster.redisUrl, { warn: () => undefined }, 'test');
  t.teardown(() => { if (probe.isOpen) probe.destroy(); });
  const prefix = keyPrefix(cluster.redisUrl);
  const smid = page1.conn.sm!.state.id;
  await eventually(async () => (await probe.lLen(`${prefix}smq:${smid}`)) === sent.length, { timeout: 10_000, message: "the 3 messages in alice's queue in Redis" });
  const bobEntry = await probe.hGet(`${prefix}dir:bob@localhost`, 'desk');
  t.ok(bobEntry, "bob's directory entry is in Redis");
  probe.destroy();

  const pids = cluster.nodes.map((n) => n.pid());
  const restarted = redis.restart(DOWN_MS, true);
  for (const n of cluster.nodes) await eventually(async () => (await readyz(n.port)) === 503, { message: `${n.id}'s /readyz to answer 503 while Redis is away` });
  t.pass('every node answers 503 on /readyz while Redis is away');
  await restarted;
  for (const n of cluster.nodes) await eventually(async () => (await readyz(n.port)) === 200, { timeout: 15_000, message: () => `${n.id}'s /readyz to answer 200 again: ${n.log().slice(-1500)}` });
  t.same(cluster.nodes.map((n) => n.pid()), pids, 'no node exited: the same processes serve');
  await sleep(2 * LEASE_MS);
  t.same(cluster.nodes.map((n) => n.pid()), pids, 'and none exits once it looked at its lease again');
  t.same(cluster.nodes.map((n) => n.events().filter((e) => e.event === 'cluster-node-down').length), [0, 0, 0], 'no node took another for dead');

  const again = await connectRedis(cluster.redisUrl, { warn: () => undefined }, 'test');
  t.teardown(() => { if (again.isOpen) again.destroy(); });
  t.equal(await again.hGet(`${prefix}dir:bob@localhost`, 'desk'), bobEntry, "bob's directory entry survived, unchanged");
  t.equal(await again.lLen(`${prefix}smq:${smid}`), sent.length, "alice's queue survived");
  again.destroy();

  // Every node still finds bob: carol writes to him from each one.
  for (const n of cluster.nodes) {
    const carol = await login(t, { wsUrl: n.wsUrl } as TestServer, { username: 'carol', password: 'carol-pw', resource: `on-${n.id}` });
    await carol.xmpp.send(xml('message', { to: 'bob@localhost/desk', type: 'chat', id: `from-${n.id}` }, xml('body', {}, 'hello')));
  }
  await eventually(() => cluster.nodes.every((n) => bob.received.some((el) => el.attrs.id === `from-${n.id}`)), { timeout: 10_000, message: 'bob to get a message sent from every node' });
  t.pass('a message from every node reached bob');

  // The owner dies: the queue alice resumes from is the one in Redis, which the restart kept.
  await cluster.kill(owner);
  const page2 = page(t, front, tab);
  await page2.connect('alice@localhost', 'alice-pw');
  t.ok(page2.conn.hasResumed(), 'strophe.js resumed the session');
  await eventually(() => page2.messages.length >= sent.length, { timeout: 10_000, message: () => `the queued messages; got ${ids(page2.messages).join(', ')}` });
  await sleep(500);
  t.same(ids(page2.messages), sent, 'each queued message once, in order');
  const resumedOn = nodeWith(cluster, (e) => e.event === 'session-taken-over' && e.jid === me);
  t.ok(resumedOn >= 0 && resumedOn !== owner, `resumed on a survivor (n${resumedOn}), from Redis`);
});

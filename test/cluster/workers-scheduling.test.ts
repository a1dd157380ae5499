/**
 * WORKERS=2 with the default WORKERS_SCHEDULING=none: each worker accepts
 * on the shared socket itself (no hand-off through the primary, which cost
 * the primary's CPU and an IPC round trip per connection: bench/RESULTS.md,
 * "Cluster", s22-login). The kernel, not the primary, picks the worker;
 * logins that come at once still reach both.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { LONG_LEASE, withGatewayCluster } from '../helpers/cluster.js';
import { eventually } from '../helpers/eventually.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { connectRedis, keyPrefix } from '../../src/cluster/redis.js';

t.setTimeout(120_000);

/** The PIDs of the processes holding the listening socket of `port` (ss -p: the owners of its file descriptors). */
function listeners(port: number): number[] {
  const out = execFileSync('ss', ['-ltnpH', `sport = :${port}`], { encoding: 'utf8' });
  return [...out.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
}

/** The PIDs of the children of `pid` (the primary's workers). */
function children(pid: number): number[] {
  return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number).sort((a, b) => a - b);
}

t.test('logins that come at once reach both workers, with no hand-off through the primary', async (t) => {
  const cluster = await withGatewayCluster(t, { nodes: 1, env: { WORKERS: '2', ...LONG_LEASE } });
  const [gw] = cluster.nodes;
  await eventually(() => gw!.events().filter((e) => e.event === 'listening').length === 2, { timeout: 20_000, message: 'both workers serving' });
  const workers = children(gw!.pid()!);
  t.equal(workers.length, 2);
  t.same(listeners(gw!.port).filter((pid) => workers.includes(pid)), workers, 'each worker holds the listening socket and accepts on it');
  const users = Array.from({ length: 6 }, (_, i) => `u${i}`);
  for (const u of users) await cluster.addUser(u, 'pw');
  const redis = await connectRedis(cluster.redisUrl, { warn: () => undefined }, 'test');
  t.teardown(() => redis.destroy());
  const prefix = keyPrefix(cluster.redisUrl);
  // 6 users × 4 resources, 8 logins under way at a time.
  const logins = users.flatMap((u) => [0, 1, 2, 3].map((r) => [u, `r${r}`] as const));
  for (let i = 0; i < logins.length; i += 8) {
    await Promise.all(logins.slice(i, i + 8).map(async ([user, resource]) => {
      const c = await RawWsClient.connect(gw!.wsUrl);
      t.teardown(() => c.ws.terminate());
      await c.login(user, 'pw', resource);
    }));
  }
  const perNode = new Map<string, number>();
  for (const u of users) {
    for (const value of Object.values(await redis.hGetAll(`${prefix}dir:${u}@localhost`))) {
      const node = (JSON.parse(value) as { node: string }).node;
      perNode.set(node, (perNode.get(node) ?? 0) + 1);
    }
  }
  t.same([...perNode.keys()].sort(), ['n0-w0', 'n0-w1'], `sessions on both workers (${JSON.stringify(Object.fromEntries(perNode))})`);
  t.equal([...perNode.values()].reduce((a, b) => a + b, 0), logins.length, 'every login bound');
});

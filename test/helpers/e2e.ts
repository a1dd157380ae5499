/**
 * The end-to-end setting (issue 14 item 7): 3 real gateway processes
 * (cluster.ts) on one Redis and one PostgreSQL, behind Debian's nginx in
 * round-robin with the README's location blocks, so consecutive
 * connections, and every BOSH request, land on the next process. nginx
 * logs the process each request went to.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { withGatewayCluster, type ClusterOptions, type GatewayCluster } from './cluster.js';
import { readmeLocations, startNginx, type Nginx } from './nginx.js';
import type { TestServer } from './server.js';
import { eventually } from './eventually.js';
import { connectRedis, keyPrefix, type Redis } from '../../src/cluster/redis.js';

export interface Balanced {
  readonly cluster: GatewayCluster;
  readonly nginx: Nginx;
  /** The balancer's endpoints, as a TestServer for the client helpers (they read wsUrl and httpUrl only). */
  readonly front: TestServer;
  /** The gateway ports nginx sent requests to, in order ($upstream_addr of its access log). */
  upstreams(): number[];
  /** A client of the cluster's Redis database, for the tests' own look (closed at teardown). */
  readonly redis: Redis;
  /** The NODE_ID the session directory gives for `fullJid`, once it has one. */
  ownerOf(fullJid: string): Promise<string>;
}

/** 3 gateways (or `opts.nodes`) behind a round-robin nginx; all stopped at `t`'s teardown. */
export async function withBalancedCluster(t: Test, opts: Partial<ClusterOptions> = {}): Promise<Balanced> {
  const cluster = await withGatewayCluster(t, { nodes: 3, ...opts });
  const logs = mkdtempSync(join(tmpdir(), 'xwg-e2e-'));
  t.teardown(() => rmSync(logs, { recursive: true, force: true }));
  const log = join(logs, 'upstream.log');
  // Round-robin is nginx's default for an upstream; each request logs the process(es) it went to.
  const upstream = `upstream xwg_cluster { ${cluster.nodes.map((n) => `server 127.0.0.1:${n.port};`).join(' ')} }
  log_format upstream '$upstream_addr';
  access_log ${log} upstream;`;
  const nginx = await startNginx(t, readmeLocations('http://xwg_cluster'), upstream);
  const redis = await connectRedis(cluster.redisUrl, { warn: () => undefined }, 'e2e-test');
  t.teardown(() => { if (redis.isOpen) redis.destroy(); });
  const prefix = keyPrefix(cluster.redisUrl);
  const front = { wsUrl: `${nginx.httpUrl.replace('http:', 'ws:')}/xmpp-websocket`, httpUrl: nginx.httpUrl } as unknown as TestServer;
  return {
    cluster, nginx, front, redis,
    async ownerOf(fullJid) {
      const [bare, resource] = fullJid.split('/') as [string, string];
      const entry = await eventually(() => redis.hGet(`${prefix}dir:${bare}`, resource), { message: `${fullJid} in the session directory` });
      return (JSON.parse(entry) as { node: string }).node;
    },
    upstreams: () => (existsSync(log) ? readFileSync(log, 'utf8') : '').split('\n').flatMap((l) => l.split(', '))
      .map((a) => Number(/:(\d+)$/.exec(a.trim())?.[1])).filter((p) => p > 0),
  };
}

/** The index of the node whose log has an event matching `pred` (current runs only), or -1. */
export function nodeWith(cluster: GatewayCluster, pred: (e: Record<string, unknown>) => boolean): number {
  return cluster.nodes.findIndex((n) => n.pid() !== undefined && n.events().some(pred));
}

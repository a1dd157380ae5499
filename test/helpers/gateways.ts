/**
 * Several in-process gateways forming one cluster (CLUSTER=redis): one
 * Redis database and one PostgreSQL database shared, a NODE_ID each, every
 * gateway on its own port with its own storage pool. For tests of the
 * directory and cross-node IM; kill -9 scenarios need real processes
 * (test/helpers/cluster.ts).
 */
import type { Test } from 'tap';
import { openPostgresStorage } from '../../src/storage/postgres/index.js';
import { deriveStoredCredentials } from '../../src/storage/index.js';
import type { Cluster } from '../../src/cluster/index.js';
import type { Feature } from '../../src/server.js';
import { startServer, type TestServer } from './server.js';

export interface Gateway {
  readonly server: TestServer;
  readonly cluster: Cluster;
  /** Leaves the cluster cleanly and closes the server (idempotent). */
  stop(): Promise<void>;
  /** The in-process kill -9 of a node: its Redis connection goes, so its lease is no longer renewed. */
  crash(): void;
}

export interface GatewayOptions {
  readonly redisUrl: string;
  readonly databaseUrl: string;
  /** More environment for every gateway. */
  readonly env?: Readonly<Record<string, string>>;
  /** More features, registered after the cluster's. */
  readonly features?: readonly Feature[];
}

/** Starts gateway `id`; stopped when `t` ends unless stopped before. */
export async function startGateway(t: Test, id: string, opts: GatewayOptions): Promise<Gateway> {
  const env = {
    CLUSTER: 'redis', REDIS_URL: opts.redisUrl, NODE_ID: id, STORAGE: 'postgres', DATABASE_URL: opts.databaseUrl,
    SM_BACKEND: 'redis', CLUSTER_NODE_TTL: '1000', ...opts.env,
  };
  // buildApp starts the cluster (CLUSTER=redis) and leaves it on shutdown.
  const server = await startServer(env, await openPostgresStorage({ url: opts.databaseUrl }), { features: opts.features ?? [] });
  const cluster = server.app.cluster;
  if (!cluster) throw new Error('CLUSTER=redis started no cluster');
  let stopped: Promise<void> | undefined;
  let crashed = false;
  const stop = (): Promise<void> => (stopped ??= (async () => {
    await server.close();
    // A crashed node cannot leave (its Redis is gone): its inbox reader, on a connection of its own, is ended here.
    if (crashed) await cluster.delivery.stop();
  })());
  t.teardown(stop);
  return {
    server, cluster, stop,
    crash() {
      crashed = true;
      cluster.node.redis.destroy();
    },
  };
}

/** Creates `name` (password `<name>-pw`) in the shared database. */
export async function addUsers(gateway: Gateway, names: readonly string[]): Promise<void> {
  for (const name of names) {
    await gateway.server.storage.users.create('localhost', name, await deriveStoredCredentials(`${name}-pw`, 4096));
  }
}

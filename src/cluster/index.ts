/**
 * The cluster (CLUSTER=redis) as the composition root sees it: one Redis
 * connection, this node's membership (node.ts), cross-node delivery
 * (delivery.ts) and the cluster modules (the session directory, the SM
 * registry) as features of the core. Nothing here runs when CLUSTER=none:
 * app.ts calls startCluster only for CLUSTER=redis.
 */
import { hostname } from 'node:os';
import type { Config } from '../config/index.js';
import type { Feature } from '../server.js';
import type { SmStateStore } from '../storage/ports/sm-state.js';
import type { SmRegistry } from '../xmpp/features/stream-management/registry.js';
import type { Log } from '../xmpp/log.js';
import { connectRedis, keyPrefix, type Redis } from './redis.js';
import { joinCluster, type ClusterNode } from './node.js';
import { createRedisDelivery, type Delivery } from './delivery.js';
import { createDirectoryModule } from './directory-module.js';
import { createAccountSyncModule } from './account-sync.js';
import { createSmModule } from './sm.js';

/** What a cluster module is given: the node's Redis services, by closure. */
export interface ClusterServices {
  readonly config: Config;
  readonly log: Log;
  readonly node: ClusterNode;
  readonly redis: Redis;
  readonly delivery: Delivery;
}

/**
 * One cluster module (helper A's directory, helper C's SM registry): a
 * feature of the core, and what it must do once the core exists (load a
 * mirror, subscribe) and when the node leaves. Each may register an inbox
 * handler (delivery.onEntry) and node.onNodeDown handlers in its factory.
 */
export interface ClusterModule {
  readonly feature?: Feature;
  /** SM_BACKEND=redis (sm.ts): the stream-management registry, for createXmppServer's smRegistry. */
  smRegistry?(stale: SmStateStore): SmRegistry;
  /** After every feature is registered, before the inbox is read and the listener opens. */
  start?(): Promise<void>;
  /** The node has left the cluster and drained its inbox; Redis is still connected. */
  stop?(): Promise<void>;
}

export interface Cluster {
  readonly node: ClusterNode;
  readonly delivery: Delivery;
  /** The modules' features, for createXmppServer (registered after the built-in ones). */
  readonly features: readonly Feature[];
  /** For createXmppServer (XmppServerOptions.smRegistry): the SM module's registry. */
  readonly smRegistry?: (stale: SmStateStore) => SmRegistry;
  /** Starts the modules, then reads the inbox (first what a previous run left pending). */
  start(): Promise<void>;
  /** False while Redis is unreachable or the node has left: /readyz answers 503. */
  ready(): boolean;
  /** Stops reading, leaves the cluster (no entry is accepted for us any more) and handles what is left in our inbox. */
  leave(): Promise<void>;
  /** After leave and the core's drain: stops the modules and closes Redis. */
  close(): Promise<void>;
  /** leave() then close(). */
  stop(): Promise<void>;
}

/** The factories of the cluster modules, in the order their features register. */
type ModuleFactory = (services: ClusterServices) => ClusterModule;
const MODULES: readonly ModuleFactory[] = [
  // Helper A: the session directory and remote sessions, then account cache coherence.
  createDirectoryModule,
  createAccountSyncModule,
  // Helper C: stream management in Redis (SM_BACKEND=redis).
  createSmModule,
];

export async function startCluster(config: Config, log: Log): Promise<Cluster> {
  const id = config.nodeId === '' ? hostname() : config.nodeId;
  const clusterLog = log.child({ node: id });
  const redis = await connectRedis(config.redisUrl, clusterLog, `xwg-${id}`);
  const prefix = keyPrefix(config.redisUrl);
  const node = await joinCluster(redis, { id, prefix, ttlMs: config.clusterNodeTtl, log: clusterLog });
  const delivery = createRedisDelivery(node, {
    log: clusterLog, maxEntries: config.clusterInboxMaxEntries, maxBytes: config.clusterInboxMaxBytes,
    maxAttempts: config.clusterDeliveryMaxAttempts,
  });
  // A survivor told that a node is dead reads what was left in its inbox (the handler re-routes it).
  node.onNodeDown(async (dead) => { await delivery.drain(dead); });
  const services: ClusterServices = { config, log: clusterLog, node, redis, delivery };
  const modules = MODULES.map((create) => create(services));
  let left = false;
  let closed = false;

  const cluster: Cluster = {
    node, delivery,
    features: modules.flatMap((m) => (m.feature ? [m.feature] : [])),
    smRegistry: modules.find((m) => m.smRegistry)?.smRegistry,
    async start() {
      for (const m of modules) await m.start?.();
      await delivery.start();
    },
    ready: () => !left && redis.isReady,
    async leave() {
      if (left) return;
      left = true;
      await delivery.stop();
      await node.stop();
      const handled = await delivery.drain(id);
      if (handled > 0) clusterLog.info({ event: 'cluster-inbox-drained', entries: handled }, 'handled what was left in our inbox');
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const m of [...modules].reverse()) await m.stop?.();
      await redis.quit().catch(() => redis.destroy());
    },
    async stop() {
      await cluster.leave();
      await cluster.close();
    },
  };
  return cluster;
}

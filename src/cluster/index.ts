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
import { closeConnections, connectRedis, keyPrefix, type Redis } from './redis.js';
import { joinCluster, type ClusterNode } from './node.js';
import { createRedisDelivery, type Delivery } from './delivery.js';
import type { ClusterModule, ClusterServices } from './module.js';
import { createBoshForwarder, forwardLimits, type ClusterBoshForwarder } from './bosh-forward.js';
import { createDirectoryModule } from './directory-module.js';
import { createAccountSyncModule } from './account-sync.js';
import { createLoginSyncModule } from './login-sync.js';
import { createSmModule } from './sm.js';
import { ClusterStartError } from './errors.js';

export { ClusterStartError };

// Modules import these from './module.js' (importing './index.js' would make a cycle with MODULES below).
export type { ClusterModule, ClusterServices } from './module.js';

export interface Cluster {
  readonly node: ClusterNode;
  readonly delivery: Delivery;
  /** BOSH requests for sessions of other nodes go to their owner (bosh-forward.ts); app.ts advertises our URL once listening. */
  readonly boshForwarder: ClusterBoshForwarder;
  /** The modules' features, for createXmppServer (registered after the built-in ones). */
  readonly features: readonly Feature[];
  /** For createXmppServer (XmppServerOptions.smRegistry): the SM module's registry. */
  readonly smRegistry?: (stale: SmStateStore) => SmRegistry;
  /** Starts the modules, then reads the inbox (first what a previous run left pending). */
  start(): Promise<void>;
  /** False while Redis is unreachable or the node has left: /readyz answers 503. */
  ready(): boolean;
  /** A rolling restart or a stop begins (not ready): no other node is declared dead here from now on (ClusterNode.leaving). */
  leaving(): void;
  /** Stops reading, handles what is left in our inbox, leaves the cluster (no entry is accepted for us any more) and handles what came in meanwhile. */
  leave(): Promise<void>;
  /** After leave and the core's drain: stops the modules and closes Redis. */
  close(): Promise<void>;
  /** A rolling restart, after leave(): the sessions this node still holds are left in Redis for a survivor (ClusterModule.release). */
  release(): void;
  /** leave() then close(). */
  stop(): Promise<void>;
}

/** The factories of the cluster modules, in the order their features register. */
type ModuleFactory = (services: ClusterServices) => ClusterModule;
const MODULES: readonly ModuleFactory[] = [
  // Helper A: the session directory and remote sessions, then account cache coherence.
  createDirectoryModule,
  createAccountSyncModule,
  // Login throttling counted across nodes.
  createLoginSyncModule,
  // Helper C: stream management in Redis (SM_BACKEND=redis).
  createSmModule,
];

const DRAIN_ATTEMPTS = 5;
const LEAVE_TIMEOUT_MS = 5000;
// A Redis not reachable at start stops the start (naming REDIS_URL) rather than retrying unseen.
const START_TIMEOUT_MS = 10_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Runs `work` for at most `ms`: false when it failed (logged) or did not finish (it goes on, unawaited). */
async function bounded(log: Log, work: () => Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => { timer = setTimeout(() => r(false), ms); });
  const run = work().then(() => true as const, (err: unknown) => {
    log.warn({ err, event: 'cluster-stop-failed' }, 'leaving the cluster failed');
    return false as const;
  });
  try {
    return await Promise.race([run, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Connects to REDIS_URL and joins as `id`; a failure names the variable to fix. */
async function join(config: Config, id: string, log: Log): Promise<{ redis: Redis; node: ClusterNode }> {
  let redis: Redis;
  try {
    redis = await connectRedis(config.redisUrl, log, `xwg-${id}`, START_TIMEOUT_MS);
  } catch (err) {
    throw new ClusterStartError(err instanceof Error && err.message.startsWith('REDIS_URL') ? err.message : 'REDIS_URL: cannot connect to Redis', { cause: err });
  }
  try {
    return { redis, node: await joinCluster(redis, { id, prefix: keyPrefix(config.redisUrl), ttlMs: config.clusterNodeTtl, log }) };
  } catch (err) {
    redis.destroy();
    const message = err instanceof Error ? err.message : String(err);
    throw message.startsWith('NODE_ID') ? new ClusterStartError(message, { cause: err }) : err;
  }
}

export async function startCluster(config: Config, log: Log): Promise<Cluster> {
  const id = config.nodeId === '' ? hostname() : config.nodeId;
  const clusterLog = log.child({ node: id });
  const { redis, node } = await join(config, id, clusterLog);
  const delivery = createRedisDelivery(node, {
    log: clusterLog, maxEntries: config.clusterInboxMaxEntries, maxBytes: config.clusterInboxMaxBytes,
    maxAttempts: config.clusterDeliveryMaxAttempts,
  });
  // A survivor told that a node is dead reads what was left in its inbox (the handler re-routes it).
  // Only this node is told, once: a Redis hiccup meanwhile must not leave the inbox behind.
  const retried = async <T>(work: () => Promise<T>): Promise<T> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (err) {
        if (attempt >= DRAIN_ATTEMPTS) throw err;
        await sleep(500 * attempt);
      }
    }
  };
  // Dead nodes whose inbox was read with entries still handed on (held by an account's delivery line): the entries read.
  const handing = new Map<string, number>();
  const drained = (dead: string, handled: number) => {
    clusterLog.info({ event: 'cluster-inbox-drained', inbox: dead, entries: handled }, "drained a dead node's inbox");
  };
  // Read first, without waiting for a held line (a client's unacked page: SM_ACK_TIMEOUT): the
  // modules' handlers (the dead sessions' presence and directory entries, their SM adoption) must
  // not wait for one slow client. The wait, and the inbox's removal, come last (below).
  node.onNodeDown(async (dead) => {
    const { handled, handing: under } = await retried(() => delivery.readOut(dead));
    if (under) handing.set(dead, handled); else drained(dead, handled);
  });
  const services: ClusterServices = { config, log: clusterLog, node, redis, delivery };
  const modules = MODULES.map((create) => create(services));
  // Beside the next dead node's handling (onNodeDownLast), which must not wait for one slow client either.
  node.onNodeDownLast(async (dead) => {
    const read = handing.get(dead);
    if (read === undefined) return;
    try {
      drained(dead, read + await retried(() => delivery.drain(dead)));
    } finally {
      handing.delete(dead);
    }
  });
  // Leaving before that last handler: what this node handed on is finished (the leave dropped the
  // transports, so held lines move) before a node that stays drains the inbox again, or it would
  // handle those entries a second time. Past the bound they stay pending, for that node.
  node.onGiveBack(async (dead) => {
    if (!handing.delete(dead)) return;
    if (!(await bounded(clusterLog, () => delivery.settled(dead), LEAVE_TIMEOUT_MS))) {
      clusterLog.warn({ event: 'cluster-inbox-handed-back', inbox: dead }, "leaving with a dead node's inbox entries still handed on: the node that drains it again handles them too");
    }
  });
  const boshForwarder = createBoshForwarder(node, { log: clusterLog, ...forwardLimits(config) });
  let left = false;
  let closed = false;
  let lost = false;
  node.onLost(() => { lost = true; });

  const cluster: Cluster = {
    node, delivery, boshForwarder,
    features: modules.flatMap((m) => (m.feature ? [m.feature] : [])),
    smRegistry: modules.find((m) => m.smRegistry)?.smRegistry,
    async start() {
      for (const m of modules) await m.start?.();
      // A previous run of this NODE_ID that nobody cleaned up after is recovered like a dead node.
      await node.start();
      await delivery.start();
    },
    ready: () => !left && !lost && redis.isReady,
    leaving: () => node.leaving(),
    async leave() {
      if (left) return;
      left = true;
      node.leaving();
      const reading = delivery.stop();
      // Redis unreachable: our lease runs out by itself and a survivor drains our inbox (commands
      // would only wait in the client's offline queue).
      const done = redis.isReady && await bounded(clusterLog, async () => {
        await reading;
        // A lost lease: a survivor is told we are dead and drains our inbox; reading it too would repeat entries.
        if (lost) return;
        // Our inbox first, while our lease holds: what waits there for a session hibernating here goes
        // into its journaled queue at our epoch. Released first, a survivor could drain the inbox or
        // adopt (fence) those sessions meanwhile, and the stanza went to offline storage, which a
        // resumed session never reads (test/cluster/rolling-restart-inbox.test.ts).
        let handled = await delivery.drainOwn();
        await node.stop();
        // What a sender added between that read and the release (it checks our lease), then the stream goes.
        handled += await delivery.drain(id);
        if (handled > 0) clusterLog.info({ event: 'cluster-inbox-drained', inbox: id, entries: handled }, 'handled what was left in our inbox');
      }, LEAVE_TIMEOUT_MS);
      if (!done) clusterLog.warn({ event: 'cluster-leave-timeout' }, 'leaving the cluster failed or timed out (Redis unreachable?): a survivor will drain our inbox');
    },
    release() {
      for (const m of modules) m.release?.();
    },
    async close() {
      if (closed) return;
      closed = true;
      // One bound for all of them: a module waiting on an unreachable Redis does not hold the exit.
      // Each step on its own: one that fails (a command on a lost connection) must not leave the
      // others' connections open, reconnecting for ever.
      const step = (name: string, work: () => Promise<void>) => work().catch((err: unknown) => {
        clusterLog.warn({ err, event: 'cluster-stop-failed', step: name }, 'a cluster module did not stop cleanly');
      });
      await bounded(clusterLog, async () => {
        await step('bosh-forwarder', () => boshForwarder.stop());
        for (const m of [...modules].reverse()) await step('module', async () => { await m.stop?.(); });
      }, redis.isReady ? LEAVE_TIMEOUT_MS : 0);
      if (redis.isReady) await redis.quit().catch(() => undefined);
      if (redis.isOpen) redis.destroy();
      // A module's stop that hung or is still running (Redis unreachable: the bound above was 0) must
      // not leave its own connection reconnecting for ever, holding the process open.
      const left = closeConnections(redis);
      if (left > 0) clusterLog.warn({ event: 'cluster-connections-closed', connections: left }, 'connections a module had not closed were destroyed');
    },
    async stop() {
      await cluster.leave();
      await cluster.close();
    },
  };
  return cluster;
}

/**
 * XEP-0198 stream management across the cluster (SM_BACKEND=redis, issue
 * 14): the Redis registry (sm-registry.ts) the SM feature writes through,
 * the sm-fenced channel that tells a node to let go of a session resumed
 * elsewhere, and the sessions of dead nodes (sm-orphans.ts). The wiring
 * (src/cluster/index.ts) passes `registry` to createXmppServer
 * (XmppServerOptions.smRegistry) and `feature` with the cluster's features,
 * and calls `stop` before the server drains.
 */
import type { Feature } from '../server.js';
import type { SmStateStore } from '../storage/ports/sm-state.js';
import type { SmRegistry } from '../xmpp/features/stream-management/registry.js';
import type { ClusterNode } from './node.js';
import type { Redis } from './redis.js';
import { createRedisSmRegistry, type RedisSmRegistry, type SmLog } from './sm-registry.js';
import { createOrphans, type Orphans } from './sm-orphans.js';
import { smKeys } from './sm-scripts.js';
import { PRIORITY } from '../xmpp/priorities.js';

export interface ClusterSmOptions {
  /** SM_STALE_H_ENABLED: an orphan that times out leaves its h in storage, as a local timeout does. */
  readonly staleH: boolean;
  /** Seconds a hibernating record outlives its resume max in Redis (a safety net; nodes end them first). */
  readonly marginSeconds?: number;
}

export interface ClusterSm {
  /** The registry for createXmppServer; `stale` is the storage's stale h store. */
  registry(stale: SmStateStore): SmRegistry;
  /** The cluster's SM hooks: the session snapshot, this node's sessions from a previous run. */
  readonly feature: Feature;
  /** Hands over the dead nodes' sessions still waiting here, and unsubscribes. Before the server drains. */
  stop(): Promise<void>;
}

export async function startClusterSm(node: ClusterNode, log: SmLog, opts: ClusterSmOptions): Promise<ClusterSm> {
  const keys = smKeys(node.prefix);
  let parts: { registry: RedisSmRegistry; orphans: Orphans } | undefined;
  // Pub/sub needs a connection of its own.
  const sub = node.redis.duplicate() as Redis;
  sub.on('error', (err: Error) => log.warn({ err: { message: err.message } }, 'redis connection error'));
  await sub.connect();
  await sub.subscribe(keys.channel, (message: string) => {
    let smid: string, epoch: number;
    try { ({ smid, epoch } = JSON.parse(message) as { smid: string; epoch: number }); } catch { return; }
    parts?.registry.fenced(smid, epoch);
    parts?.orphans.fenced(smid, epoch);
  });
  node.onNodeDown((id) => parts?.orphans.adoptNode(id));

  return {
    registry(stale) {
      const orphans = createOrphans({ node, stale, staleH: opts.staleH, log });
      const registry = createRedisSmRegistry({
        node, stale, log, marginSeconds: opts.marginSeconds ?? 60, release: (smid, epoch, deadline) => orphans.watch(smid, epoch, deadline),
      });
      parts = { registry, orphans };
      return registry;
    },
    feature(ctx) {
      if (!parts) throw new Error('startClusterSm: registry() must be passed to the server before its features');
      const { registry, orphans } = parts;
      orphans.attach(ctx);
      // The snapshot a takeover restores: the presence a client broadcast (RFC 6121 §4.2), its priority.
      ctx.hooks.notify('presence/broadcast', ({ origin }) => { if (origin) registry.snapshot(origin); }, PRIORITY.lifecycle.default);
      // This NODE_ID's sessions from a previous run (a crash and a restart): they time out as a dead node's do.
      orphans.adoptNode(node.id).catch((err: unknown) => log.warn({ err }, 'taking over this node\'s earlier sessions failed'));
    },
    async stop() {
      await parts?.orphans.stop();
      await sub.unsubscribe(keys.channel).catch(() => undefined);
      sub.destroy();
    },
  };
}

/**
 * XEP-0198 stream management across the cluster (SM_BACKEND=redis, issue
 * 14) as a cluster module (index.ts): the Redis registry (sm-registry.ts)
 * the SM feature writes through, the sm-fenced channel that tells a node to
 * let go of a session resumed elsewhere, and the sessions of dead nodes
 * (sm-orphans.ts). `smRegistry` goes to createXmppServer
 * (XmppServerOptions.smRegistry), before the module's feature registers.
 */
import type { SmStateStore } from '../storage/ports/sm-state.js';
import type { SmRegistry } from '../xmpp/features/stream-management/registry.js';
import type { ModuleContext } from '../xmpp/context.js';
import { PRIORITY } from '../xmpp/priorities.js';
import type { ClusterModule, ClusterServices } from './module.js';
import { connectionOf, type Redis } from './redis.js';
import { createRedisSmRegistry, type RedisSmRegistry } from './sm-registry.js';
import { createOrphans, type Orphans } from './sm-orphans.js';
import { smKeys } from './sm-scripts.js';

/** Seconds a hibernating record outlives its resume max in Redis: a safety net, nodes end them first. */
const MARGIN_SECONDS = 60;

export interface SmModule extends ClusterModule {
  /** The registry for createXmppServer; `stale` is the storage's stale h store. */
  smRegistry(stale: SmStateStore): SmRegistry;
}

export function createSmModule({ node, log, config }: ClusterServices): SmModule {
  const keys = smKeys(node.prefix);
  let parts: { registry: RedisSmRegistry; orphans: Orphans } | undefined;
  let sub: Redis | undefined;
  // Told once per dead node: one told before the registry exists is taken over at start().
  const deadBeforeStart: string[] = [];
  node.onNodeDown((id) => {
    parts?.registry.nodeDown(id);
    return parts ? parts.orphans.adoptNode(id) : void deadBeforeStart.push(id);
  });

  function feature(ctx: ModuleContext): void {
    if (!parts) throw new Error('SM_BACKEND=redis: the cluster\'s smRegistry must be given to createXmppServer');
    const { registry, orphans } = parts;
    orphans.attach(ctx);
    // The snapshot a takeover restores (presence, priority, interested, carbons, blocklist requested, directed), as it changes.
    ctx.hooks.notify('resource-changed', ({ session }) => { registry.snapshot(session); }, PRIORITY.lifecycle.default);
    // A clean stop hands over the dead nodes' sessions waiting here, before the sessions close and drain.
    ctx.hooks.notify('server-shutdown', () => { orphans.stop(ctx); }, PRIORITY.lifecycle.default);
  }

  return {
    smRegistry(stale) {
      const orphans = createOrphans({ node, stale, staleH: config.smStaleHEnabled, log });
      const registry = createRedisSmRegistry({
        node, stale, log, marginSeconds: MARGIN_SECONDS, release: (smid, epoch, deadline) => orphans.watch(smid, epoch, deadline),
        replaced: (smid, epoch) => orphans.replaced(smid, epoch),
      });
      parts = { registry, orphans };
      return registry;
    },
    feature,
    async start() {
      // Pub/sub needs a connection of its own.
      sub = connectionOf(node.redis);
      sub.on('error', (err: Error) => log.warn({ err: { message: err.message } }, 'redis connection error'));
      await sub.connect();
      await sub.subscribe(keys.channel, (message: string) => {
        let notice: { smid: string; epoch: number; from?: string; released?: number; h?: number; draining?: number };
        try { notice = JSON.parse(message) as typeof notice; } catch { return; }
        const { smid, epoch } = notice;
        if (notice.released === 1) return parts?.registry.released(smid, epoch, notice.h);
        if (notice.draining === 1) return parts?.registry.draining(smid, epoch);
        parts?.registry.fenced(smid, epoch, notice.from);
        parts?.orphans.fenced(smid, epoch);
      });
      // This NODE_ID's sessions from a previous run (a crash, then a restart) time out as a dead node's do.
      for (const id of [node.id, ...deadBeforeStart.splice(0)]) await parts?.orphans.adoptNode(id);
    },
    release() {
      parts?.registry.leave();
      parts?.orphans.release();
    },
    async stop() {
      await sub?.unsubscribe(keys.channel).catch(() => undefined);
      sub?.destroy();
    },
  };
}

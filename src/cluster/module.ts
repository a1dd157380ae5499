/**
 * What a cluster module (the session directory, the SM registry) is given
 * and gives back. Its own file so modules need not import index.ts, which
 * imports them (a cycle).
 */
import type { Config } from '../config/index.js';
import type { Feature } from '../server.js';
import type { Log } from '../xmpp/log.js';
import type { Redis } from './redis.js';
import type { ClusterNode } from './node.js';
import type { Delivery } from './delivery.js';
import type { SmStateStore } from '../storage/ports/sm-state.js';
import type { SmRegistry } from '../xmpp/features/stream-management/registry.js';

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
  /**
   * A rolling restart, after leave (roll.ts): what the module still holds
   * for sessions of this node stays in Redis for the others, untouched by
   * whatever happens to them in this process from now on.
   */
  release?(): void;
}

/**
 * Cross-node delivery over Redis Streams: each node has an inbox, the
 * stream `{prefix}inbox:{node}` read by the consumer group `g`. A sender
 * XADDs an entry to the owner's inbox; the owner reads it (XREADGROUP) and
 * acknowledges it (XACK, then XDEL) only after its handler's promise has
 * resolved, so an entry read before a crash is read again (the pending
 * list) by the restarted node, or by the survivor that drains a dead
 * node's inbox. Nothing is trimmed: a full inbox refuses new entries and
 * the sender falls back to its own routing (offline storage or a bounce).
 */

/**
 * What one node asks another to do with one of its sessions (helper A's
 * directory builds them): deliver a stanza to the session at `to` (a full
 * JID), or close the session `sid` at `to` with a stream error condition
 * (RFC 6120 §4.9.3, e.g. `conflict`).
 */
export type InboxEntry =
  | { readonly kind: 'stanza'; readonly to: string; readonly xml: string }
  | { readonly kind: 'close'; readonly to: string; readonly sid: string; readonly condition: string; readonly text?: string };

/** Handles one entry; `from` is the sending node. Resolves when the entry may be acknowledged. */
export type EntryHandler = (entry: InboxEntry, from: string) => Promise<void>;

/** Why `send` refused an entry: the sender routes the stanza itself (offline or bounce). */
export type RefusedReason = 'node-down' | 'inbox-full' | 'redis';

/** `Delivery.send`'s rejection: the entry was NOT added; the caller must fall back (never drop it). */
export class DeliveryRefused extends Error {
  constructor(readonly node: string, readonly reason: RefusedReason, options?: { cause?: unknown }) {
    super(`delivery to node ${JSON.stringify(node)} refused: ${reason}`, options);
    this.name = 'DeliveryRefused';
  }
}

export interface Delivery {
  /**
   * Adds `entry` to `node`'s inbox. Rejects with DeliveryRefused when it was
   * not added: the node's lease is gone (it is dead or left), its inbox is
   * at its cap (entries or bytes), or Redis failed. Entries sent from one
   * node to another are handled there in the order they were sent.
   */
  send(node: string, entry: InboxEntry): Promise<void>;
  /** The handler of this node's inbox (one; set before start). A rejection leaves the entry pending: it is retried. */
  onEntry(handler: EntryHandler): void;
  /**
   * What to do with an entry whose handler failed DELIVERY_MAX_ATTEMPTS
   * times: route it without the local session (offline or bounce). It is
   * acknowledged afterwards whatever happens (logged at error with the entry
   * if this fails too), so one bad entry cannot block the inbox for ever.
   */
  onUndeliverable(handler: EntryHandler): void;
  /** Starts reading this node's inbox: first what it read before a crash and never acknowledged, then new entries. */
  start(): Promise<void>;
  /**
   * Reads what is left in `node`'s inbox (a dead node's, or our own after we
   * left) through the same handler, then deletes the stream unless the node
   * is alive again. Resolves with the number of entries handled.
   */
  drain(node: string): Promise<number>;
  /** Stops reading: the batch in hand is finished and acknowledged, the rest stays in the stream. */
  stop(): Promise<void>;
}

export interface DeliveryOptions {
  readonly log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
  /** CLUSTER_INBOX_MAX_ENTRIES: entries an inbox may hold; past it send() refuses ('inbox-full'). */
  readonly maxEntries: number;
  /** CLUSTER_INBOX_MAX_BYTES: the same in bytes of serialized entries. */
  readonly maxBytes: number;
  /** CLUSTER_DELIVERY_MAX_ATTEMPTS: handler runs before an entry goes to onUndeliverable. */
  readonly maxAttempts: number;
}

/** The Redis Streams delivery of `node` (implementation follows in the next commit). */
export function createRedisDelivery(_node: import('./node.js').ClusterNode, _opts: DeliveryOptions): Delivery {
  throw new Error('createRedisDelivery: not implemented yet');
}

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
import type { ClusterNode } from './node.js';
import { connectionOf, type Redis } from './redis.js';
import { ackEntry, addEntry, deliveryCounts, ensureGroup, inboxKeys, readEntries, removeInbox, type InboxEntry, type InboxKeys, type ReadEntry } from './inbox.js';

export type { InboxEntry } from './inbox.js';

/** Handles one entry; `from` is the sending node. Resolves when the entry may be acknowledged. */
/**
 * What a handler may return instead of nothing: its work goes on off the inbox (the next entries
 * are handled meanwhile), and the entry is acknowledged only once `settled` resolves; rejected, it
 * stays pending and is read again at the next start (never acknowledged before it is done).
 */
export interface Handed { readonly settled: Promise<void> }

export type EntryHandler = (entry: InboxEntry, from: string) => Promise<void | Handed>;

/** Resolves on the next turn of the event loop, after this turn's setImmediate callbacks (the SM journal's batch). */
const nextTurn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

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
  /** Starts reading this node's inbox: first what it read before a crash and never acknowledged, then new entries (logged, and nothing read, when no onEntry handler is set). */
  start(): Promise<void>;
  /**
   * Reads what is left in `node`'s inbox (a dead node's, or our own after we
   * left) through the same handler, then deletes the stream unless the node
   * is alive again. Resolves with the number of entries handled (0, leaving
   * the inbox as it is, when no onEntry handler is set).
   */
  drain(node: string): Promise<number>;
  /**
   * drain() without the wait for the work its entries handed on (a stanza
   * behind an account's delivery line that a client's unacked page of stored
   * messages holds, up to SM_ACK_TIMEOUT): resolves once every entry is read.
   * `handing` true: some of that work is still under way, and the inbox
   * stays; a later drain(node) waits for it and removes the inbox.
   */
  readOut(node: string): Promise<{ handled: number; handing: boolean }>;
  /** Resolves once the work handed on from `node`'s inbox entries read so far is done and acknowledged (or failed). */
  settled(node: string): Promise<void>;
  /**
   * Reads what is in our own inbox, after stop(), while our lease is still
   * current (a rolling restart's leave, before the lease goes): the stream
   * stays, for drain(), which reads what is added until the lease is gone.
   * Resolves with the number of entries handled.
   */
  drainOwn(): Promise<number>;
  /** Stops reading: the batch in hand is finished and acknowledged, the rest stays in the stream. */
  stop(): Promise<void>;
  /** Counters since the start (metrics). */
  stats(): DeliveryStats;
}

export interface DeliveryStats {
  /** Entries added to another node's inbox. */
  readonly sent: number;
  /** Entries send() refused, by reason (the sender routed them itself). */
  readonly refused: Readonly<Record<RefusedReason, number>>;
  /** Entries handled and acknowledged (own inbox and drained ones). */
  readonly handled: number;
  /** Handler failures (the entry stayed pending and was read again). */
  readonly retried: number;
  /** Entries handed to onUndeliverable after DELIVERY_MAX_ATTEMPTS failures. */
  readonly undeliverable: number;
  /** Entries acknowledged without being handled: undecodable, or their fallback failed too (each logged at error with its content). */
  readonly lost: number;
}

export interface DeliveryOptions {
  readonly log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
  /** CLUSTER_INBOX_MAX_ENTRIES: entries an inbox may hold; past it send() refuses ('inbox-full'). */
  readonly maxEntries: number;
  /** CLUSTER_INBOX_MAX_BYTES: the same in bytes of serialized entries. */
  readonly maxBytes: number;
  /** CLUSTER_DELIVERY_MAX_ATTEMPTS: handler runs before an entry goes to onUndeliverable. */
  readonly maxAttempts: number;
  /** Entries read at once (XREADGROUP COUNT); default 64. */
  readonly batch?: number;
  /** How long one read waits for new entries (XREADGROUP BLOCK, ms); default 2000. */
  readonly blockMs?: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const isNoGroup = (err: unknown) => err instanceof Error && err.message.startsWith('NOGROUP');
// A dead inbox found not empty after draining (entries added just before the lease ran out) is read again, this many times.
const DRAIN_ROUNDS = 5;
// Reads of a pending entry beyond its attempts that mean it was never finished for another reason (the process died).
const CRASH_READS = 10;
// Entries with a failed attempt remembered (one per inbox being read at a time, in practice).
const MAX_TRACKED = 1000;

/**
 * The Redis Streams delivery of `node`. Own inbox: a dedicated connection
 * (XREADGROUP BLOCK holds it) reads the pending list first, then new
 * entries, handling one entry at a time in stream order. A handler failure
 * stops the batch: after a backoff the pending list is read again from the
 * start, so later entries never overtake the failed one, and XPENDING's
 * delivery counter bounds the attempts (then onUndeliverable).
 */
export function createRedisDelivery(node: ClusterNode, opts: DeliveryOptions): Delivery {
  const { redis, prefix, id } = node;
  const { log } = opts;
  const batch = opts.batch ?? 64;
  const blockMs = opts.blockMs ?? 2000;
  const own = inboxKeys(prefix, id);
  const counts = { sent: 0, handled: 0, retried: 0, undeliverable: 0, lost: 0 };
  const refused: Record<RefusedReason, number> = { 'node-down': 0, 'inbox-full': 0, redis: 0 };
  let handler: EntryHandler | undefined;
  let fallback: EntryHandler | undefined;
  let reader: Redis | undefined;
  let loop: Promise<void> | undefined;
  let stopping = false;
  /** Handler failures per entry id: bounded retries (maxAttempts), then onUndeliverable. */
  const failures = new Map<string, number>();

  async function ack(keys: InboxKeys, e: ReadEntry): Promise<void> {
    await ackEntry(redis, keys, e.id, e.size);
  }

  /**
   * Sends the ACK without waiting; a failure surfaces when the batch awaits `acks` (and is never an
   * unhandled rejection). Issued on the next turn, not at once: a stanza the handler gave a session
   * with stream management is written to the SM journal by a batch that goes out on this turn's
   * setImmediate (sm-batch.ts), on this same connection, so the journal write reaches Redis before
   * the ACK and a kill -9 between the two cannot lose the stanza (acknowledged, in no queue).
   */
  function ackLater(keys: InboxKeys, e: ReadEntry, acks: Promise<void>[]): void {
    const sent = nextTurn().then(() => ack(keys, e));
    sent.catch(() => undefined);
    acks.push(sent);
  }

  // Entries whose handler handed its work on (Handed), by inbox and id: acknowledged when it is done,
  // and skipped if the pending list is read again meanwhile (they are not handled twice).
  const handedOn = new Map<string, Promise<void>>();
  const handedKey = (keys: InboxKeys, e: ReadEntry): string => `${keys.node}\0${e.id}`;
  function ackWhenSettled(keys: InboxKeys, e: ReadEntry, settled: Promise<void>): void {
    const key = handedKey(keys, e);
    // On the turn after the work is done, as ackLater: a stanza it gave a session is in the SM journal's batch first.
    const done = settled.then(nextTurn).then(() => ack(keys, e), (err: unknown) => {
      counts.retried++;
      log.warn({ err, event: 'cluster-entry-retry', inbox: keys.node, id: e.id }, 'the work an inbox entry handed on failed: it stays pending');
    }).catch((err: unknown) => {
      log.warn({ err, event: 'cluster-entry-ack-failed', inbox: keys.node, id: e.id }, 'acknowledging an inbox entry failed: it stays pending');
    }).finally(() => { handedOn.delete(key); });
    handedOn.set(key, done);
  }
  const handedFrom = (keys: InboxKeys): Array<Promise<void>> => {
    const prefix = `${keys.node}\0`;
    return [...handedOn].filter(([k]) => k.startsWith(prefix)).map(([, p]) => p);
  };
  /** Whether work handed on from `keys`' entries is still under way. */
  const handing = (keys: InboxKeys): boolean => handedFrom(keys).length > 0;
  /** Resolves once the work handed on from `keys`' entries so far is done and acknowledged (or failed). */
  async function handedSettled(keys: InboxKeys): Promise<void> {
    await Promise.all(handedFrom(keys));
  }

  /**
   * Reads another node's inbox (`keys`) until it is empty, then removes it unless the node is alive
   * again. `wait` false: returns once read if some entries' work is still handed on (the inbox stays).
   */
  async function drainInbox(keys: InboxKeys, wait: boolean): Promise<{ handled: number; handing: boolean }> {
    let handled = 0;
    if (!handler) return { handled, handing: false };
    for (let round = 0; round < DRAIN_ROUNDS; round++) {
      if ((await redis.exists(keys.lease)) === 1) return { handled, handing: false };
      handled += await consume(keys, redis, false);
      if (!wait && handing(keys)) return { handled, handing: true };
      await handedSettled(keys);
      if ((await removeInbox(redis, keys)) !== 'not-empty') return { handled, handing: false };
    }
    log.warn({ event: 'cluster-inbox-not-drained', inbox: keys.node }, 'an inbox kept receiving entries while it was drained');
    return { handled, handing: false };
  }

  /** Gives up on an entry: its fallback routes it without the target session; acknowledged either way. */
  async function undeliverable(keys: InboxKeys, e: ReadEntry, entry: InboxEntry): Promise<void> {
    counts.undeliverable++;
    try {
      if (!fallback) throw new Error('no onUndeliverable handler');
      await fallback(entry, e.from);
    } catch (err) {
      counts.lost++;
      log.error({ err, event: 'cluster-entry-lost', inbox: keys.node, from: e.from, entry: e.raw }, 'an inbox entry could not be delivered nor routed');
    }
    await ack(keys, e);
  }

  /**
   * Handles `entries` in order; false at the first handler failure (it and
   * the rest stay pending). Each entry's ACK is sent once its handler has
   * finished, without waiting for Redis's answer before the next entry
   * (node-redis keeps them in order on the connection): one round trip per
   * read instead of one per entry. All are answered before the next read.
   */
  async function processBatch(keys: InboxKeys, entries: readonly ReadEntry[], pending: boolean): Promise<boolean> {
    const acks: Promise<void>[] = [];
    try {
      return await handleBatch(keys, entries, pending, acks);
    } finally {
      await Promise.all(acks);
    }
  }

  async function handleBatch(keys: InboxKeys, entries: readonly ReadEntry[], pending: boolean, acks: Promise<void>[]): Promise<boolean> {
    const reads = pending && entries.length > 0
      ? await deliveryCounts(redis, keys, entries[0]!.id, entries[entries.length - 1]!.id, entries.length)
      : undefined;
    for (const e of entries) {
      // Handed on earlier and read again from the pending list: acknowledged when that work is done.
      if (handedOn.has(handedKey(keys, e))) continue;
      if (e.entry === undefined) {
        // Deleted meanwhile (raw ''), or not ours to understand: never handled, said so.
        if (e.raw !== '') {
          counts.lost++;
          log.error({ event: 'cluster-entry-lost', inbox: keys.node, from: e.from, entry: e.raw }, 'an inbox entry could not be decoded');
        }
        ackLater(keys, e, acks);
        continue;
      }
      const failed = failures.get(e.id) ?? 0;
      // Read this often without an acknowledgement: it most likely ends the process each time (a crash loop).
      if (failed >= opts.maxAttempts || (reads?.get(e.id) ?? 0) > opts.maxAttempts + CRASH_READS) {
        failures.delete(e.id);
        await undeliverable(keys, e, e.entry);
        continue;
      }
      let out: void | Handed;
      try {
        out = await handler!(e.entry, e.from);
      } catch (err) {
        counts.retried++;
        if (failures.size >= MAX_TRACKED) failures.clear();
        failures.set(e.id, failed + 1);
        log.warn({ err, event: 'cluster-entry-retry', inbox: keys.node, id: e.id, attempt: failed + 1 }, 'handling an inbox entry failed: it stays pending');
        return false;
      }
      failures.delete(e.id);
      counts.handled++;
      if (out) ackWhenSettled(keys, e, out.settled); else ackLater(keys, e, acks);
    }
    return true;
  }

  /**
   * Reads `keys`' inbox, pending entries first (from '0'), then new ones
   * ('>'): until it is empty (a drain), or until stop() (our own, `block`).
   * After a failure only the head of the pending list is read again, so
   * the entries behind it are neither handled early nor read for nothing.
   */
  async function consume(keys: InboxKeys, conn: Redis, block: boolean): Promise<number> {
    let cursor = '0';
    let count = batch;
    let backoff = 0;
    let handled = 0;
    while (!(block && stopping)) {
      let entries: ReadEntry[];
      try {
        entries = await readEntries(conn, keys, cursor, count, block && cursor === '>' ? blockMs : undefined);
      } catch (err) {
        if (block && stopping) break;
        if (!isNoGroup(err)) throw err;
        if (!block) return handled;
        await ensureGroup(redis, keys);
        continue;
      }
      if (entries.length === 0) {
        if (cursor === '>' && !block) return handled;
        cursor = '>';
        continue;
      }
      if (!(await processBatch(keys, entries, cursor !== '>'))) {
        cursor = '0';
        count = 1;
        await sleep(Math.min(50 * 2 ** ++backoff, 2000));
        continue;
      }
      backoff = 0;
      count = batch;
      handled += entries.length;
      if (cursor !== '>') cursor = entries[entries.length - 1]!.id;
    }
    return handled;
  }

  async function run(conn: Redis): Promise<void> {
    while (!stopping) {
      try {
        await consume(own, conn, true);
      } catch (err) {
        if (stopping) break;
        log.warn({ err, event: 'cluster-inbox-error' }, 'reading the inbox failed: trying again');
        await sleep(500);
      }
    }
  }

  return {
    async send(target, entry) {
      if (!redis.isReady) {
        refused.redis++;
        throw new DeliveryRefused(target, 'redis');
      }
      let result;
      try {
        result = await addEntry(redis, inboxKeys(prefix, target), opts, id, entry);
      } catch (err) {
        refused.redis++;
        throw new DeliveryRefused(target, 'redis', { cause: err });
      }
      if (result !== 'added') {
        refused[result]++;
        throw new DeliveryRefused(target, result);
      }
      counts.sent++;
    },
    onEntry(h) { handler = h; },
    onUndeliverable(h) { fallback = h; },
    async start() {
      if (loop) return;
      if (!handler) {
        // No module handles entries (no directory): nobody sends us any either; say so all the same.
        log.error({ event: 'cluster-no-inbox-handler' }, 'no inbox handler is registered: entries addressed to this node stay in its inbox');
        return;
      }
      await ensureGroup(redis, own);
      reader = connectionOf(redis);
      reader.on('error', (err: Error) => log.warn({ err: { message: err.message } }, 'redis inbox connection error'));
      await reader.connect();
      loop = run(reader);
    },
    async drain(target) {
      return (await drainInbox(inboxKeys(prefix, target), true)).handled;
    },
    readOut: (target) => drainInbox(inboxKeys(prefix, target), false),
    settled: (target) => handedSettled(inboxKeys(prefix, target)),
    async drainOwn() {
      if (!handler) return 0;
      const handled = await consume(own, redis, false);
      await handedSettled(own);
      return handled;
    },
    async stop() {
      stopping = true;
      // The reader only reads: closing it now ends a blocked read (what it had read stays pending),
      // and the batch in hand, which acknowledges on the main connection, is finished.
      if (reader?.isOpen) reader.destroy();
      await loop;
      await handedSettled(own);
    },
    stats: () => ({ ...counts, refused: { ...refused } }),
  };
}

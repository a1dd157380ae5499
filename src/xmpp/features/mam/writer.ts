import type { ArchiveEntry, ArchiveStore } from '../../../storage/ports/archive.js';

/** Entries a batch collects at most before it is closed (committed as soon as the store is free). */
export const MAX_BATCH = 500;
/**
 * Entries one commit takes at most. A store that is behind has several
 * closed batches waiting: they go in one transaction, up to this many
 * entries, because SQLite's cost per commit is mostly the B-tree pages it
 * rewrites into the WAL (each account's index leaf once per commit however
 * many of its rows it holds), so a larger commit costs less per row. Still
 * bounded: the writer's transaction holds SQLite's write lock meanwhile.
 */
export const MAX_COMMIT = 4000;
/**
 * How long a batch collects entries before it is committed. Every SQLite
 * commit rewrites the B-tree pages it touched (the table and its indexes)
 * into the WAL, and checkpoints of a fast-growing WAL fsync: one commit per
 * event-loop turn cost the benchmark 80 % of its messages/s, one per 20 ms
 * costs little. Only XEP-0198 <a/>s wait this long.
 */
export const BATCH_MS = 20;

export interface ArchiveWriter {
  /** Queues entries (never refused); the promise settles once they are committed (rejected with the storage's error). */
  write(entries: readonly ArchiveEntry[]): Promise<void>;
  /**
   * Undefined while the queue holds less than `maxBytes`; else a promise that
   * resolves once commits have brought it under half of that (hysteresis: a
   * full queue lets a batch's worth through at a time, not one message).
   */
  room(): Promise<void> | undefined;
  /** Commits what is queued now and resolves once everything queued so far is committed or failed (shutdown). */
  flush(): Promise<void>;
  /** Entries queued and not yet committed. */
  readonly pending: number;
  /** Their bytes (entryBytes). */
  readonly pendingBytes: number;
}

/**
 * What an entry holds in memory, roughly: its strings as UTF-16 plus a
 * constant for the object. The two entries of one message share their
 * stanza string; each is counted, so the bound errs on the safe side.
 */
export function entryBytes(e: ArchiveEntry): number {
  return 2 * (e.stanza.length + e.with.length + e.id.length + e.host.length + e.username.length) + 64;
}

interface Batch {
  readonly entries: ArchiveEntry[];
  bytes: number;
  readonly done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
  timer?: NodeJS.Timeout;
}

interface Room {
  readonly promise: Promise<void>;
  open(): void;
}

function newRoom(): Room {
  let open!: () => void;
  const promise = new Promise<void>((res) => { open = res; });
  return { promise, open };
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const done = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  // The batch's callers each get `done`; an unobserved rejection is theirs, not an unhandled one.
  done.catch(() => undefined);
  return { entries: [], bytes: 0, done, resolve, reject };
}

/**
 * Archive writes batched off the hot path: what arrives within BATCH_MS
 * (or MAX_BATCH entries, whichever comes first) is one batch; batches are
 * committed one commit at a time, in order, and those that wait for the
 * store while it commits go together in the next commit (up to
 * MAX_COMMIT entries; group commit: the more behind, the cheaper per row).
 * Each caller gets the promise of its batch: the XEP-0198 <a/> that
 * covers a message waits for it (see ARCHITECTURE.md, Message archive).
 * The queue is bounded in bytes (MAM_WRITE_QUEUE_BYTES): past `maxBytes`,
 * room() makes the message path wait, so a store slower than the senders
 * slows the senders (their input queues in the core, bounded) instead of
 * growing the queue.
 */
export function createArchiveWriter(store: Pick<ArchiveStore, 'append'>, maxBytes: number): ArchiveWriter {
  let open: Batch | undefined;
  // Closed batches waiting for the store, oldest first.
  const closed: Batch[] = [];
  let busy: Promise<void> | undefined;
  let pending = 0;
  let pendingBytes = 0;
  let full: Room | undefined;

  /** The oldest closed batches, as many as fit in one commit (at least one). */
  const takeCommit = (): Batch[] => {
    const taken = [closed.shift()!];
    let n = taken[0]!.entries.length;
    while (closed.length > 0 && n + closed[0]!.entries.length <= MAX_COMMIT) {
      n += closed[0]!.entries.length;
      taken.push(closed.shift()!);
    }
    return taken;
  };
  const commit = async (batches: readonly Batch[]): Promise<void> => {
    const entries = batches.length === 1 ? batches[0]!.entries : batches.flatMap((b) => b.entries);
    try {
      await store.append(entries);
      for (const b of batches) b.resolve();
    } catch (err) {
      for (const b of batches) b.reject(err);
    } finally {
      for (const b of batches) {
        pending -= b.entries.length;
        pendingBytes -= b.bytes;
      }
      if (full && pendingBytes < maxBytes / 2) { full.open(); full = undefined; }
    }
  };
  /** Commits the waiting batches, one commit at a time, until none is left. */
  const drain = async (): Promise<void> => {
    while (closed.length > 0) await commit(takeCommit());
    busy = undefined;
  };
  /** Ends the open batch: it is committed after the ones before it. */
  const close = (): void => {
    const batch = open;
    if (!batch) return;
    open = undefined;
    clearTimeout(batch.timer);
    closed.push(batch);
    busy ??= drain();
  };

  return {
    write(entries) {
      if (entries.length === 0) return Promise.resolve();
      if (!open) {
        open = newBatch();
        open.timer = setTimeout(close, BATCH_MS);
      }
      const batch = open;
      const bytes = entries.reduce((n, e) => n + entryBytes(e), 0);
      batch.entries.push(...entries);
      batch.bytes += bytes;
      pending += entries.length;
      pendingBytes += bytes;
      // A full queue is committed now: waiting out BATCH_MS would only keep the senders waiting.
      if (batch.entries.length >= MAX_BATCH || pendingBytes >= maxBytes) close();
      return batch.done;
    },
    room() {
      if (pendingBytes < maxBytes) return undefined;
      full ??= newRoom();
      return full.promise;
    },
    async flush() {
      close();
      await busy;
    },
    get pending() { return pending; },
    get pendingBytes() { return pendingBytes; },
  };
}

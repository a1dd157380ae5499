import type { ArchiveEntry, ArchiveStore } from '../../../storage/ports/archive.js';

/** Entries one commit takes at most: a burst is written in several bounded transactions, never one huge one. */
export const MAX_BATCH = 500;
/**
 * How long a batch collects entries before it is committed. Every SQLite
 * commit rewrites the B-tree pages it touched (the table and five indexes)
 * into the WAL, and checkpoints of a fast-growing WAL fsync on the event
 * loop: one commit per event-loop turn cost the benchmark 80 % of its
 * messages/s, one per 20 ms costs little. Only XEP-0198 <a/>s wait this long.
 */
export const BATCH_MS = 20;

export interface ArchiveWriter {
  /** Queues entries; the promise settles once they are committed (rejected with the storage's error). */
  write(entries: readonly ArchiveEntry[]): Promise<void>;
  /** Commits what is queued now and resolves once everything queued so far is committed or failed (shutdown). */
  flush(): Promise<void>;
  /** Entries queued and not yet committed. */
  readonly pending: number;
}

interface Batch {
  readonly entries: ArchiveEntry[];
  readonly done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
  timer?: NodeJS.Timeout;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const done = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  // The batch's callers each get `done`; an unobserved rejection is theirs, not an unhandled one.
  done.catch(() => undefined);
  return { entries: [], done, resolve, reject };
}

/**
 * Archive writes batched off the hot path: what arrives within BATCH_MS
 * (or MAX_BATCH entries, whichever comes first) is committed together in
 * one transaction, one commit at a time, in order. Each caller gets the
 * promise of its batch: the XEP-0198 <a/> that covers a message waits for
 * it (see ARCHITECTURE.md, Message archive).
 */
export function createArchiveWriter(store: Pick<ArchiveStore, 'append'>): ArchiveWriter {
  let open: Batch | undefined;
  let committing: Promise<void> = Promise.resolve();
  let pending = 0;

  const commit = async (batch: Batch): Promise<void> => {
    try {
      await store.append(batch.entries);
      batch.resolve();
    } catch (err) {
      batch.reject(err);
    } finally {
      pending -= batch.entries.length;
    }
  };
  /** Ends the open batch: it is committed after the ones before it. */
  const close = (): void => {
    const batch = open;
    if (!batch) return;
    open = undefined;
    clearTimeout(batch.timer);
    committing = committing.then(() => commit(batch));
  };

  return {
    write(entries) {
      if (entries.length === 0) return Promise.resolve();
      if (!open) {
        open = newBatch();
        open.timer = setTimeout(close, BATCH_MS);
      }
      const batch = open;
      batch.entries.push(...entries);
      pending += entries.length;
      if (batch.entries.length >= MAX_BATCH) close();
      return batch.done;
    },
    async flush() {
      close();
      await committing;
    },
    get pending() { return pending; },
  };
}

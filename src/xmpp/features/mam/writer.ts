import type { ArchiveEntry, ArchiveStore } from '../../../storage/ports/archive.js';

/** Entries one commit takes at most: a burst is written in several bounded transactions, never one huge one. */
export const MAX_BATCH = 500;

export interface ArchiveWriter {
  /** Queues entries; the promise settles once they are committed (rejected with the storage's error). */
  write(entries: readonly ArchiveEntry[]): Promise<void>;
  /** Resolves once everything queued so far is committed or failed (shutdown). */
  flush(): Promise<void>;
  /** Entries queued and not yet committed. */
  readonly pending: number;
}

interface Batch {
  readonly entries: ArchiveEntry[];
  readonly done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * Archive writes batched off the hot path: what the messages of one
 * event-loop turn archive is committed together, in one transaction, on
 * the next turn (setImmediate), one commit at a time. Each caller gets the
 * promise of its batch, so the message's route can wait for the commit
 * before the session's next stanza, and with it the XEP-0198 <a/> that
 * acknowledges the message (see ARCHITECTURE.md, Message archive).
 */
export function createArchiveWriter(store: Pick<ArchiveStore, 'append'>): ArchiveWriter {
  let open: Batch | undefined;
  let committing: Promise<void> | undefined;
  let pending = 0;

  const newBatch = (): Batch => {
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
    // The batch's callers each get `done`; an unobserved rejection is theirs, not an unhandled one.
    done.catch(() => undefined);
    return { entries: [], done, resolve, reject };
  };

  const commit = async (batch: Batch): Promise<void> => {
    await committing;
    try {
      await store.append(batch.entries);
      batch.resolve();
    } catch (err) {
      batch.reject(err);
    } finally {
      pending -= batch.entries.length;
    }
  };

  const schedule = (batch: Batch): void => {
    const run = commit(batch);
    committing = run;
    void run.finally(() => { if (committing === run) committing = undefined; });
  };

  return {
    write(entries) {
      if (entries.length === 0) return Promise.resolve();
      if (!open || open.entries.length >= MAX_BATCH) {
        const batch = open = newBatch();
        setImmediate(() => {
          if (open === batch) open = undefined;
          schedule(batch);
        });
      }
      open.entries.push(...entries);
      pending += entries.length;
      return open.done;
    },
    async flush() {
      while (pending > 0) {
        await (open?.done ?? committing)?.catch(() => undefined);
        if (open === undefined && committing === undefined && pending > 0) break;
      }
    },
    get pending() { return pending; },
  };
}

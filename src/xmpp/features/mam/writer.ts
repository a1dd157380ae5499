import type { ArchiveStore } from '../../../storage/ports/archive.js';
import { ArchivePack, entriesOf, unpack, type PackedRecord } from '../../../storage/ports/archive-pack.js';

/** Messages a batch collects at most before it is closed (committed as soon as the store is free). */
export const MAX_BATCH = 3000;
/**
 * Messages one commit takes at most. A store that is behind has several
 * closed batches waiting: they go in one transaction, up to this many
 * messages, because SQLite's cost per commit grows with the accounts it
 * touches more than with its rows (one run per account and correspondent
 * per commit, storage/sqlite/archive-runs.ts, and the pages rewritten into
 * the WAL), so a larger commit costs less per row. Still bounded: the
 * writer's transaction holds SQLite's write lock meanwhile, and a write on
 * the main connection waits for it on the event loop (a commit of 6,000
 * messages took 22–26 ms on an idle core of the benchmark's machine, 4,000
 * about 15: `bench/mam-append.mjs --pairs 50 --batch 12000`, RESULTS.md
 * session 36).
 */
export const MAX_COMMIT = 6000;
/**
 * How long a batch collects messages before it is committed. Every SQLite
 * commit writes the B-tree pages it touched into the WAL (the table's last
 * page, and a leaf of `archive_runs` for each account and correspondent it
 * adds to, whatever the batch's size), and the checkpoint copies them again:
 * the fewer commits, the less the writer writes per message. One commit per
 * event-loop turn cost the benchmark 80 % of its messages/s; 50 ms and 2,000
 * messages cost the writer 8.6–9.3 µs of CPU per message against 13.8–15.0
 * at 20 ms and 500; 100 ms and 3,000 (batches of about 3,100 messages at
 * the benchmark's rate) 1.1–2.2 µs of the gateway's CPU per message less
 * than 50 ms and 2,000 in three same-run comparisons, while the messages/s
 * ratio moved within its noise (bench/RESULTS.md, "Message archive",
 * sessions 35 and 36).
 * Nothing on a message's path waits for it: only the XEP-0198 <a/> that
 * covers a message does (at most this, plus the commit), and a client's
 * acknowledgement timeout is seconds.
 */
export const BATCH_MS = 100;

/**
 * A commit that fails is tried again (the same batches, in order, the later ones waiting behind
 * it) after RETRY_FIRST_MS, doubling up to RETRY_MAX_MS, for as long as the store has been
 * failing less than RETRY_FOR_MS: a database restarting, a lock held by another process past
 * SQLite's busy timeout, a disk full for a moment lose nothing. Meanwhile the XEP-0198 <a/>s
 * wait and, once the queue is full, so do the senders (room()). A store failing longer is
 * taken for broken: the batch fails (the archive misses it: logged), and so does each later
 * commit at its first failure, until one succeeds, so chat goes on without the archive.
 */
export const RETRY_FIRST_MS = 100;
export const RETRY_MAX_MS = 2000;
export const RETRY_FOR_MS = 30_000;

export interface WriterOptions {
  /** How long a failing store is tried again (RETRY_FOR_MS). */
  readonly retryForMs?: number;
  /** A commit failed and is tried again in `delayMs` (for the log). */
  readonly onRetry?: (err: unknown, delayMs: number) => void;
  readonly now?: () => number;
}

export interface ArchiveWriter {
  /**
   * Queues a message for the archives that keep it (never refused), packed at once
   * (storage/ports/archive-pack.ts: a stanza given as an element is serialised then, as it is
   * at the call; nothing of `record` is kept, so the caller may fill it again for the next);
   * the promise settles once it is committed (rejected with the storage's error).
   */
  write(record: PackedRecord): Promise<void>;
  /**
   * Undefined while the queue holds less than `maxBytes`; else a promise that
   * resolves once commits have brought it under half of that (hysteresis: a
   * full queue lets a batch's worth through at a time, not one message).
   */
  room(): Promise<void> | undefined;
  /** Commits what is queued now and resolves once everything queued so far is committed or failed. */
  flush(): Promise<void>;
  /**
   * Shutdown: flush(), with no more retries from now on (a failing commit fails at its next
   * failure): the drain must end within SHUTDOWN_TIMEOUT, and a store that is down then stays down.
   */
  close(): Promise<void>;
  /** Messages queued and not yet committed. */
  readonly pending: number;
  /** Their packed bytes. */
  readonly pendingBytes: number;
}

interface Batch {
  readonly pack: ArchivePack;
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
  return { pack: new ArchivePack(), done, resolve, reject };
}

/**
 * Archive writes batched off the hot path: what arrives within BATCH_MS
 * (or MAX_BATCH messages, whichever comes first) is one batch; batches are
 * committed one commit at a time, in order, and those that wait for the
 * store while it commits go together in the next commit (up to
 * MAX_COMMIT messages; group commit: the more behind, the cheaper per row).
 * Each caller gets the promise of its batch: the XEP-0198 <a/> that
 * covers a message waits for it (see ARCHITECTURE.md, Message archive).
 * The queue is bounded in bytes (MAM_WRITE_QUEUE_BYTES): past `maxBytes`,
 * room() makes the message path wait, so a store slower than the senders
 * slows the senders (their input queues in the core, bounded) instead of
 * growing the queue.
 */
export function createArchiveWriter(store: Pick<ArchiveStore, 'append' | 'appendPacked'>, maxBytes: number, opts: WriterOptions = {}): ArchiveWriter {
  const retryForMs = opts.retryForMs ?? RETRY_FOR_MS;
  const now = opts.now ?? Date.now;
  // Since when the store has failed every commit (undefined: the last one succeeded).
  let failingSince: number | undefined;
  let retrying = true;
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
    let n = taken[0]!.pack.count;
    while (closed.length > 0 && n + closed[0]!.pack.count <= MAX_COMMIT) {
      n += closed[0]!.pack.count;
      taken.push(closed.shift()!);
    }
    return taken;
  };
  const commit = async (batches: readonly Batch[]): Promise<void> => {
    // Counted before the store takes the chunks (a writer thread detaches them).
    const count = batches.reduce((n, b) => n + b.pack.count, 0);
    const bytes = batches.reduce((n, b) => n + b.pack.bytes, 0);
    try {
      await put(batches.flatMap((b) => b.pack.views()));
      for (const b of batches) b.resolve();
    } catch (err) {
      for (const b of batches) b.reject(err);
    } finally {
      // The store is done with the chunks (committed, or failed for good): later packs reuse them.
      for (const b of batches) b.pack.release();
      pending -= count;
      pendingBytes -= bytes;
      if (full && pendingBytes < maxBytes / 2) { full.open(); full = undefined; }
    }
  };
  /** One commit of the records, tried again while the store has been failing less than retryForMs. */
  const put = async (views: readonly Uint8Array[]): Promise<void> => {
    for (let delay = RETRY_FIRST_MS; ; delay = Math.min(2 * delay, RETRY_MAX_MS)) {
      try {
        if (store.appendPacked) await store.appendPacked(views);
        else await store.append([...unpack(views)].flatMap(entriesOf));
        failingSince = undefined;
        return;
      } catch (err) {
        const t = now();
        failingSince ??= t;
        const left = failingSince + retryForMs - t;
        if (left <= 0 || !retrying) throw err;
        const wait = Math.min(delay, left);
        opts.onRetry?.(err, wait);
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
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
    write(record) {
      if (!open) {
        open = newBatch();
        open.timer = setTimeout(close, BATCH_MS);
      }
      const batch = open;
      pendingBytes += batch.pack.add(record);
      pending++;
      // A full queue is committed now: waiting out BATCH_MS would only keep the senders waiting.
      if (batch.pack.count >= MAX_BATCH || pendingBytes >= maxBytes) close();
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
    async close() {
      retrying = false;
      close();
      await busy;
    },
    get pending() { return pending; },
    get pendingBytes() { return pendingBytes; },
  };
}

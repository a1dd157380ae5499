/** Archive appends committed on a worker thread (archive-worker.ts), awaited by the caller. */
import { Worker } from 'node:worker_threads';
import type { ArchiveEntry } from '../ports/archive.js';

export interface ThreadedAppend {
  append(entries: readonly ArchiveEntry[]): Promise<void>;
  /** Packed records (archive-pack.ts): the thread reads their chunks in shared memory; the caller keeps them (to try again with). */
  appendPacked(views: readonly Uint8Array[]): Promise<void>;
  /**
   * An online copy of the database into `file` (existing, empty) through the SQLite backup API,
   * made by the thread on its connection in one step (archive-worker.ts: why).
   */
  backup(file: string): Promise<void>;
  /** Waits for the batches posted so far, then stops the thread. */
  close(): Promise<void>;
}

interface Waiting { resolve(): void; reject(err: Error): void }

// Run from src/ by the tests (a TypeScript loader, inherited by the worker) or from dist/.
const SCRIPT = new URL(import.meta.url.endsWith('.ts') ? './archive-worker.ts' : './archive-worker.js', import.meta.url);

export function startArchiveThread(file: string, busyTimeoutMs: number): ThreadedAppend {
  const worker = new Worker(SCRIPT, { workerData: { file, busyTimeoutMs } });
  // The thread must not keep the process alive by itself (storage.close() stops it).
  worker.unref();
  const waiting = new Map<number, Waiting>();
  let next = 0;
  let failed: Error | undefined;
  worker.on('message', ({ id, error }: { id: number; error?: string }) => {
    const w = waiting.get(id);
    waiting.delete(id);
    if (error === undefined) w?.resolve();
    else w?.reject(new Error(`archive write failed: ${error}`));
  });
  worker.on('error', (err) => {
    failed = err;
    for (const w of waiting.values()) w.reject(err);
    waiting.clear();
  });
  const idle = async (): Promise<void> => {
    while (waiting.size > 0) await new Promise((resolve) => setTimeout(resolve, 5));
  };
  // Nothing is ever transferred (archive-pack.ts: a detached ArrayBuffer slows every typed-array access of the event loop).
  const post = (job: object): Promise<void> => {
    if (failed) return Promise.reject(failed);
    const id = ++next;
    return new Promise<void>((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      worker.postMessage({ id, ...job });
    });
  };
  return {
    append: (entries) => post({ entries }),
    // The chunks are SharedArrayBuffers (ArchivePack): shared with the thread, not copied.
    appendPacked: (views) => post({ packed: views }),
    backup: (file) => post({ backup: file }),
    async close() {
      await idle();
      await worker.terminate();
    },
  };
}

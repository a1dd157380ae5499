/**
 * The SQLite archive's writer thread: its own connection to the database
 * file, committing the batches the archive store posts (one transaction
 * each, in order) and answering each with its id, and the error if any.
 * A batch is packed records (their chunks in shared memory, read where they
 * are) or entries. Here, not on the event loop, because a commit and above all
 * the WAL checkpoints that follow commits fsync, and better-sqlite3 is
 * synchronous.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { ArchiveEntry } from '../ports/archive.js';
import { unpack } from '../ports/archive-pack.js';
import { archiveAppender } from './archive-rows.js';
import { WRITER_CHECKPOINT_PAGES } from './checkpoints.js';
import { BACKUP_IN_ONE_STEP } from './backup-steps.js';

interface Job { readonly id: number; readonly packed?: readonly Uint8Array[]; readonly entries?: readonly ArchiveEntry[]; readonly backup?: string }

const { file, busyTimeoutMs } = workerData as { file: string; busyTimeoutMs: number };
const db = new Database(file);
db.pragma(`busy_timeout = ${Math.trunc(busyTimeoutMs)}`);
db.pragma('synchronous = NORMAL');
db.pragma('foreign_keys = ON');
db.pragma(`wal_autocheckpoint = ${WRITER_CHECKPOINT_PAGES}`);
const append = archiveAppender(db);

parentPort!.on('message', (job: Job) => {
  if (job.backup !== undefined) {
    db.backup(job.backup, BACKUP_IN_ONE_STEP).then(
      () => parentPort!.postMessage({ id: job.id }),
      (err: unknown) => parentPort!.postMessage({ id: job.id, error: err instanceof Error ? err.message : String(err) }));
    return;
  }
  try {
    if (job.packed) append.records(unpack(job.packed)); else append.entries(job.entries ?? []);
    parentPort!.postMessage({ id: job.id });
  } catch (err) {
    // Rolled back: the server still holds the records, and tries again (features/mam/writer.ts).
    parentPort!.postMessage({ id: job.id, error: err instanceof Error ? err.message : String(err) });
  }
});

/**
 * How the SQLite backup API is stepped, by the server (its archive thread: archive-worker.ts)
 * and by the CLI (backup from the file). A step after a commit by another connection starts the
 * copy again from the first page (this connection's own commits are carried into the copy).
 * In better-sqlite3's default steps of 100 pages, one per turn of the event loop, a database of
 * some thousand pages was never copied while another connection committed now and then (the
 * archive thread, a batch every 50 ms while messages flow; a running server). So after its
 * first step, which copies nothing, every page is copied in one step: one read snapshot, so the
 * copy is consistent and nothing another connection commits meanwhile can restart it.
 */
export const BACKUP_IN_ONE_STEP = { progress: (): number => 0x7fffffff } as const;

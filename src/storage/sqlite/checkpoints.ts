/**
 * Who checkpoints the WAL, and how often. A checkpoint copies each page the WAL holds (its
 * newest version) into the database file and fsyncs. The archive writer rewrites the same
 * index leaves commit after commit (a leaf per account), so the longer the WAL between
 * checkpoints, the fewer copies per message: at 10,000 pages (40 MiB of WAL at most) instead of
 * SQLite's 1,000 the writer's CPU per archived message fell from 8.6–9.3 to 6.8–7.3 µs
 * (bench/RESULTS.md, "Message archive"). The writer thread's connection checkpoints: the main
 * connection's threshold is twice as high, so a commit on the event loop (a roster change, an
 * offline message) does not run the checkpoint and its fsync there, unless the thread could not.
 */
export const WRITER_CHECKPOINT_PAGES = 10_000;
export const MAIN_CHECKPOINT_PAGES = 2 * WRITER_CHECKPOINT_PAGES;

/**
 * The embedded SQLite backend: one file, `<dataDir>/gateway.sqlite`, shared
 * by the running server and the CLI.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import type { Clock, Storage } from '../types.js';
import { migrate } from './migrations.js';
import { MAIN_CHECKPOINT_PAGES } from './checkpoints.js';
import { likelyCause, StorageOpenError } from './open-error.js';
import { createSqliteUserStore } from './users.js';
import { createSqliteRosterStore } from './roster.js';
import { createSqliteBlocklistStore } from './blocklist.js';
import { createSqliteOfflineStore } from './offline.js';
import { createSqliteVcardStore } from './vcard.js';
import { createSqliteSmStateStore } from './sm-state.js';
import { createSqlitePepStore } from './pep.js';
import { createSqliteFastTokenStore } from './fast-tokens.js';
import { createSqliteArchiveStore } from './archive.js';
import { startArchiveThread } from './archive-writes.js';

export const DATABASE_FILE = 'gateway.sqlite';

export interface SqliteStorageOptions {
  now?: Clock;
  /** How long a writer waits for another process's lock before SQLITE_BUSY. */
  busyTimeoutMs?: number;
}

/**
 * The database and its WAL and shared-memory files hold SCRAM keys and
 * messages: owner-only, whatever the directory's mode (a mounted volume's
 * directory already exists, so mkdir's mode does not apply). The file is
 * created 0600 before SQLite opens it, and SQLite gives its -wal and -shm
 * files the database file's permissions; files left by an older version
 * are tightened here.
 */
function ownerOnly(file: string): void {
  closeSync(openSync(file, 'a', 0o600));
  for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
}

function openDatabase(file: string, busyTimeoutMs: number): Database.Database {
  ownerOnly(file);
  const db = new Database(file);
  try {
    // busy_timeout first: switching to WAL itself needs a lock another process may hold.
    db.pragma(`busy_timeout = ${Math.trunc(busyTimeoutMs)}`);
    // WAL lets the CLI read and write while the server holds the file open.
    db.pragma('journal_mode = WAL');
    // NORMAL is durable across application crashes in WAL mode, and much faster than FULL.
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma(`wal_autocheckpoint = ${MAIN_CHECKPOINT_PAGES}`);
    migrate(db);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

export function openSqliteStorage(dataDir: string, options: SqliteStorageOptions = {}): Storage {
  const file = join(dataDir, DATABASE_FILE);
  const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
  let db: Database.Database;
  try {
    // 0700: the file holds SCRAM keys, which allow offline password guessing.
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    db = openDatabase(file, busyTimeoutMs);
  } catch (err) {
    throw new StorageOpenError(resolve(file), likelyCause(resolve(dataDir), err), err);
  }
  // XEP-0313 archive writes commit on their own thread (its own connection), off the event loop.
  const archiveThread = startArchiveThread(file, busyTimeoutMs);
  return {
    users: createSqliteUserStore(db, options.now ?? Date.now),
    rosters: createSqliteRosterStore(db),
    blocklists: createSqliteBlocklistStore(db),
    offline: createSqliteOfflineStore(db, options.now ?? Date.now),
    vcards: createSqliteVcardStore(db, options.now ?? Date.now),
    smState: createSqliteSmStateStore(db),
    pep: createSqlitePepStore(db),
    fastTokens: createSqliteFastTokenStore(db),
    archive: createSqliteArchiveStore(db, archiveThread),
    async close() {
      await archiveThread.close();
      if (db.open) db.close();
    },
    // For /readyz: a trivial query (throws once the connection is closed or the file is gone bad).
    async ping() {
      db.prepare('SELECT 1').get();
    },
    // The backup API, on the archive thread's connection and in one step (archive-worker.ts): in
    // steps of a few pages per event-loop turn here, every commit of that thread started the copy
    // again, and a database of some size was never copied while messages were archived.
    backup: (destination) => archiveThread.backup(destination),
  };
}

export { StorageOpenError } from './open-error.js';
export { migrate, MIGRATIONS, type Migration, type MigrationResult } from './migrations.js';

/**
 * The PostgreSQL backend (STORAGE=postgres): every port over one
 * node-postgres pool, so N gateway processes and the CLI share one
 * database. The schema is brought up to date at open (migrations.ts).
 */
import pg from 'pg';
import type { Clock, Storage } from '../types.js';
import { migratePostgres } from './migrations.js';
import { createPgUserStore } from './accounts.js';
import { createPgRosterStore } from './roster.js';
import { createPgBlocklistStore } from './blocklist.js';
import { createPgOfflineStore } from './offline.js';
import { createPgVcardStore } from './vcard.js';
import { createPgSmStateStore } from './sm-state.js';
import { createPgPepStore } from './pep.js';
import { createPgFastTokenStore } from './fast-tokens.js';
import { createPgArchiveStore } from './archive.js';

export interface PostgresStorageOptions {
  /** A libpq connection URI: postgres://user:password@host:port/database. */
  url: string;
  now?: Clock;
  /** Connections the pool may open at once (node-postgres default: 10). */
  maxConnections?: number;
  /**
   * An idle pooled connection failed (the server restarted, a network cut):
   * the pool has dropped it and the next query opens a new one. Without a
   * listener node-postgres would crash the process.
   */
  onIdleError?: (err: Error) => void;
}

export async function openPostgresStorage(options: PostgresStorageOptions): Promise<Storage> {
  const pool = new pg.Pool({ connectionString: options.url, max: options.maxConnections ?? 10 });
  pool.on('error', options.onIdleError ?? (() => undefined));
  try {
    await migratePostgres(pool);
  } catch (err) {
    await pool.end();
    throw err;
  }
  const now = options.now ?? Date.now;
  let closing: Promise<void> | undefined;
  return {
    users: createPgUserStore(pool, now),
    rosters: createPgRosterStore(pool),
    blocklists: createPgBlocklistStore(pool),
    offline: createPgOfflineStore(pool, now),
    vcards: createPgVcardStore(pool, now),
    smState: createPgSmStateStore(pool),
    pep: createPgPepStore(pool),
    fastTokens: createPgFastTokenStore(pool),
    archive: createPgArchiveStore(pool),
    close() {
      closing ??= pool.end();
      return closing;
    },
    // For /readyz: a trivial query over the pool.
    async ping() {
      await pool.query('SELECT 1');
    },
  };
}

export { migratePostgres, PG_MIGRATIONS, MIGRATION_LOCK_KEY, type PgMigration, type MigrationResult } from './migrations.js';

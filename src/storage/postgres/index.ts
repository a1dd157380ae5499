/**
 * The PostgreSQL backend (STORAGE=postgres): every port over one
 * node-postgres pool, so N gateway processes and the CLI share one
 * database. The schema is brought up to date at open (migrations.ts).
 */
import pg from 'pg';
import type { Clock, Storage } from '../types.js';
import { migratePostgres } from './migrations.js';
import { createPgUserStore } from './accounts.js';
import { createPgRosterStore, decodeRosterItem } from './roster.js';
import { createAccountReader } from './account-read.js';
import { createPgBlocklistStore } from './blocklist.js';
import { createPgOfflineStore } from './offline.js';
import { createPgVcardStore } from './vcard.js';
import { createPgSmStateStore } from './sm-state.js';
import { createPgPepStore } from './pep.js';
import { createPgFastTokenStore } from './fast-tokens.js';
import { createPgArchiveStore } from './archive.js';
import { createCredentialCache } from '../credential-cache.js';
import { listenForCredentialChanges, type CredentialListener } from './credential-listener.js';

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
  /**
   * Bytes of users' credentials kept in memory after they were read (a
   * login), dropped the moment any writer changes or deletes the account
   * (credential-listener.ts); 0 or absent: none (the CLI, which reads each
   * account once). Served only while `users.changesSince` (the change log)
   * was read successfully within the last second: the gateway reads it every
   * 500 ms (features/account-changes.ts).
   */
  credentialCacheBytes?: number;
  /** A notification of an account change dropped its kept credentials (credential-listener.ts); for the log. */
  onCredentialsDropped?: (account: readonly [host: string, username: string] | undefined) => void;
}

/** Pause before the connection listening for account changes is opened again. */
const LISTEN_RETRY_MS = 1000;
/**
 * The credential cache serves from memory only while the account change log was read successfully this
 * recently (ms): twice the interval the gateway reads it at (features/account-changes.ts, 500 ms, server.ts),
 * so a NOTIFY that never comes (a connection that looks alive to a database that stopped answering) leaves
 * a replaced password served no longer than that.
 */
const CHANGE_LOG_BOUND_MS = 1000;

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
  let users = createPgUserStore(pool, now);
  let listener: CredentialListener | undefined;
  if ((options.credentialCacheBytes ?? 0) > 0) {
    const cache = createCredentialCache(users, { maxBytes: options.credentialCacheBytes!, logBoundMs: CHANGE_LOG_BOUND_MS });
    listener = await listenForCredentialChanges({ url: options.url, cache, retryMs: LISTEN_RETRY_MS, onError: options.onIdleError ?? (() => undefined), onDropped: options.onCredentialsDropped });
    users = cache.users;
  }
  const reader = createAccountReader(pool, decodeRosterItem);
  let closing: Promise<void> | undefined;
  return {
    users,
    rosters: createPgRosterStore(pool, reader),
    blocklists: createPgBlocklistStore(pool, reader),
    offline: createPgOfflineStore(pool, now),
    vcards: createPgVcardStore(pool, now),
    smState: createPgSmStateStore(pool),
    pep: createPgPepStore(pool),
    fastTokens: createPgFastTokenStore(pool),
    archive: createPgArchiveStore(pool),
    close() {
      closing ??= Promise.all([listener?.close(), pool.end()]).then(() => undefined);
      return closing;
    },
    // For /readyz: a trivial query over the pool.
    async ping() {
      await pool.query('SELECT 1');
    },
  };
}

export { migratePostgres, PG_MIGRATIONS, MIGRATION_LOCK_KEY, type PgMigration, type MigrationResult } from './migrations.js';

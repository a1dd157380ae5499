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
import { KEEPALIVE_IDLE_MS, listenForCredentialChanges, type CredentialListener } from './credential-listener.js';

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
  /**
   * Milliseconds to open a connection, and to wait for a free one of the pool (DATABASE_CONNECT_TIMEOUT);
   * past it the query fails. Absent or 0: no limit (node-postgres's default).
   */
  connectTimeoutMs?: number;
  /**
   * Milliseconds a statement may run (DATABASE_STATEMENT_TIMEOUT): PostgreSQL's statement_timeout cancels it
   * (a lock held, a slow plan), and the client gives up QUERY_GRACE_MS later on a server that does not answer
   * at all (a hung backend, a network black hole), dropping that connection. Absent or 0: no limit. The
   * migrations and the archive's retention sweeps, which may legitimately run long, have none (`maintenance`).
   */
  statementTimeoutMs?: number;
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
/** How much longer than the server's statement_timeout the client waits for an answer before it gives up the connection. */
export const QUERY_GRACE_MS = 2000;
/** Connections of the maintenance pool (the migrations at open, then the archive's sweeps, one at a time). */
const MAINTENANCE_CONNECTIONS = 2;

/**
 * A pool's options: TCP keepalive on every connection (a peer gone without FIN or RST is noticed), the
 * connect bound, and, for `statementTimeoutMs` > 0, the server's statement_timeout with the client's
 * query_timeout QUERY_GRACE_MS above it. All of it node-postgres's own.
 */
function poolConfig(options: PostgresStorageOptions, max: number, statementTimeoutMs: number): pg.PoolConfig {
  const config: pg.PoolConfig = {
    connectionString: options.url, max, keepAlive: true, keepAliveInitialDelayMillis: KEEPALIVE_IDLE_MS,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 0,
  };
  if (statementTimeoutMs > 0) {
    config.statement_timeout = statementTimeoutMs;
    config.query_timeout = statementTimeoutMs + QUERY_GRACE_MS;
  }
  return config;
}

export async function openPostgresStorage(options: PostgresStorageOptions): Promise<Storage> {
  const onIdleError = options.onIdleError ?? (() => undefined);
  // Statements that may run long by design, without the statement bound: the migrations (which also wait for
  // another process's, under the advisory lock) and the archive's retention sweeps. Opened only when used.
  const maintenance = new pg.Pool(poolConfig(options, MAINTENANCE_CONNECTIONS, 0));
  maintenance.on('error', onIdleError);
  try {
    await migratePostgres(maintenance);
  } catch (err) {
    await maintenance.end();
    throw err;
  }
  const pool = new pg.Pool(poolConfig(options, options.maxConnections ?? 10, options.statementTimeoutMs ?? 0));
  pool.on('error', onIdleError);
  const now = options.now ?? Date.now;
  let users = createPgUserStore(pool, now);
  let listener: CredentialListener | undefined;
  if ((options.credentialCacheBytes ?? 0) > 0) {
    const cache = createCredentialCache(users, { maxBytes: options.credentialCacheBytes!, logBoundMs: CHANGE_LOG_BOUND_MS });
    listener = await listenForCredentialChanges({
      url: options.url, cache, retryMs: LISTEN_RETRY_MS, connectTimeoutMs: options.connectTimeoutMs ?? 0, onError: onIdleError, onDropped: options.onCredentialsDropped,
    });
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
    archive: createPgArchiveStore(pool, maintenance),
    close() {
      closing ??= Promise.all([listener?.close(), pool.end(), maintenance.end()]).then(() => undefined);
      return closing;
    },
    // For /readyz: a trivial query over the pool.
    async ping() {
      await pool.query('SELECT 1');
    },
  };
}

export { migratePostgres, PG_MIGRATIONS, MIGRATION_LOCK_KEY, type PgMigration, type MigrationResult } from './migrations.js';

/** Opens the backend the configuration chose (STORAGE): the server and the CLI both open storage here. */
import type { Clock, Storage } from './types.js';
import { openSqliteStorage } from './sqlite/index.js';

export interface StorageChoice {
  backend: 'sqlite' | 'postgres';
  /** SQLite's directory (STORAGE=sqlite). */
  dataDir: string;
  /** PostgreSQL's connection URI (STORAGE=postgres). */
  databaseUrl: string;
  now?: Clock;
  onIdleError?: (err: Error) => void;
  /** PostgreSQL: bytes of credentials kept in memory (CREDENTIAL_CACHE_BYTES); absent: none (the CLI). */
  credentialCacheBytes?: number;
  /** PostgreSQL: an account change's notification dropped its kept credentials (for the log). */
  onCredentialsDropped?: (account: readonly [host: string, username: string] | undefined) => void;
  /** PostgreSQL: DATABASE_CONNECT_TIMEOUT and DATABASE_STATEMENT_TIMEOUT (ms); absent: no limit (the CLI). */
  connectTimeoutMs?: number;
  statementTimeoutMs?: number;
}

/** PostgreSQL's modules (pg among them) are loaded only when chosen: the embedded default starts without them. */
export async function openStorage(choice: StorageChoice): Promise<Storage> {
  if (choice.backend === 'postgres') return (await import('./postgres/index.js')).openPostgresStorage({
    url: choice.databaseUrl, now: choice.now, onIdleError: choice.onIdleError, credentialCacheBytes: choice.credentialCacheBytes,
    onCredentialsDropped: choice.onCredentialsDropped, connectTimeoutMs: choice.connectTimeoutMs, statementTimeoutMs: choice.statementTimeoutMs,
  });
  return openSqliteStorage(choice.dataDir, { now: choice.now });
}

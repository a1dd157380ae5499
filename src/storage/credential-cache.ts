/**
 * The accounts port with a bounded memory of the records it read: a user
 * who logs in again (a reload, a reconnect, another tab) costs no read of
 * the store. Meant for a networked store (PostgreSQL: every read is a round
 * trip and a backend's parse, plan and execute; bench/RESULTS.md, "Cluster");
 * SQLite answers in-process and is not wrapped.
 *
 * Only what the store said exists is kept (an unknown name is asked again:
 * guessing names must not fill the memory). The bound is in bytes, least
 * recently used out (lru-cache). Coherence is the caller's: `invalidate` when
 * any writer, in any process, changed or deleted the account (PostgreSQL
 * NOTIFY, credential-listener.ts; a change read from the store's change log
 * through this port is forgotten too), `suspend` while such news may be missed
 * (nothing is kept or served until `resume`; each reason is resumed on its
 * own). A read that was under way when news arrived is not kept: its row may
 * predate the change.
 *
 * The change log bounds the time a replaced password can be served (the
 * NOTIFY may be late, or never come: a connection that looks alive to a
 * database that stopped answering). With `logBoundMs`, nothing is served
 * from memory until a reading of the log through this port succeeded, nor
 * once the last successful one began longer than that ago or a reading
 * failed: every login reads the store then, as without a cache (and fails
 * if the store cannot answer). A timer set at each reading does it, not the
 * login.
 */
import { performance } from 'node:perf_hooks';
import { LRUCache } from 'lru-cache';
import type { UserRecord, UserStore } from './ports/accounts.js';

/** Object headers, the Map entry and the list links of one cached record, above its strings (an estimate, rounded up). */
const ENTRY_OVERHEAD_BYTES = 400;

export interface CredentialCache {
  /** The wrapped port: `get` from memory when it can; writes through this port invalidate their account. */
  readonly users: UserStore;
  /** Forgets one account (its credentials changed or it was deleted). */
  invalidate(host: string, username: string): void;
  /**
   * Forgets everything and serves nothing from memory until `resume` with the same reason (news of changes may
   * be lost meanwhile); another reason (the change log's, `logBoundMs`) may hold it suspended too.
   */
  suspend(reason: string): void;
  /** Takes back `suspend(reason)`; caches again, from empty, once no reason holds it. */
  resume(reason: string): void;
  /** Accounts held and their estimated bytes (tests, metrics). */
  size(): { entries: number; bytes: number };
}

/** The port hands out copies (a caller may change what it got): one per get, and the kept one never leaves. */
function copy(r: UserRecord): UserRecord {
  const c = r.credentials;
  return { ...r, credentials: { 'SCRAM-SHA-1': { ...c['SCRAM-SHA-1'] }, 'SCRAM-SHA-256': { ...c['SCRAM-SHA-256'] } } };
}

const keyOf = (host: string, username: string): string => `${host}\0${username}`;

/** UTF-16 strings: two bytes a code unit. */
function recordBytes(key: string, r: UserRecord): number {
  let chars = key.length + r.host.length + r.username.length;
  for (const c of Object.values(r.credentials)) chars += c.salt.length + c.storedKey.length + c.serverKey.length;
  return ENTRY_OVERHEAD_BYTES + 2 * chars;
}

/** Why the cache is suspended while the change log is not being read (`logBoundMs`). */
const LOG = 'change log';

export interface CredentialCacheOptions {
  readonly maxBytes: number;
  /**
   * Serve from memory only while the last successful reading of the change log through this port began at
   * most this long ago (ms; twice its interval); absent: the log does not hold the cache (no reader of it).
   */
  readonly logBoundMs?: number;
}

export function createCredentialCache(inner: UserStore, opts: CredentialCacheOptions): CredentialCache {
  const lru = new LRUCache<string, UserRecord>({ maxSize: opts.maxBytes, sizeCalculation: (r, key) => recordBytes(key, r) });
  // Bumped by every invalidation: a read that began under an older epoch may hold a row from before the change.
  let epoch = 0;
  const suspended = new Set<string>();
  // Whether nothing suspends it: the one thing a login looks at.
  let active = true;
  const forget = (host: string, username: string): void => {
    epoch++;
    lru.delete(keyOf(host, username));
  };
  // The listener's reason empties the cache both ways: notifications sent while nobody listened are lost. The
  // change log's keeps what is held (nothing is served meanwhile): the reading that ends it has forgotten every
  // account changed since the last one (changesSince), so what is left is as good as before. Emptied, a
  // saturated node whose reading came late paid a store read per login after each (cluster resumes −10 %).
  const suspend = (reason: string): void => {
    suspended.add(reason);
    active = false;
    epoch++;
    if (reason !== LOG) lru.clear();
  };
  const resume = (reason: string): void => {
    if (!suspended.delete(reason)) return;
    epoch++;
    if (reason !== LOG) lru.clear();
    active = suspended.size === 0;
  };

  const { logBoundMs } = opts;
  let stale: NodeJS.Timeout | undefined;
  if (logBoundMs !== undefined) suspend(LOG);
  /** A reading of the log that began at `began` succeeded: serve until the bound from then. */
  const logRead = (began: number): void => {
    if (logBoundMs === undefined) return;
    clearTimeout(stale);
    const left = began + logBoundMs - performance.now();
    if (left <= 0) {
      suspend(LOG);
      return;
    }
    stale = setTimeout(() => suspend(LOG), left);
    stale.unref();
    resume(LOG);
  };

  const users: UserStore = {
    ...inner,
    async get(host, username) {
      const key = keyOf(host, username);
      const held = active ? lru.get(key) : undefined;
      if (held) return copy(held);
      const began = epoch;
      const record = await inner.get(host, username);
      if (record && active && began === epoch) lru.set(key, copy(record));
      return record;
    },
    async setCredentials(host, username, credentials) {
      try {
        await inner.setCredentials(host, username, credentials);
      } finally {
        forget(host, username);
      }
    },
    async delete(host, username) {
      try {
        await inner.delete(host, username);
      } finally {
        forget(host, username);
      }
    },
    // The change log and the NOTIFY tell of the same commits, in no set order: a change read from the
    // log is forgotten here too, so whoever acts on it (account-changes.ts) then reads the account as it is.
    // A failed reading suspends at once (what it would have told is not known); a successful one serves again.
    async changesSince(cursor) {
      const began = performance.now();
      let next: Awaited<ReturnType<UserStore['changesSince']>>;
      try {
        next = await inner.changesSince(cursor);
      } catch (err) {
        if (logBoundMs !== undefined) {
          clearTimeout(stale);
          suspend(LOG);
        }
        throw err;
      }
      for (const { host, username } of next.changes) forget(host, username);
      logRead(began);
      return next;
    },
  };

  return {
    users,
    invalidate: forget,
    suspend,
    resume,
    size: () => ({ entries: lru.size, bytes: lru.calculatedSize }),
  };
}

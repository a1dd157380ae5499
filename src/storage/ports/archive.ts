/** The message archive port (XEP-0313, MAM). Types only. */

/** One archived message of one account's archive. */
export interface ArchivedMessage {
  /** The archive id, as given to clients in <stanza-id/> (XEP-0359): unique within the account's archive. */
  readonly id: string;
  /** The other party's bare JID (XEP-0313 §4.1.1 `with`). */
  readonly with: string;
  /** When the server archived it, milliseconds since the epoch (the <delay/> stamp of a result). */
  readonly at: number;
  /** The <message/> as serialized XML in jabber:client. */
  readonly stanza: string;
}

/** A message to archive for the account `host`/`username`. */
export interface ArchiveEntry extends ArchivedMessage {
  readonly host: string;
  readonly username: string;
  /**
   * Its position as the server numbered it (storage/ports/archive-ids.ts: 2 × the
   * id's key, + 1 for the sender's copy), unique across the store and
   * growing with `at`. SQLite keys the row by it; the other stores number
   * rows themselves. Without it, the row goes after every other.
   */
  readonly seq?: number;
}

/**
 * A query over one account's archive. The filters (XEP-0313 §4.1) make the
 * result set; `after-id`/`before-id` are archive ids, exclusive. The page
 * (XEP-0059) is taken from that set after `page.after` or before
 * `page.before`, from its start (`direction` forward, §2.2) or its end
 * (backward, §2.3). Results come oldest first.
 */
export interface ArchiveQuery {
  readonly with?: string;
  readonly start?: number;
  readonly end?: number;
  readonly afterId?: string;
  readonly beforeId?: string;
  readonly ids?: readonly string[];
  readonly page?: { readonly after?: string; readonly before?: string };
  readonly limit: number;
  readonly direction: 'forward' | 'backward';
}

export interface ArchivePage {
  /** Oldest first, at most `limit`. */
  readonly messages: ArchivedMessage[];
  /** True when the page reaches the end of the filtered set in its direction (XEP-0313 §4.3 `complete`). */
  readonly complete: boolean;
  /** How many messages match the filters (the page's bounds aside), counted up to COUNT_CAP; else undefined. */
  readonly count?: number;
}

/**
 * Counting the matches of a query stops here: beyond it, <count/> is left out
 * (XEP-0059 §2.1 and XEP-0313 §4.3.2 make it optional). Counting walks the
 * index, so the cap is what keeps a page of 50 from a million messages as
 * cheap as from a thousand.
 */
export const COUNT_CAP = 1_000;

/** XEP-0313 §6.1 preferences: the default, and the JIDs always or never archived. */
export interface ArchivePrefs {
  readonly default: 'always' | 'never' | 'roster';
  readonly always: readonly string[];
  readonly never: readonly string[];
}

export const DEFAULT_PREFS: ArchivePrefs = { default: 'always', always: [], never: [] };

/**
 * Per-account message archives. An account's archive and preferences go
 * with the account (SQL: ON DELETE CASCADE; memory: purge).
 */
export interface ArchiveStore {
  /**
   * Stores the entries in one transaction, in order (the order of an
   * archive). Entries for accounts that do not exist are skipped, so one
   * unknown recipient cannot fail the batch. A failed append is tried
   * again by the caller (features/mam/writer.ts): when it was committed
   * after all (PostgreSQL: the connection lost before the answer), the
   * entries already there (same account and id) are left as they are.
   */
  append(entries: readonly ArchiveEntry[]): Promise<void>;
  /**
   * The same for records packed as the server queues them (archive-pack.ts: a message once,
   * with the archives that keep it), in one transaction, in order. Stores without it are
   * given the records' entries through append(). The store reads the views until its promise
   * settles (a writer thread reads them where they are, in shared memory) and keeps nothing of
   * them after: the caller tries again with the same views, or gives their chunks to later packs.
   */
  appendPacked?(views: readonly Uint8Array[]): Promise<void>;
  /** A page of the account's archive; 'item-not-found' when an id it is given (a bound or one of `ids`) is not in the archive. */
  query(host: string, username: string, query: ArchiveQuery): Promise<ArchivePage | 'item-not-found'>;
  /** The oldest and newest messages (XEP-0313 §7.1 metadata), without their stanzas. */
  bounds(host: string, username: string): Promise<{ first?: Omit<ArchivedMessage, 'stanza'>; last?: Omit<ArchivedMessage, 'stanza'> }>;
  getPrefs(host: string, username: string): Promise<ArchivePrefs>;
  setPrefs(host: string, username: string, prefs: ArchivePrefs): Promise<void>;
  /**
   * Deletes messages archived before `before` (any account) among the
   * oldest `limit` of the whole store; returns how many. Archive order is
   * time order, so a sweep repeats it until it returns less than `limit`.
   */
  expire(before: number, limit: number): Promise<number>;
  /**
   * The stamp of the newest entry (the last appended): the server numbers new messages after it, so a
   * clock that went back across a restart cannot reuse a seq (SQLite keys rows by it) nor stamp a
   * message older than those before it (start/end find rows by stamp order).
   */
  newestAt?(): Promise<number | undefined>;
  /** Deletes the account's oldest messages beyond its newest `keep`, at most `limit` of them; returns how many. */
  trim(host: string, username: string, keep: number, limit: number): Promise<number>;
  /**
   * Deletes the messages with these archive ids from the account's archive only (the other
   * party's copy stays); returns how many. A message its recipient did not take (bounced after it
   * was archived) is taken back out this way (XEP-0313 §5.1.1).
   */
  remove(host: string, username: string, ids: readonly string[]): Promise<number>;
}

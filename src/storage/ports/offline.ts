/** The offline messages port (XEP-0160). Types only. */

/** A message kept for an account that had no available resource (XEP-0160). */
export interface OfflineMessage {
  /** Increases with every message stored: oldest first is ascending id. */
  readonly id: number;
  /** The <message/> as serialized XML in jabber:client. */
  readonly stanza: string;
  /** When it was stored, milliseconds since the epoch (the XEP-0203 stamp on delivery). */
  readonly storedAt: number;
}

/**
 * A page of an account's offline messages: ids above `afterId` (default: from the start), at most `limit`,
 * and only those stored at `storedAt` (milliseconds since the epoch) when given.
 */
export interface OfflinePage {
  readonly afterId?: number;
  readonly limit?: number;
  readonly storedAt?: number;
}

/**
 * What one account may hold in offline storage (XEP-0160), checked together
 * with the insert so concurrent pushes cannot overshoot either limit.
 */
export interface OfflineQuota {
  readonly maxMessages: number;
  /** UTF-8 bytes of the serialized stanzas (what they take in memory and on disk, not how many). */
  readonly maxBytes: number;
}

/** What an account holds in offline storage: kept per account as messages come and go, never counted row by row. */
export interface OfflineUsage {
  readonly messages: number;
  readonly bytes: number;
}

/**
 * Offline messages, per account. An account's messages go when the account
 * does (SQLite: ON DELETE CASCADE; memory: the same on UserStore.delete).
 * The store keeps each account's OfflineUsage itself (SQLite: triggers on
 * every insert and delete, the cascade included), so any way of removing
 * messages keeps it right.
 */
export interface OfflineStore {
  /**
   * Appends a message unless it would take the account past `quota`; false
   * when full, and nothing is stored then. Checking and appending are one
   * step (one transaction), so concurrent pushes cannot overshoot. A bare
   * number limits the count only (older callers).
   */
  push(host: string, username: string, stanza: string, quota: OfflineQuota | number): Promise<boolean>;
  /**
   * The account's messages, oldest first; with `page`, only those after
   * `afterId` and at most `limit` of them, so a large backlog is read in
   * pages, never all at once.
   */
  list(host: string, username: string, page?: OfflinePage): Promise<OfflineMessage[]>;
  /** Deletes the given messages of the account (the delivered ones); unknown ids are ignored. */
  remove(host: string, username: string, ids: readonly number[]): Promise<void>;
  /** The account's message count, from its counter: O(1). */
  count(host: string, username: string): Promise<number>;
  /** The account's message count and bytes, from its counter: O(1). */
  usage(host: string, username: string): Promise<OfflineUsage>;
}

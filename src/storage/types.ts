/**
 * Domain-shaped storage contracts. Every backend (memory for tests, SQLite
 * embedded, PostgreSQL later) implements these; callers never see SQL.
 * All methods are async so a networked backend fits the same shape.
 */
import type { ScramCredentials } from '../sasl/scram.js';

/** Both SCRAM variants are stored so either mechanism can be offered; never a password. */
export interface StoredCredentials {
  'SCRAM-SHA-1': ScramCredentials;
  'SCRAM-SHA-256': ScramCredentials;
}

export interface UserRecord {
  host: string;
  username: string;
  credentials: StoredCredentials;
  /** Milliseconds since the epoch. */
  createdAt: number;
}

export interface UserKey {
  host: string;
  username: string;
}

export interface NewUser extends UserKey {
  credentials: StoredCredentials;
}

export class UserExistsError extends Error {
  constructor(readonly host: string, readonly username: string) {
    super(`user '${username}@${host}' already exists`);
    this.name = 'UserExistsError';
  }
}

export class UserNotFoundError extends Error {
  constructor(readonly host: string, readonly username: string) {
    super(`user '${username}@${host}' does not exist`);
    this.name = 'UserNotFoundError';
  }
}

/** Accounts, keyed by (host, username); the caller normalises both beforehand. */
export interface UserStore {
  get(host: string, username: string): Promise<UserRecord | undefined>;
  /** @throws UserExistsError */
  create(host: string, username: string, credentials: StoredCredentials): Promise<void>;
  /** @throws UserNotFoundError */
  setCredentials(host: string, username: string, credentials: StoredCredentials): Promise<void>;
  /** @throws UserNotFoundError */
  delete(host: string, username: string): Promise<void>;
  /** Sorted by host then username, in Unicode code point order. */
  list(host?: string): Promise<UserKey[]>;
  /**
   * All or nothing: one transaction. A user that already exists, or appears
   * twice in `users`, aborts the whole batch.
   * @throws UserExistsError naming the first duplicate in batch order
   */
  createMany(users: readonly NewUser[]): Promise<void>;
  /**
   * Account changes recorded after `cursor` (deletions and new credentials,
   * by any writer: the CLI, another process), oldest first, with the cursor
   * to ask from next time. Without a cursor: no changes, only the current
   * cursor (where a new watcher starts). The running server follows it to
   * end the sessions of a deleted account or a changed password.
   */
  changesSince(cursor?: number): Promise<{ cursor: number; changes: AccountChange[] }>;
}

/** A change to an account that its live sessions must answer to. */
export interface AccountChange {
  readonly host: string;
  readonly username: string;
  readonly change: 'deleted' | 'credentials';
}

/** A message kept for an account that had no available resource (XEP-0160). */
export interface OfflineMessage {
  /** Increases with every message stored: oldest first is ascending id. */
  readonly id: number;
  /** The <message/> as serialized XML in jabber:client. */
  readonly stanza: string;
  /** When it was stored, milliseconds since the epoch (the XEP-0203 stamp on delivery). */
  readonly storedAt: number;
}

/** A page of an account's offline messages: ids above `afterId` (default: from the start), at most `limit`. */
export interface OfflinePage {
  readonly afterId?: number;
  readonly limit?: number;
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

/** vCard-temp (XEP-0054) documents, one per account, gone with the account like offline messages. */
export interface VcardStore {
  /** The account's <vCard/> as serialized XML, or undefined when it has none. */
  get(host: string, username: string): Promise<string | undefined>;
  /** Replaces the account's vCard. */
  set(host: string, username: string, vcard: string): Promise<void>;
  delete(host: string, username: string): Promise<void>;
}

/** RFC 6121 §2.1.2.5: whose presence each side receives. */
export type RosterSubscription = 'none' | 'to' | 'from' | 'both';

/** A roster item (RFC 6121 §2.1.2), keyed by the contact's normalised bare JID. */
export interface RosterItem {
  jid: string;
  name: string | undefined;
  subscription: RosterSubscription;
  /** Pending Out: the user's request awaits an answer (ask='subscribe'). */
  ask: boolean;
  /** Pre-approved (RFC 6121 §3.4): the contact's future request is accepted at once. */
  approved: boolean;
  groups: string[];
}

/** An inbound subscription request not answered yet (Pending In, RFC 6121 §3.1.3); not a roster item. */
export interface RosterPending {
  /** The requester's bare JID. */
  jid: string;
  /** The <presence type='subscribe'/> as serialized XML in jabber:client, delivered again at each login. */
  stanza: string;
}

export interface StoredRoster {
  /** The XEP-0237 roster version; 0 for a roster never changed. */
  version: number;
  /** Sorted by JID, in Unicode code point order. */
  items: RosterItem[];
  pending: RosterPending[];
}

/**
 * Rosters, per account. An account's roster goes when the account does
 * (SQLite: ON DELETE CASCADE; memory: the same on UserStore.delete).
 */
export interface RosterStore {
  load(host: string, username: string): Promise<StoredRoster>;
  /** Creates or replaces an item and sets the roster version, in one step. */
  putItem(host: string, username: string, item: RosterItem, version: number): Promise<void>;
  /** Removes an item (if there) and sets the roster version, in one step. */
  removeItem(host: string, username: string, jid: string, version: number): Promise<void>;
  /** Creates or replaces the pending request from `pending.jid`. */
  putPending(host: string, username: string, pending: RosterPending): Promise<void>;
  removePending(host: string, username: string, jid: string): Promise<void>;
}

/** XEP-0191 blocklists, per account, gone with the account like rosters. */
export interface BlocklistStore {
  /** Sorted, in Unicode code point order. */
  list(host: string, username: string): Promise<string[]>;
  /** Adds the JIDs (already there is fine), all or none. */
  add(host: string, username: string, jids: readonly string[]): Promise<void>;
  /** Removes the JIDs (absent is fine), all or none. */
  remove(host: string, username: string, jids: readonly string[]): Promise<void>;
  clear(host: string, username: string): Promise<void>;
}

export interface Storage {
  users: UserStore;
  offline: OfflineStore;
  vcards: VcardStore;
  rosters: RosterStore;
  blocklists: BlocklistStore;
  /** Idempotent. */
  close(): Promise<void>;
}

/** Injected so tests can pin creation times. */
export type Clock = () => number;

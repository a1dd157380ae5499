/** The roster port (RFC 6121). Types only. */

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
 * (SQLite: ON DELETE CASCADE; memory: the same on UserStore.delete). Its
 * deletion also ends what the other rosters hold with it, in the same step,
 * as if it had sent unsubscribe and unsubscribed (RFC 6121 §3.2, §3.3): their
 * items of it keep name and groups but drop to subscription none with no ask
 * and no pre-approval, under a new version; its pending requests go.
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

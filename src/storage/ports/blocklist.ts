/** The blocklist port (XEP-0191). Types only. */

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

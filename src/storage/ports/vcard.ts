/** The vCard port (XEP-0054). Types only. */

/** vCard-temp (XEP-0054) documents, one per account, gone with the account like offline messages. */
export interface VcardStore {
  /** The account's <vCard/> as serialized XML, or undefined when it has none. */
  get(host: string, username: string): Promise<string | undefined>;
  /** Replaces the account's vCard. */
  set(host: string, username: string, vcard: string): Promise<void>;
  delete(host: string, username: string): Promise<void>;
}

/**
 * The stream management state port: the last h of sessions that can no
 * longer be resumed (MongooseIM's stream_mgmt_stale_h table, its
 * `stale_h` option), so a late <resume/> is answered with
 * <failed h='…'/> and the client learns which of its stanzas the server
 * handled (XEP-0198 v1.6 §5). Types only.
 */

/** Stale h records, keyed by the smid of the session that ended. */
export interface SmStateStore {
  /** Records (or replaces) the h of the session `smid`; `storedAt` is milliseconds since the epoch. */
  setStaleH(smid: string, h: number, storedAt: number): Promise<void>;
  /** The h recorded for `smid`, or undefined when there is none (never recorded, or collected). */
  getStaleH(smid: string): Promise<number | undefined>;
  /** Deletes the records stored at or before `cutoff` (milliseconds since the epoch); returns how many. */
  collectStaleH(cutoff: number): Promise<number>;
}

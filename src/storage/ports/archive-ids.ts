/**
 * Archive ids that carry their position (XEP-0359 stanza ids, XEP-0313
 * archive ids). The server numbers each archived message with a key that
 * grows with its stamp: key = at × KEYS_PER_MS + n. Its two entries (the
 * recipient's and the sender's archive) sit at seq = 2 × key and
 * 2 × key + 1, so seq / 1024 is the stamp in milliseconds. The id is the
 * key in base 36, a dot, and 48 random bits: a store finds an id's row by
 * its seq (the account's (host, username, seq) index) and a time bound
 * by arithmetic, with no index on the id nor on the time (SQLite: two of
 * the five B-trees each insert wrote before). Ids without a dot (random,
 * from before this scheme) are looked up on partial indexes that hold
 * only them.
 */
import { randomToken48 } from '../../util/random.js';

/** Messages one process numbers per millisecond; the 513th moves the stamp on by one. */
export const KEYS_PER_MS = 512;
/** seq per millisecond of stamp: two entries per key. */
export const SEQ_PER_MS = 2 * KEYS_PER_MS;

/** 36^5: a key's base-36 digits in two parts, each converted as a small integer. */
const LOW = 60_466_176;

/**
 * key.toString(36), for a safe non-negative integer: by its high and low five digits, a third of the
 * time (a double's conversion to base 36 takes about 250 ns, once per archived message). The
 * quotient is exact: it is below 2^28, where a double's spacing is far finer than 1 / 36^5.
 */
export function base36(key: number): string {
  const hi = Math.floor(key / LOW);
  const lo = key - hi * LOW;
  return hi === 0 ? lo.toString(36) : hi.toString(36) + lo.toString(36).padStart(5, '0');
}

export function archiveIdFor(key: number): string {
  return `${base36(key)}.${randomToken48()}`;
}

/** The key an id was made from, or undefined for an id of another form (older, or not ours). */
export function keyOfArchiveId(id: string): number | undefined {
  const dot = id.indexOf('.');
  if (dot < 1 || dot > 11) return undefined;
  const key = Number.parseInt(id.slice(0, dot), 36);
  return Number.isSafeInteger(key) && key >= 0 && key.toString(36) === id.slice(0, dot) ? key : undefined;
}

/** The lowest seq an entry stamped at or after `at` can have. */
export const firstSeqAt = (at: number): number => Math.max(0, Math.floor(at)) * SEQ_PER_MS;
/** The highest seq an entry stamped at or before `at` can have. */
export const lastSeqAt = (at: number): number => Math.floor(at) * SEQ_PER_MS + SEQ_PER_MS - 1;

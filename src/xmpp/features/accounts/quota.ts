/**
 * What a roster weighs, in bytes: the measure behind MAX_ROSTER_ITEM_BYTES
 * and MAX_ROSTER_BYTES. Counting items alone let one item of 134 KB (a long
 * name, many long groups) through, and a roster of such items would be
 * held in memory by every session of the account.
 */
import type { RosterItem, RosterPending } from '../../../storage/types.js';

export interface RosterLimits {
  /** Items one roster may hold (MAX_ROSTER_ITEMS); a new one beyond gets not-allowed. */
  readonly maxItems: number;
  /** UTF-8 bytes of the name and groups a client may give one item (MAX_ROSTER_ITEM_BYTES); more gets not-acceptable. */
  readonly maxItemBytes: number;
  /** UTF-8 bytes one roster may hold (MAX_ROSTER_BYTES); a change that grows it beyond gets not-allowed. */
  readonly maxBytes: number;
}

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');

/** What the client chooses for an item: its name and groups. The JID is bounded by RFC 7622 already. */
export function chosenBytes(name: string | undefined, groups: readonly string[]): number {
  let n = name === undefined ? 0 : utf8(name);
  for (const g of groups) n += utf8(g);
  return n;
}

/** What an item adds to its roster: its JID, name and groups. */
export function itemBytes(item: Pick<RosterItem, 'jid' | 'name' | 'groups'>): number {
  return utf8(item.jid) + chosenBytes(item.name, item.groups);
}

/** What an unanswered request adds: the requester's JID and the stored <presence/>, delivered again at each login. */
export function pendingBytes(pending: RosterPending): number {
  return utf8(pending.jid) + utf8(pending.stanza);
}

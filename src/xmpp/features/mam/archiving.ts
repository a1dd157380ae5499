import { NS, x, type XmlElement } from '../../../xml/index.js';
import type { Jid } from '../../../jid/index.js';
import type { ArchiveEntry, ArchivePrefs } from '../../../storage/ports/archive.js';
import { randomId } from '../../../util/random.js';
import { NS_SID } from './ns.js';

/**
 * XEP-0313 §5.1.1 (User Archives): messages of type chat or normal that
 * carry a <body/>; chat states, receipts and markers alone are not
 * conversation. XEP-0334 <no-store/> and <no-permanent-store/> opt out;
 * carbon copies are never routed as messages of their own.
 */
export function archivable(stanza: XmlElement): boolean {
  const type = stanza.attr('type') ?? 'normal';
  if (type !== 'chat' && type !== 'normal') return false;
  if (!stanza.getChild('body', NS.CLIENT)) return false;
  if (stanza.getChild('no-store', NS.HINTS) || stanza.getChild('no-permanent-store', NS.HINTS)) return false;
  return !stanza.getChild('sent', NS.CARBONS) && !stanza.getChild('received', NS.CARBONS);
}

/**
 * XEP-0359 §5 (Security Considerations): a <stanza-id/> that claims to come
 * from one of our accounts (or the server) arrives from a client only as a
 * forgery; it is removed so nobody mistakes it for an archive id.
 */
export function stripForgedStanzaIds(stanza: XmlElement, hosts: ReadonlySet<string>): void {
  const forged = (c: XmlElement | string): boolean => {
    if (typeof c === 'string' || !c.is('stanza-id', NS_SID)) return false;
    const by = (c.attr('by') ?? '').toLowerCase();
    return hosts.has(by.slice(by.indexOf('@') + 1));
  };
  if (stanza.children.some(forged)) stanza.children = stanza.children.filter((c) => !forged(c));
}

export function stanzaIdElement(by: string, id: string): XmlElement {
  return x('stanza-id', { xmlns: NS_SID, by, id });
}

/**
 * Archive ids: 12 random bytes (96 bits, base64url), unguessable and unique
 * within an archive without asking the store; the archive's order is the
 * store's own (its seq), not the id's.
 */
export function newArchiveId(): string {
  return randomId(12);
}

/**
 * The server's clock for archive stamps, never going back within the
 * process: the store finds start/end through its time index on the
 * assumption that archive order and time agree (archive-sql.ts).
 */
export function monotonicClock(now: () => number): () => number {
  let last = 0;
  return () => {
    last = Math.max(last, now());
    return last;
  };
}

/** The account's view of one message: its archive entry for account `owner`, talking `with`. */
export function entryFor(owner: Jid, withJid: string, id: string, at: number, stanza: string): ArchiveEntry {
  return { host: owner.domain, username: owner.local, id, with: withJid, at, stanza };
}

/** Prefs of accounts kept in memory at most (the least recently used go first). */
export const PREFS_CACHE_SIZE = 10_000;

/** A bounded cache of accounts' prefs, most recently used last (Map order). */
export class PrefsCache {
  readonly #map = new Map<string, ArchivePrefs>();
  get(key: string): ArchivePrefs | undefined {
    const hit = this.#map.get(key);
    if (hit !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, hit);
    }
    return hit;
  }
  set(key: string, prefs: ArchivePrefs): void {
    this.#map.delete(key);
    this.#map.set(key, prefs);
    if (this.#map.size > PREFS_CACHE_SIZE) this.#map.delete(this.#map.keys().next().value!);
  }
}

import { NS, XmlElement } from '../../../xml/index.js';
import { LRUCache } from 'lru-cache';
import { tryParseJid } from '../../../jid/index.js';
import { messageType } from '../../message-types.js';
import type { ArchivePrefs } from '../../../storage/ports/archive.js';
import { archiveIdFor, KEYS_PER_MS } from '../../../storage/ports/archive-ids.js';
import { NS_SID } from './ns.js';

/**
 * XEP-0313 §5.1.1 (User Archives): messages of type chat or normal that
 * carry a <body/>; chat states, receipts and markers alone are not
 * conversation. XEP-0334 <no-store/> and <no-permanent-store/> opt out;
 * carbon copies are never routed as messages of their own.
 */
export function archivable(stanza: XmlElement): boolean {
  const type = messageType(stanza);
  if (type !== 'chat' && type !== 'normal') return false;
  // One pass over the children (every message routed comes here): a body, and none of the others.
  let body = false;
  const children = stanza.children;
  for (let i = 0; i < children.length; i++) {
    const c = children[i]!;
    if (typeof c === 'string') continue;
    if (c.ns === NS.CLIENT) body ||= c.is('body');
    else if (c.ns === NS.HINTS ? c.is('no-store') || c.is('no-permanent-store') : c.ns === NS.CARBONS && (c.is('sent') || c.is('received'))) return false;
  }
  return body;
}

/** Whether `c` is a <stanza-id/> that claims to come from one of `hosts`. */
function forgedStanzaId(c: XmlElement | string, hosts: ReadonlySet<string>): boolean {
  if (typeof c === 'string' || !c.is('stanza-id', NS_SID)) return false;
  // Read as a JID (RFC 7622: case, one final dot, full-width and IDNA forms, a resource): every
  // spelling a client that prepares JIDs would take for one of ours.
  const by = tryParseJid(c.attr('by'));
  return by !== null && hosts.has(by.domain);
}

/**
 * XEP-0359 §5 (Security Considerations): a <stanza-id/> that claims to come
 * from one of our accounts (or the server) arrives from a client only as a
 * forgery; it is removed so nobody mistakes it for an archive id.
 */
export function stripForgedStanzaIds(stanza: XmlElement, hosts: ReadonlySet<string>): void {
  // A loop, not some() with a closure: every message a client sends comes here.
  const children = stanza.children;
  for (let i = 0; i < children.length; i++) {
    if (!forgedStanzaId(children[i]!, hosts)) continue;
    stanza.children = children.filter((c) => !forgedStanzaId(c, hosts));
    return;
  }
}

/** XEP-0359's <stanza-id/>, built as the parser builds elements (XmlElement.adopt): one per archived message delivered. */
export function stanzaIdElement(by: string, id: string): XmlElement {
  return XmlElement.adopt('stanza-id', { xmlns: NS_SID, by, id }, [], NS_SID);
}

/**
 * The server's numbering of archived messages (storage/ports/archive-ids.ts): a
 * stamp that never goes back within the process (the stores find start/end
 * on the assumption that archive order and time agree) and a key growing
 * with it, at most KEYS_PER_MS per millisecond (more move the stamp on).
 */
export interface ArchiveSequence {
  next(): { readonly at: number; readonly key: number };
  /** Numbers what comes next after everything stamped up to `at` (the store's newest, at start). */
  floor(at: number): void;
}

export function archiveSequence(now: () => number): ArchiveSequence {
  let last = 0;
  let n = 0;
  return {
    next() {
      const t = now();
      if (t > last) { last = t; n = 0; } else if (++n >= KEYS_PER_MS) { last++; n = 0; }
      return { at: last, key: last * KEYS_PER_MS + n };
    },
    floor(at) {
      if (at < last) return;
      last = at;
      n = KEYS_PER_MS - 1;
    },
  };
}

export { archiveIdFor };

/** Prefs of accounts kept in memory at most (the least recently used go first). */
export const PREFS_CACHE_SIZE = 10_000;

/**
 * A bounded cache of accounts' prefs, the least recently used dropped first. lru-cache, not a Map
 * re-inserted on every hit: asked twice per archived message, the Map's delete and set cost the
 * event loop 0.9 µs per message at saturation (bench/RESULTS.md, "Message archive").
 */
export class PrefsCache {
  readonly #lru = new LRUCache<string, ArchivePrefs>({ max: PREFS_CACHE_SIZE });
  get(key: string): ArchivePrefs | undefined {
    return this.#lru.get(key);
  }
  delete(key: string): void {
    this.#lru.delete(key);
  }
  set(key: string, prefs: ArchivePrefs): void {
    this.#lru.set(key, prefs);
  }
}

/**
 * XEP-0402 §5.3 compatibility with XEP-0048: the account's bookmarks live
 * in `urn:xmpp:bookmarks:1` (one item per room, its id the room's JID) and
 * in the legacy `storage:bookmarks` node (one item holding every room);
 * a change to either is written to the other, so Converse (which uses the
 * new node once `urn:xmpp:bookmarks:1#compat` is advertised) and older
 * clients see the same rooms.
 */
import { WRITTEN_LIMITS, parseXml, x, type XmlElement } from '../../../xml/index.js';
import type { Jid } from '../../../jid/index.js';
import type { PepItem, PepNodeConfig, PepStore } from '../../../storage/ports/pep.js';
import { DEFAULT_CONFIG } from './config.js';

export const BOOKMARKS = 'urn:xmpp:bookmarks:1';
export const LEGACY_BOOKMARKS = 'storage:bookmarks';
export const COMPAT_FEATURE = `${BOOKMARKS}#compat`;

// Read back what the server wrote: not bound by a client's input limits (xml/limits.ts).
const STORED_LIMITS = WRITTEN_LIMITS;

/** The bookmarks node kept in step with `node`, or undefined when `node` is neither. */
export function otherBookmarksNode(node: string): string | undefined {
  return node === BOOKMARKS ? LEGACY_BOOKMARKS : node === LEGACY_BOOKMARKS ? BOOKMARKS : undefined;
}

/** XEP-0402 §5.3: "the same access model (whitelist)" on both nodes. */
const whitelist = (maxItems: number): PepNodeConfig => ({ ...DEFAULT_CONFIG, accessModel: 'whitelist', maxItems });

/** XEP-0048 `<conference jid name autojoin><nick/><password/></conference>` → XEP-0402 items. */
export function toBookmarks2(storage: XmlElement): PepItem[] {
  return storage.getChildren('conference').filter((c) => c.attr('jid')).map((c) => {
    const autojoin = c.attr('autojoin') === 'true' || c.attr('autojoin') === '1';
    const nick = c.getChildText('nick');
    const password = c.getChildText('password');
    const conference = x('conference', { xmlns: BOOKMARKS, name: c.attr('name'), autojoin: autojoin ? 'true' : undefined },
      nick !== undefined ? x('nick', {}, nick) : undefined, password !== undefined ? x('password', {}, password) : undefined);
    return { id: c.attr('jid')!, payload: conference.toString() };
  });
}

/** XEP-0402 items → one XEP-0048 `<storage/>`. */
export function toLegacy(items: readonly PepItem[]): XmlElement {
  const storage = x('storage', { xmlns: LEGACY_BOOKMARKS });
  for (const item of items) {
    const c = parseXml(item.payload, STORED_LIMITS);
    const nick = c.getChildText('nick');
    const password = c.getChildText('password');
    storage.append(x('conference', { jid: item.id, name: c.attr('name'), autojoin: c.attr('autojoin') === 'true' || c.attr('autojoin') === '1' ? 'true' : 'false' },
      nick !== undefined ? x('nick', {}, nick) : undefined, password !== undefined ? x('password', {}, password) : undefined));
  }
  return storage;
}

/**
 * After a change to `node` of `service`, writes the other bookmarks node to
 * match; returns the other node's name and its new items (for
 * notifications), or undefined when `node` is neither.
 */
export async function mirrorBookmarks(pep: PepStore, service: Jid, node: string, maxItems: number): Promise<{ node: string; config: PepNodeConfig; items: PepItem[] } | undefined> {
  const { domain, local } = service;
  if (node === BOOKMARKS) {
    const legacy = { id: 'current', payload: toLegacy(await pep.items(domain, local, BOOKMARKS)).toString() };
    const config = (await pep.node(domain, local, LEGACY_BOOKMARKS)) ?? whitelist(1);
    await pep.configure(domain, local, LEGACY_BOOKMARKS, config);
    await pep.publish(domain, local, LEGACY_BOOKMARKS, legacy, config.maxItems);
    return { node: LEGACY_BOOKMARKS, config, items: [legacy] };
  }
  if (node !== LEGACY_BOOKMARKS) return undefined;
  const [current] = await pep.items(domain, local, LEGACY_BOOKMARKS, { max: 1 });
  const items = current ? toBookmarks2(parseXml(current.payload, STORED_LIMITS)).slice(0, maxItems) : [];
  const config = (await pep.node(domain, local, BOOKMARKS)) ?? whitelist(maxItems);
  await pep.configure(domain, local, BOOKMARKS, config);
  await pep.purgeNode(domain, local, BOOKMARKS);
  for (const item of items) await pep.publish(domain, local, BOOKMARKS, item, config.maxItems);
  return { node: BOOKMARKS, config, items };
}

import { x, type XmlElement } from '../../../xml/index.js';
import { tryParseJid, type Jid } from '../../../jid/index.js';
import { StanzaErrorException } from '../../errors.js';
import type { ArchivePrefs } from '../../../storage/ports/archive.js';
import { NS_MAM } from './ns.js';

/** JIDs one <always/> or <never/> list may hold: a prefs document stays small. */
export const MAX_PREFS_JIDS = 1000;
const DEFAULTS = new Set(['always', 'never', 'roster']);

/**
 * XEP-0313 v0.6 §6 (now XEP-0441) <prefs/>: `default` is always, never or
 * roster; <always/> and <never/> list JIDs, bare or full, kept as given
 * (normalised). A bad document is bad-request; more than MAX_PREFS_JIDS is
 * not-acceptable.
 */
export function parsePrefs(el: XmlElement): ArchivePrefs {
  const def = el.attr('default');
  if (def === undefined || !DEFAULTS.has(def)) throw new StanzaErrorException('bad-request', "default must be 'always', 'never' or 'roster'");
  return { default: def as ArchivePrefs['default'], always: jids(el.getChild('always', NS_MAM)), never: jids(el.getChild('never', NS_MAM)) };
}

function jids(list: XmlElement | undefined): string[] {
  const out = new Set<string>();
  for (const j of list?.getChildren('jid', NS_MAM) ?? []) {
    const jid = tryParseJid(j.text().trim());
    if (!jid) throw new StanzaErrorException('jid-malformed', `not a JID: ${j.text()}`);
    // XEP-0441 "JID matching": a listed full JID names that resource only (archives() below).
    out.add(jid.full);
  }
  if (out.size > MAX_PREFS_JIDS) throw new StanzaErrorException('not-acceptable', `at most ${MAX_PREFS_JIDS} JIDs per list`);
  return [...out];
}

export function prefsElement(prefs: ArchivePrefs): XmlElement {
  const list = (name: string, items: readonly string[]) => x(name, {}, ...items.map((j) => x('jid', {}, j)));
  return x('prefs', { xmlns: NS_MAM, default: prefs.default }, list('always', prefs.always), list('never', prefs.never));
}

/**
 * Whether messages with `contact` (the target JID: the 'to' of an outgoing
 * message, the 'from' of an incoming one, as routed) go into the archive:
 * the lists first (never wins over always), then the default; 'roster': as
 * the owner's roster says (the caller asks it). XEP-0441 "JID matching": "If
 * the listed JID contains a resource, compare against the target JID as-is.
 * If the listed JID has no resource (it is a bare JID) then first strip any
 * resource from the target JID prior to comparison."
 */
export function archives(prefs: ArchivePrefs, contact: Jid): boolean | 'roster' {
  if (listed(prefs.never, contact)) return false;
  if (listed(prefs.always, contact)) return true;
  if (prefs.default === 'roster') return 'roster';
  return prefs.default === 'always';
}

/** Whether `list` names `contact`: its bare JID, or its full JID as it is (XEP-0441 "JID matching"). */
function listed(list: readonly string[], contact: Jid): boolean {
  return list.length > 0 && (list.includes(contact.bare) || (contact.resource !== '' && list.includes(contact.full)));
}

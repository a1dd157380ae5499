import { NS, x, type XmlElement } from '../../../xml/index.js';
import { JidError, parseJid, type Jid } from '../../../jid/index.js';
import type { RosterItem } from '../../../storage/types.js';
import { StanzaErrorException } from '../../errors.js';

/**
 * Local limits on what a roster set may carry. RFC 6121 §2.3.3 leaves the
 * lengths to "a server-configured limit"; these are generous for people and
 * small enough that no roster grows past a few stanzas' worth per item.
 */
export const ITEM_LIMITS = { maxNameLength: 1024, maxGroupLength: 1024, maxGroups: 64 } as const;

/** `<item/>` as a roster result or push shows it (RFC 6121 §2.1.2). */
export function itemElement(item: RosterItem): XmlElement {
  return x('item', {
    jid: item.jid,
    name: item.name,
    subscription: item.subscription,
    // §2.1.2.2: ask='subscribe' is Pending Out; §3.4: approved='true' a pre-approval.
    ask: item.ask ? 'subscribe' : undefined,
    approved: item.approved ? 'true' : undefined,
  }, ...item.groups.map((g) => x('group', {}, g)));
}

/** The `<item subscription='remove'/>` of a push announcing a deletion (RFC 6121 §2.5.2). */
export function removedItemElement(jid: string): XmlElement {
  return x('item', { jid, subscription: 'remove' });
}

export type RosterSetRequest =
  | { readonly kind: 'remove'; readonly jid: Jid }
  | { readonly kind: 'update'; readonly jid: Jid; readonly name: string | undefined; readonly groups: string[] };

/**
 * Parses and checks the payload of a roster set against RFC 6121 §2.3.3
 * (and §2.4.3, §2.5.3, which refer to it). `self` is the user's bare JID.
 * Where the RFC leaves the condition open, Prosody's mod_roster is
 * followed: a JID with a resource is bad-request and the user's own JID is
 * not-allowed.
 */
export function parseRosterSet(query: XmlElement, self: Jid): RosterSetRequest {
  const children = query.getChildren();
  // §2.3.3: "The <query/> element contains more than one <item/> child element" → bad-request.
  if (children.length !== 1 || !children[0]!.is('item', NS.ROSTER)) {
    throw new StanzaErrorException('bad-request', 'a roster set carries exactly one <item/>');
  }
  const item = children[0]!;
  const jid = itemJid(item, self);
  // §2.1.2.5: 'remove' is the only subscription value a client may set; others are ignored,
  // as are 'ask' (§2.1.2.2) and 'approved' (§3.4).
  if (item.attr('subscription') === 'remove') return { kind: 'remove', jid };
  return { kind: 'update', jid, name: itemName(item), groups: itemGroups(item) };
}

function itemJid(item: XmlElement, self: Jid): Jid {
  const raw = item.attr('jid');
  if (raw === undefined) throw new StanzaErrorException('bad-request', "the item has no 'jid'");
  let jid: Jid;
  try {
    jid = parseJid(raw);
  } catch (err) {
    if (err instanceof JidError) throw new StanzaErrorException('jid-malformed', `'${raw.slice(0, 64)}' is not a JID`);
    throw err;
  }
  if (jid.resource !== '') throw new StanzaErrorException('bad-request', 'roster items are bare JIDs');
  if (jid.bare === self.bare) throw new StanzaErrorException('not-allowed', 'your own JID cannot be a roster item');
  return jid;
}

function itemName(item: XmlElement): string | undefined {
  const name = item.attr('name');
  // An empty name is no name (Prosody); §2.3.3: one above the limit is not-acceptable.
  if (name === undefined || name === '') return undefined;
  if ([...name].length > ITEM_LIMITS.maxNameLength) {
    throw new StanzaErrorException('not-acceptable', `the name is longer than ${ITEM_LIMITS.maxNameLength} characters`);
  }
  return name;
}

function itemGroups(item: XmlElement): string[] {
  const groups = item.getChildren('group', NS.ROSTER).map((g) => g.text());
  for (const g of groups) {
    // §2.3.3: a zero-length group, or one above the limit, is not-acceptable.
    if (g === '') throw new StanzaErrorException('not-acceptable', 'a group name cannot be empty');
    if ([...g].length > ITEM_LIMITS.maxGroupLength) {
      throw new StanzaErrorException('not-acceptable', `a group name is longer than ${ITEM_LIMITS.maxGroupLength} characters`);
    }
  }
  // §2.3.3: duplicate groups are bad-request.
  if (new Set(groups).size !== groups.length) throw new StanzaErrorException('bad-request', 'the same group is named twice');
  if (groups.length > ITEM_LIMITS.maxGroups) throw new StanzaErrorException('not-acceptable', `more than ${ITEM_LIMITS.maxGroups} groups`);
  return groups;
}

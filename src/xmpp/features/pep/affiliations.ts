/**
 * XEP-0060 §8.9 (Manage Affiliations) on a PEP node, for its owner: get the
 * list, set `member`, `outcast` or `none` (removes). Members are what the
 * whitelist access model admits (§4.5); an outcast sees no item of the
 * node whatever its model (§4.1). Kept in the node's configuration
 * document (PepNodeConfig.affiliations), so each backend stores them with
 * no schema change. The owner's own affiliation is `owner` and stays so.
 */
import { NS, x, type XmlElement } from '../../../xml/index.js';
import { tryParseJid, type Jid } from '../../../jid/index.js';
import { StanzaErrorException } from '../../errors.js';
import type { PepAffiliation, PepNodeConfig } from '../../../storage/ports/pep.js';
import { PubsubError } from './errors.js';

/** Affiliations one node keeps at most: its configuration document stays small. */
export const MAX_AFFILIATIONS = 1000;

/** Code point order of the JIDs (the order the stores list everything else in). */
const byCodePoints = ([a]: [string, unknown], [b]: [string, unknown]): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/**
 * `<pubsub xmlns='…#owner'><affiliations node>` with the owner and every member and outcast (§8.9.1.2),
 * in JID order (code point order): the stores do not keep the document's key order alike (PostgreSQL's
 * JSONB puts shorter keys first), so the list is sorted here, the same on every backend.
 */
export function affiliationsElement(owner: Jid, node: string, config: PepNodeConfig): XmlElement {
  const listed = Object.entries(config.affiliations ?? {}).sort(byCodePoints).map(([jid, affiliation]) => x('affiliation', { jid, affiliation }));
  return x('pubsub', { xmlns: NS.PUBSUB_OWNER },
    x('affiliations', { node }, x('affiliation', { jid: owner.bare, affiliation: 'owner' }), ...listed));
}

/**
 * The node's affiliations after the request's changes (§8.9.2): all or
 * nothing; a JID that is not one is jid-malformed, an affiliation other than
 * member, outcast or none feature-not-implemented (§8.9.2.4), the owner's
 * own not-acceptable (a PEP node has its account as sole owner).
 */
export function applyAffiliations(owner: Jid, request: XmlElement, config: PepNodeConfig): Record<string, PepAffiliation> {
  const next: Record<string, PepAffiliation> = { ...(config.affiliations ?? {}) };
  const changes = request.getChildren('affiliation');
  if (changes.length === 0) throw new StanzaErrorException('bad-request', 'expected <affiliation/> elements');
  for (const el of changes) {
    const jid = tryParseJid(el.attr('jid') ?? '');
    if (!jid) throw new StanzaErrorException('jid-malformed', `not a JID: ${el.attr('jid') ?? ''}`);
    const affiliation = el.attr('affiliation');
    if (jid.bare === owner.bare) throw new StanzaErrorException('not-acceptable', "the owner's affiliation is owner");
    if (affiliation === 'none') delete next[jid.bare];
    else if (affiliation === 'member' || affiliation === 'outcast') next[jid.bare] = affiliation;
    else throw new PubsubError('feature-not-implemented', 'unsupported', `${affiliation ?? 'missing'}-affiliation`);
  }
  if (Object.keys(next).length > MAX_AFFILIATIONS) {
    throw new StanzaErrorException('policy-violation', `at most ${MAX_AFFILIATIONS} affiliations per node`);
  }
  return next;
}

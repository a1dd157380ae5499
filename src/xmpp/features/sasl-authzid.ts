import { normalizeLocal, tryParseJid } from '../../jid/index.js';
import type { Session } from '../session.js';

/**
 * Whether `id` names the account `local` at `host`: a bare JID (RFC 6120 §6.3.8), or the bare
 * username some clients send, compared after RFC 7622 preparation (XEP-0388 §7.1: "normalized by
 * treating it as a JID"), so `Alice@LOCALHOST` names alice@localhost. `fullJid`: a resource allowed.
 */
export function namesAccount(id: string, local: string, host: string, fullJid = false): boolean {
  if (!id.includes('@')) {
    try { return normalizeLocal(id) === local; } catch { return false; }
  }
  const jid = tryParseJid(id);
  return jid !== null && jid.local === local && jid.domain === host && (fullJid || jid.resource === '');
}

/**
 * RFC 6120 §6.3.8: a non-empty authorization identity may only name the authenticated account
 * itself; XEP-0388 §7.1: "Any non-empty authorization string MUST be considered an error if the
 * stream's from attribute (if present) does not match."
 */
export function authzidAccepted(session: Session, authzid: string, local: string): boolean {
  if (authzid === '') return true;
  if (!namesAccount(authzid, local, session.host!)) return false;
  return session.streamFrom === undefined || namesAccount(session.streamFrom, local, session.host!, true);
}

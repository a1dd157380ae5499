import { NS, x, type XmlElement } from '../../../xml/index.js';
import type { Jid } from '../../../jid/index.js';
import type { SessionManager } from '../../session-manager.js';
import type { Session } from '../../session.js';
import type { Account } from './account.js';
import type { Accounts } from './accounts.js';

/** Whether `account` blocks `jid` (XEP-0191): given by blocking, so this service knows no blocklist. */
export type IsBlocked = (account: Account, jid: Jid) => boolean;

/**
 * Presence between local accounts, the part every presence path shares:
 * both ends are on this server, so "the contact's server delivers" is a
 * direct send to the contact's sessions. Blocking (XEP-0191) is applied in
 * both directions: nothing goes to a JID the sender blocks, nor from a JID
 * the recipient blocks.
 */
export class PresenceRelay {
  constructor(private readonly sessions: SessionManager, private readonly accounts: Accounts, private readonly isBlocked: IsBlocked) {}

  /** The account's available resources (RFC 6121 §4.1: sent initial presence). */
  available(account: Account): Session[] {
    return [...this.sessions.available(account.host, account.username)];
  }

  /** Whether a stanza from `from` may reach `to`'s account (neither blocks the other). */
  mayReach(from: Jid, fromAccount: Account | undefined, to: Jid, toAccount: Account | undefined): boolean {
    if (fromAccount && this.isBlocked(fromAccount, to)) return false;
    return !(toAccount && this.isBlocked(toAccount, from));
  }

  /**
   * RFC 6121 §8.5.2.1.3 / §8.5.3.1: presence to a bare JID goes to every
   * available resource, to a full JID to that resource. Callers check
   * blocking; an account with no available resource gets nothing. With
   * `only`, just the sessions it accepts (a cluster node's own).
   * Returns how many sessions it went to (fan-outs count their work).
   */
  deliver(to: Jid, stanza: XmlElement, only?: (s: Session) => boolean): number {
    if (to.resource !== '') {
      const s = this.sessions.get(to.domain, to.local, to.resource);
      if (!s || (only && !only(s))) return 0;
      s.send(stanza);
      return 1;
    }
    let n = 0;
    for (const s of this.sessions.available(to.domain, to.local)) {
      if (only && !only(s)) continue;
      s.send(stanza);
      n++;
    }
    return n;
  }

  /**
   * Sends the current presence of each of `account`'s available resources
   * to `to` (RFC 6121 §4.3.2 probe answers, §3.1.5 after an approval). Only
   * a local `to` with available resources can receive it. Returns the
   * number of deliveries.
   */
  sendCurrent(account: Account, to: Jid): number {
    return this.#fromEachResource(account, to, (s) => s.presence!.clone().setAttr('to', to.full));
  }

  /** Unavailable presence from each of `account`'s available resources to `to` (RFC 6121 §3.2.2, §3.3.3). */
  sendUnavailable(account: Account, to: Jid): number {
    return this.#fromEachResource(account, to, (s) => x('presence', { xmlns: NS.CLIENT, type: 'unavailable', from: s.full_jid, to: to.full }));
  }

  #fromEachResource(account: Account, to: Jid, build: (s: Session) => XmlElement): number {
    const target = this.accounts.peek(to.domain, to.local);
    if (!target) return 0; // not in memory: no session, so no available resource to deliver to
    let n = 0;
    for (const s of this.available(account)) {
      if (!this.mayReach(s.jid!, account, to, target)) continue;
      n += this.deliver(to, build(s));
    }
    return n;
  }
}

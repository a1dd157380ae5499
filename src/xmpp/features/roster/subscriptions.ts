import { NS, x, type XmlElement } from '../../../xml/index.js';
import { tryParseJid, type Jid } from '../../../jid/index.js';
import type { ModuleContext } from '../../context.js';
import type { RouteEvent } from '../../events.js';
import type { Account } from '../accounts/account.js';
import type { AccountsService } from '../accounts/index.js';
import { StanzaErrorException } from '../../errors.js';
import { itemBytes } from '../accounts/quota.js';
import type { RosterService } from './service.js';
import type { Session } from '../../session.js';
import { delivered, type DeliverResult } from '../../pipeline.js';
import { PRIORITY } from '../../priorities.js';

import { inbound, outbound } from './state.js';
import { hasFrom, isSubscriptionType, type SubscriptionType } from '../accounts/subscription.js';

/**
 * Presence subscriptions (RFC 6121 §3) between local accounts: the user's
 * server half (Appendix A.2) on the sender's roster, then the contact's
 * server half (A.3) on the contact's roster, with the roster pushes,
 * deliveries and presence that each step calls for.
 */
export class Subscriptions {
  constructor(private readonly ctx: ModuleContext, private readonly svc: RosterService, private readonly accounts: AccountsService) {}

  /** Hooks presence of the four subscription types; runs above presence.ts's delivery. */
  register(): void {
    const handle = (event: RouteEvent): DeliverResult | Promise<DeliverResult> => {
      const type = event.stanza.attr('type');
      if (event.stanza.name !== 'presence' || !isSubscriptionType(type)) return;
      // §3.1.2: subscriptions are between bare JIDs, whatever resource the client named.
      const contact = event.to.bareJid();
      const { origin, stanza } = event;
      // On the sender's account queue (its roster changes in order, from any of its sessions); the
      // sender's next stanza waits for this (core.ts); a stanza error answers the sender.
      if (origin) {
        return delivered(this.ctx.queues.account(origin.jid!.bare, () => this.outbound(this.accounts.accountOf(origin), type, contact, stanza, origin)));
      }
      // From the server itself (no local session): only the contact's half applies.
      const from = tryParseJid(stanza.attr('from'))?.bareJid();
      if (!from) return 'delivered';
      return delivered(this.inbound(type, from, contact, stanza, undefined).catch((err: unknown) => this.ctx.log.error({ err }, 'subscription processing failed')));
    };
    const { hooks } = this.ctx;
    hooks.deliver('presence/bare', handle, PRIORITY.route.subscriptions);
    hooks.deliver('presence/full', handle, PRIORITY.route.subscriptions);
    // No s2s: a remote contact's half cannot run, but the user's roster still follows A.2.
    hooks.deliver('route/remote', handle, PRIORITY.route.subscriptions);
  }

  /** RFC 6121 A.2 for a stanza `account` sent, then A.3 at a local contact; on `origin`'s queue (fan-outs, queue.ts). */
  async outbound(account: Account, type: SubscriptionType, contact: Jid, stanza: XmlElement, origin: Session | undefined): Promise<void> {
    if (contact.local === '' || contact.bare === account.bare) return; // nothing to subscribe to
    const before = account.state(contact.bare);
    const step = outbound(type, before);
    // A change that needs an item needs room for it, by count and by bytes (RosterService.checkRoom).
    if (step.next.subscription !== 'none' || step.next.ask || step.next.approved) {
      const grows = account.items.has(contact.bare) ? 0 : itemBytes({ jid: contact.bare, name: undefined, groups: [] });
      this.svc.checkRoom(account, contact.bare, grows);
    }
    const pushed = this.svc.setState(account, contact.bare, step.next, origin);
    if (pushed) await pushed;
    if (step.route && this.ctx.router.isLocal(contact.domain)) {
      // Stored before the contact's side runs: in a cluster the stanza may reach a node that reads it again.
      await account.flushed();
      // §3.1.2: stamped with the user's bare JID, addressed to the contact's bare JID.
      const routed = stanza.clone().setAttr('from', account.bare).setAttr('to', contact.bare);
      await this.inbound(type, account.jid, contact, routed, origin);
    }
    this.#publisherChanged(account, contact, hasFrom(before.subscription), hasFrom(step.next.subscription), false);
  }

  /**
   * RFC 6121 A.3 at the local account `to` for a stanza from the bare JID
   * `from`. For an account that does not exist the stanza is ignored
   * (§8.5.1 allows it for every subscription type): the sender cannot tell
   * a missing account from one that has not answered.
   */
  async inbound(type: SubscriptionType, from: Jid, to: Jid, stanza: XmlElement, origin: Session | undefined): Promise<void> {
    if (!this.ctx.router.isLocal(to.domain) || !(await this.accounts.accounts.exists(to))) return;
    await this.accounts.accounts.use(to, async (contact) => {
      // XEP-0191 §3.3: from a blocked JID nothing is delivered, answered or changed.
      if (this.accounts.isBlocked(contact, from)) return;
      const before = contact.state(from.bare);
      const step = inbound(type, before);
      // A request kept as Pending In counts against the contact's MAX_ROSTER_BYTES; one that
      // does not fit is neither kept nor delivered, and its sender hears resource-constraint (wait).
      if (step.next.pendingIn && !before.pendingIn && !this.svc.hasRoomFor(contact, { jid: from.bare, stanza: stanza.toString() })) {
        throw new StanzaErrorException('resource-constraint', 'the roster of the contact is full');
      }
      const pushed = this.svc.setState(contact, from.bare, step.next, origin, type === 'subscribe' ? stanza : undefined);
      if (pushed) await pushed;
      // §3.1.3: a request goes to every available resource (and is kept as Pending In for the next login).
      // Stored first: a cluster node holding a resource reads both accounts again when it arrives there.
      if (step.deliver) {
        await contact.flushed();
        this.accounts.relay.deliver(contact.jid, stanza);
      }
      if (step.autoReply) {
        // §3.1.3 / §3.4: the server approves on the contact's behalf.
        await this.inbound('subscribed', contact.jid, from, x('presence', { xmlns: NS.CLIENT, type: 'subscribed', from: contact.bare, to: from.bare }), origin);
      }
      this.#publisherChanged(contact, from, hasFrom(before.subscription), hasFrom(step.next.subscription), step.autoReply);
    });
  }

  /**
   * The publisher's side of a change: once `contact` may see `account`'s
   * presence, it gets the current presence (§3.1.5); when it may no longer,
   * it gets unavailable from each resource (§3.2.2, §3.3.3). An auto-reply
   * to a repeated request also resends presence (Prosody does the same).
   */
  #publisherChanged(account: Account, contact: Jid, hadFrom: boolean, hasFromNow: boolean, resend: boolean): void {
    if (!this.ctx.router.isLocal(contact.domain)) return;
    if (hasFromNow && (!hadFrom || resend)) this.accounts.relay.sendCurrent(account, contact);
    else if (hadFrom && !hasFromNow) this.accounts.relay.sendUnavailable(account, contact);
    if (hasFromNow && !hadFrom && this.ctx.hooks.has('subscriber-added')) void this.ctx.hooks.run('subscriber-added', { account: account.jid, contact: contact.bareJid() });
  }
}

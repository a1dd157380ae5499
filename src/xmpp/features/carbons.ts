import { NS, x, type XmlElement } from '../../xml/index.js';
import { StanzaErrorException } from '../errors.js';
import type { ModuleContext } from '../context.js';
import { resourceChanged, type RouteEvent } from '../events.js';
import type { Session } from '../session.js';
import { bareTargets } from './message.js';
import { PRIORITY } from '../priorities.js';
import { messageType } from '../message-types.js';

/**
 * Message carbons (XEP-0280, urn:xmpp:carbons:2): every carbons-enabled
 * resource of an account sees both sides of its conversations.
 *
 * Copies are made once a message routed to a local account has been
 * delivered, stored or refused (notify on message/full and message/bare): the
 * sender's other enabled resources get a <sent/> copy (§8), the recipient's
 * enabled resources that do not get the message itself a <received/> copy
 * (§7). Messages to other domains get no copy: there is no s2s, they bounce.
 */
export interface CarbonsDeps {
  /**
   * XEP-0313 §3: the sender's own <stanza-id/> for a message it archived,
   * put into its <sent/> copies in place of the recipient's (the archive
   * feature provides it; without it sent copies carry no stanza id).
   */
  readonly senderStanzaId?: (event: RouteEvent) => XmlElement | undefined;
}

export function register(ctx: ModuleContext, deps: CarbonsDeps = {}): void {
  // Session.carbons is the flag (so a cluster's remote sessions carry it); the
  // session manager counts the bound ones, which tells when there is nothing to do.
  const sessions = ctx.sessions;
  ctx.disco.addFeature(NS.CARBONS);

  // §4–5: enable/disable, each idempotent (§10.1). Answered without `to`
  // (the spec's form) and, like ejabberd, when sent to the server.
  ctx.iq.register('both', 'set', NS.CARBONS, (session, _iq, payload) => {
    const on = payload.local === 'enable';
    if (!on && payload.local !== 'disable') throw new StanzaErrorException('bad-request', 'expected <enable/> or <disable/>');
    // Answered once every node knows (a cluster's directory): the copies start with the answer.
    return setCarbons(ctx, session, on);
  });

  ctx.hooks.notify('message/full', (event) => {
    if (sessions.carbonsEnabled === 0) return; // the hot path: nobody enabled carbons, nothing to look up
    const { to } = event;
    const target = ctx.sessions.get(to.domain, to.local, to.resource);
    // The resource went while the route was on its way (message.ts deliverFull): the message takes
    // the bare-JID rules, so those resources get it and the others their copies, as for a bare JID.
    copy(event, target ? [target] : bareTargets(ctx, event));
  }, PRIORITY.route.carbons);

  ctx.hooks.notify('message/bare', (event) => {
    if (sessions.carbonsEnabled > 0) copy(event, bareTargets(ctx, event));
  }, PRIORITY.route.carbons);

  function copy(event: RouteEvent, direct: readonly Session[]): void {
    const { origin, stanza, to } = event;
    // Messages the server routes itself (errors, stream-management
    // hand-over of unacked messages) were copied when first routed.
    // The hot path: with no carbons-enabled session at all, nothing is allocated.
    if (sessions.carbonsEnabled === 0 || !origin || origin.username === undefined || !eligible(stanza)) return;
    const skip = (s: Session): boolean => !s.carbons || s === origin || direct.includes(s);
    let inner: XmlElement | undefined; // cloned once, and only when some session gets a copy
    let sentInner: XmlElement | undefined;
    const sameAccount = origin.username === to.local && origin.host === to.domain;
    // §8: "excluding the sending client", whether or not it enabled carbons.
    // A message to one's own account is copied once, as received, below.
    if (!sameAccount) {
      for (const s of ctx.sessions.resources(origin.host!, origin.username)) {
        if (!skip(s)) s.send(wrap('sent', sentInner ??= sentCopy(event), s));
      }
    }
    // §7: "each Carbons-enabled resource ... that did not receive it under the RFC 6121 delivery rules".
    // XEP-0191: a recipient that blocks the sender refused it; its resources get no copy.
    if (event.refusedByRecipient || isMucPrivateMessage(stanza)) return;
    for (const s of ctx.sessions.resources(to.domain, to.local)) {
      if (!skip(s)) s.send(wrap('received', inner ??= stanza.clone().setAttr('xmlns', NS.CLIENT), s));
    }
  }

  /** The message for <sent/> copies: the recipient's stanza ids are not the sender's (XEP-0313 §3). */
  function sentCopy(event: RouteEvent): XmlElement {
    const copy = event.stanza.clone().setAttr('xmlns', NS.CLIENT);
    const own = deps.senderStanzaId?.(event);
    copy.children = copy.children.filter((c) => typeof c === 'string' || !(c.is('stanza-id', NS.SID) && c.attr('by') === event.to.bare));
    if (own) copy.append(own);
    return copy;
  }
}

/** §4–5 enable/disable, also inline in Bind2 (XEP-0386 §3: "Message Carbons MUST be enabled at this point"). */
export function setCarbons(ctx: ModuleContext, session: Session, on: boolean): Promise<undefined> | undefined {
  if (session.carbons === on) return undefined;
  ctx.sessions.setCarbons(session, on);
  return resourceChanged(ctx.hooks, session)?.then(() => undefined);
}

/**
 * §6.1 (recommended rules), without error copies: a message is copied
 * unless it is <private/> (§7, with its XEP-0334 <no-copy/> hint) when it
 * is of type chat, or normal with a body, or carries IM payloads (receipts,
 * chat states, markers) or a MUC invitation. Groupchat, headline and error
 * are never copied. Since error copies are left out, the
 * urn:xmpp:carbons:rules:0 feature is not advertised.
 */
export function eligible(stanza: XmlElement): boolean {
  if (stanza.getChild('private', NS.CARBONS) || stanza.getChild('no-copy', NS.HINTS)) return false;
  // A copy of a copy would confuse every client (and loop between accounts).
  if (stanza.getChild('sent', NS.CARBONS) || stanza.getChild('received', NS.CARBONS)) return false;
  const type = messageType(stanza);
  if (type === 'chat') return true;
  if (type !== 'normal') return false;
  if (stanza.getChild('body', NS.CLIENT)) return true;
  return stanza.getChildren().some((c) =>
    c.ns === NS.RECEIPTS || c.ns === NS.CHATSTATES || c.ns === NS.CHAT_MARKERS || c.ns === NS.X_CONFERENCE
    || (c.ns === NS.MUC_USER && c.getChild('invite', NS.MUC_USER) !== undefined));
}

/** §6.1: a private message from a MUC participant is replicated by the room itself, so no received copy. */
function isMucPrivateMessage(stanza: XmlElement): boolean {
  const user = stanza.getChild('x', NS.MUC_USER);
  return user !== undefined && user.getChild('invite', NS.MUC_USER) === undefined;
}

/** §7–8: from the account's bare JID, to the receiving resource, same type, the original forwarded (XEP-0297). */
function wrap(kind: 'sent' | 'received', inner: XmlElement, to: Session): XmlElement {
  return x('message', { xmlns: NS.CLIENT, from: to.jid!.bare, to: to.full_jid, type: inner.attr('type') },
    x(kind, { xmlns: NS.CARBONS }, x('forwarded', { xmlns: NS.FORWARD }, inner)));
}

import { NS, type XmlElement } from '../../xml/index.js';
import { tryParseJid } from '../../jid/index.js';
import type { ModuleContext } from '../context.js';
import type { RouteEvent } from '../events.js';
import type { Session } from '../session.js';
import { PRIORITY } from '../priorities.js';
import { handledAsBareWithoutResource, messageType } from '../message-types.js';

/** What message delivery gives the features that deliver on its behalf (offline storage's waiting messages). */
export interface MessageDelivery {
  /** Sends the message to the resources the bare-JID rules pick (false when none), remembering who got one given to several (the hand-over asks). */
  deliverBare(event: RouteEvent): boolean;
}

/**
 * Message delivery between local accounts (RFC 6121 §8.5): the standard
 * deliver handlers, last on their events. Offline storage delivers above
 * them and carbons copy after them (priorities.ts); the pieces they reuse
 * are exported. A chat or normal message to a full JID whose resource is
 * not connected reaches the bare-JID rules through the router (§8.5.3.2.1).
 */
export function register(ctx: ModuleContext): MessageDelivery {
  // §8.5.2.1.1: a message to the bare JID goes to every resource of the top priority, the same
  // stanza to each. Who got it, while one of them has not acknowledged it (XEP-0198): see 'hand-over'.
  const shared = new WeakMap<XmlElement, readonly Session[]>();
  const toBare = (event: RouteEvent): boolean => {
    const targets = bareTargets(ctx, event);
    for (const s of targets) s.send(event.stanza);
    if (targets.length > 1) shared.set(event.stanza, targets);
    return targets.length > 0;
  };
  // XEP-0198 §4 hand-over of a session that ends: a message another resource of the account got
  // too, and that resource is still there (connected, or hibernating and resumable), is not routed
  // again: routed to the bare JID it would reach that resource a second time. Once that resource
  // ends too with the message unacknowledged, it is handed over then.
  ctx.hooks.transform('hand-over', (event) => {
    const others = (stanza: XmlElement): boolean => shared.get(stanza)?.some((s) => s !== event.session && !s.destroyed) === true;
    if (event.stanzas.some((u) => others(u.stanza))) event.stanzas = event.stanzas.filter((u) => !others(u.stanza));
  }, PRIORITY.lifecycle.default);

  // XEP-0203 §7: a delay notation that claims to come from this server but
  // arrives from a client is a forgery; the recipient's server SHOULD
  // discard it. Only our own notations then say "stored by the server".
  // Presence too: the server stamps none, so one in its name is never true.
  ctx.hooks.transform('stanza-in', ({ stanza }) => {
    if (stanza.name !== 'iq') dropForgedDelays(stanza, ctx.hosts);
  }, PRIORITY.stanzaIn.forgedDelays);

  ctx.hooks.deliver('message/full', (event) => {
    deliverFull(ctx, event);
    return 'delivered';
  }, PRIORITY.route.standard);

  ctx.hooks.deliver('message/bare', (event) => {
    if (!toBare(event)) undeliverable(ctx, event);
    return 'delivered';
  }, PRIORITY.route.standard);

  ctx.hooks.deliver('message/host', (event) => {
    ctx.router.bounce(event, 'service-unavailable');
    return 'delivered';
  }, PRIORITY.route.standard);
  return { deliverBare: toBare };
}

/**
 * RFC 6121 §8.5.3: to the bound resource when there is one; otherwise
 * groupchat bounces and headline and error are dropped (§8.5.3.2.1). Chat
 * and normal only get here when the resource was connected when the router
 * chose the full JID (it sends them to the bare-JID rules otherwise); if it
 * went while the route was on its way (a transform awaited: the archive
 * reading prefs, a cluster stub dropped meanwhile), they are routed again,
 * with no origin, and the router takes the bare-JID rules, offline storage
 * included (the archive does not archive a re-route twice).
 */
export function deliverFull(ctx: ModuleContext, event: RouteEvent): void {
  const { to, stanza } = event;
  const target = ctx.sessions.get(to.domain, to.local, to.resource);
  if (target) {
    target.send(stanza);
    return;
  }
  const type = messageType(stanza);
  if (type === 'groupchat') ctx.router.bounce(event, 'service-unavailable');
  else if (handledAsBareWithoutResource(type)) void ctx.router.route(null, stanza, to);
  // headline and error: silently ignored.
}

/**
 * RFC 6121 §8.5.2.1.1: the available resources with the highest
 * non-negative priority. When several share it, every one of them gets the
 * message (Prosody's and ejabberd's policy, and what multi-tab browser users
 * expect); headline goes to all non-negative resources. Groupchat goes to
 * none (it bounces), nor does error (silently ignored, as Prosody and
 * ejabberd do: what has a bare JID as its sender is the server's own, a
 * carbon or a PEP notification, and an error to it is nobody's to read).
 */
export function bareTargets(ctx: ModuleContext, event: RouteEvent): Session[] {
  const { to, stanza } = event;
  const type = messageType(stanza);
  if (type === 'groupchat' || type === 'error') return [];
  let best = -1;
  let out: Session[] = [];
  for (const s of ctx.sessions.available(to.domain, to.local)) {
    if (s.priority < 0) continue;
    if (type === 'headline') { out.push(s); continue; }
    if (s.priority > best) { best = s.priority; out = [s]; } else if (s.priority === best) out.push(s);
  }
  return out;
}

/**
 * No available resource and nothing stored it: RFC 6121 §8.5.2.2.1 says to
 * bounce with service-unavailable — the same answer for an unknown account,
 * so nothing about which accounts exist leaks. Headline and error are dropped.
 * A message without a body (chat states alone, which XEP-0160 §3 does not
 * store) gets its payload back in the error, as from ejabberd: the sender
 * tells a notification that failed from a message (Converse.js shows nothing
 * for a chat state's bounce, and an error in the chat for one without it).
 * One with a body does not: a client that finds no message of its own by the
 * id would show the text as the contact's.
 */
export function undeliverable(ctx: ModuleContext, event: RouteEvent): void {
  const type = messageType(event.stanza);
  if (type === 'headline' || type === 'error') return;
  ctx.router.bounce(event, 'service-unavailable', undefined, { withPayload: !event.stanza.getChild('body', NS.CLIENT) });
}

/**
 * Removes top-level <delay/> notations whose `from` is an address of this server: one of our
 * domains, bare or with a resource (no account's), compared after enforcement (RFC 7622 §3.2),
 * so 'localhost.', 'LocalHost/x' or the A-labels of a domain count as ours too. A `from` that
 * is no JID goes as well: nothing a recipient can trust, and one lenient about 'localhost/'
 * reads the server in it. Those of other entities stay, the sender's own addresses included.
 */
function dropForgedDelays(stanza: XmlElement, hosts: ReadonlySet<string>): void {
  // Most stanzas carry no delay at all: nothing is allocated for them.
  let found = false;
  for (const c of stanza.children) if (typeof c !== 'string' && forgedDelay(c, hosts)) { found = true; break; }
  if (found) stanza.children = stanza.children.filter((c) => typeof c === 'string' || !forgedDelay(c, hosts));
}

function forgedDelay(el: XmlElement, hosts: ReadonlySet<string>): boolean {
  if (!el.is('delay', NS.DELAY)) return false;
  const from = el.attr('from');
  if (from === undefined) return false;
  const jid = tryParseJid(from);
  return jid === null || (jid.local === '' && hosts.has(jid.domain));
}

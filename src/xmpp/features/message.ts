import { NS, type XmlElement } from '../../xml/index.js';
import type { ModuleContext } from '../context.js';
import type { RouteEvent } from '../events.js';
import type { Session } from '../session.js';

/**
 * Message delivery between local accounts (RFC 6121 §8.5). Carbons (at 1)
 * and offline storage (at -50) hook in above these handlers; the pieces
 * they reuse are exported.
 */
export function register(ctx: ModuleContext): void {
  // XEP-0203 §7: a delay notation that claims to come from this server but
  // arrives from a client is a forgery; the recipient's server SHOULD
  // discard it. Only our own notations then say "stored by the server".
  ctx.hooks.on('stanza-in', ({ stanza }) => {
    if (stanza.name === 'message') dropForgedDelays(stanza, ctx.hosts);
  }, 200);

  ctx.hooks.on('message/full', (event) => {
    deliverFull(ctx, event);
    return true;
  }, -100);

  ctx.hooks.on('message/bare', (event) => {
    if (!deliverBare(ctx, event)) undeliverable(ctx, event);
    return true;
  }, -100);

  ctx.hooks.on('message/host', (event) => {
    ctx.router.bounce(event, 'service-unavailable');
    return true;
  }, -100);
}

/**
 * RFC 6121 §8.5.3: to the bound resource when there is one; otherwise
 * groupchat bounces, headline and error are dropped, and chat and normal
 * fall back to the bare-JID rules (fired as `message/bare`, so offline
 * storage and carbons take part).
 */
export function deliverFull(ctx: ModuleContext, event: RouteEvent): void {
  const { to, stanza } = event;
  const target = ctx.sessions.get(to.domain, to.local, to.resource);
  if (target) {
    target.send(stanza);
    return;
  }
  const type = stanza.attr('type');
  if (type === 'groupchat') ctx.router.bounce(event, 'service-unavailable');
  else if (type !== 'headline' && type !== 'error') ctx.hooks.fire('message/bare', event);
}

/** Sends the message to the resources the bare-JID rules pick; false when there are none. */
export function deliverBare(ctx: ModuleContext, event: RouteEvent): boolean {
  const targets = bareTargets(ctx, event);
  for (const s of targets) s.send(event.stanza);
  return targets.length > 0;
}

/**
 * RFC 6121 §8.5.2.1.1: the available resources with the highest
 * non-negative priority. When several share it, every one of them gets the
 * message (Prosody's and ejabberd's policy, and what multi-tab browser users
 * expect); headline goes to all non-negative resources.
 */
export function bareTargets(ctx: ModuleContext, event: RouteEvent): Session[] {
  const { to, stanza } = event;
  const type = stanza.attr('type') ?? 'normal';
  if (type === 'groupchat') return [];
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
 */
export function undeliverable(ctx: ModuleContext, event: RouteEvent): void {
  const type = event.stanza.attr('type') ?? 'normal';
  if (type === 'headline' || type === 'error') return;
  ctx.router.bounce(event, 'service-unavailable');
}

/** Removes top-level <delay/> notations whose `from` is one of our domains. */
function dropForgedDelays(stanza: XmlElement, hosts: ReadonlySet<string>): void {
  const forged = stanza.children.filter((c) => typeof c !== 'string' && c.is('delay', NS.DELAY) && hosts.has((c.attr('from') ?? '').toLowerCase()));
  if (forged.length > 0) stanza.children = stanza.children.filter((c) => !forged.includes(c));
}

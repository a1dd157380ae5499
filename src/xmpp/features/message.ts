import type { ModuleContext } from '../context.js';
import type { RouteEvent } from '../events.js';
import type { Session } from '../session.js';

/**
 * Message delivery between local accounts (RFC 6121 §8.5). Offline storage
 * and carbons hook in above these handlers with higher priorities.
 */
export function register(ctx: ModuleContext): void {
  ctx.hooks.on('message/full', (event) => {
    const { to, stanza } = event;
    const target = ctx.sessions.get(to.domain, to.local, to.resource);
    if (target) {
      target.send(stanza);
      return true;
    }
    // RFC 6121 §8.5.3.2.1: no such resource — groupchat bounces, headline is
    // dropped, chat and normal fall back to the bare-JID rules.
    const type = stanza.attr('type');
    if (type === 'groupchat') ctx.router.bounce(event, 'service-unavailable');
    else if (type !== 'headline' && type !== 'error') ctx.hooks.fire('message/bare', event);
    return true;
  }, -100);

  ctx.hooks.on('message/bare', (event) => {
    const targets = bareTargets(ctx, event);
    for (const s of targets) s.send(event.stanza);
    if (targets.length === 0) undeliverable(ctx, event);
    return true;
  }, -100);

  ctx.hooks.on('message/host', (event) => {
    ctx.router.bounce(event, 'service-unavailable');
    return true;
  }, -100);
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
 * No available resource: without offline storage (added by the offline
 * feature at a higher priority) RFC 6121 §8.5.2.2.1 says to bounce with
 * service-unavailable — the same answer for an unknown account, so nothing
 * about which accounts exist leaks. Headline and error are dropped.
 */
function undeliverable(ctx: ModuleContext, event: RouteEvent): void {
  const type = event.stanza.attr('type') ?? 'normal';
  if (type === 'headline' || type === 'error') return;
  ctx.router.bounce(event, 'service-unavailable');
}

import { NS, x, type XmlElement } from '../../xml/index.js';
import type { ModuleContext } from '../context.js';

/**
 * Presence between a user's own resources and directed presence (RFC 6121
 * §4.2–4.6). It keeps the seed's `presence` and `priority` fields true.
 */
export function register(ctx: ModuleContext): void {
  ctx.hooks.on('presence/broadcast', ({ origin, stanza }) => {
    if (!origin) return true;
    const type = stanza.attr('type');
    if (type === undefined) {
      origin.presence = stanza;
      origin.priority = parsePriority(stanza);
    } else if (type === 'unavailable') {
      origin.presence = undefined;
    } else {
      return true; // subscription types need a `to`; handled by the roster feature when present
    }
    // RFC 6121 §4.2.2: every available resource of the user, the sender included.
    for (const s of ctx.sessions.available(origin.host!, origin.username!)) if (s !== origin) s.send(stanza);
    if (type === undefined) origin.send(stanza);
    return true;
  }, -100);

  // Directed presence (RFC 6121 §4.6) to a resource or to all available resources of an account.
  ctx.hooks.on('presence/full', ({ to, stanza }) => {
    ctx.sessions.get(to.domain, to.local, to.resource)?.send(stanza);
    return true;
  }, -100);
  ctx.hooks.on('presence/bare', ({ to, stanza }) => {
    for (const s of ctx.sessions.available(to.domain, to.local)) s.send(stanza);
    return true;
  }, -100);
  ctx.hooks.on('presence/host', () => true, -100);

  // RFC 6121 §4.5.2: when a session ends without unavailable presence, the server sends it.
  ctx.hooks.on('session-destroyed', ({ session }) => {
    if (session.presence === undefined || session.full_jid === undefined) return;
    session.presence = undefined;
    const unavailable = x('presence', { xmlns: NS.CLIENT, type: 'unavailable', from: session.full_jid });
    for (const s of ctx.sessions.available(session.host!, session.username!)) s.send(unavailable);
  }, -100);
}

/** RFC 6121 §4.7.2.3: an integer from -128 to +127, default 0. */
function parsePriority(presence: XmlElement): number {
  const raw = presence.getChildText('priority');
  if (raw === undefined) return 0;
  const n = Number.parseInt(raw.trim(), 10);
  return Number.isFinite(n) ? Math.max(-128, Math.min(127, n)) : 0;
}

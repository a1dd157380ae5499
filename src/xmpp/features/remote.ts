import type { ModuleContext } from '../context.js';
import { PRIORITY } from '../priorities.js';

/**
 * The gateway serves its own domains only (no server-to-server). RFC 6120
 * §10.4.3: a stanza for another domain gets remote-server-not-found;
 * presence is dropped silently (RFC 6121 §4.3–4.6 never bounces presence).
 */
export function register(ctx: ModuleContext): void {
  ctx.hooks.deliver('route/remote', (event) => {
    if (event.stanza.name !== 'presence') ctx.router.bounce(event, 'remote-server-not-found');
    return 'delivered';
  }, PRIORITY.route.standard);
}

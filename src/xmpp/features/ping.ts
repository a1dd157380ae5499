import { NS } from '../../xml/index.js';
import type { ModuleContext } from '../context.js';

/** XEP-0199: answer pings to the server (and to one's own account) with an empty result. */
export function register(ctx: ModuleContext): void {
  ctx.iq.register('both', 'get', NS.PING, () => undefined);
  ctx.disco.addFeature(NS.PING);
}

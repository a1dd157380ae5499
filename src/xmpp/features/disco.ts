import { NS, x, type XmlElement } from '../../xml/index.js';
import { StanzaErrorException } from '../errors.js';
import type { ModuleContext } from '../context.js';

export interface DiscoOptions {
  readonly name: string;
}

/** XEP-0030 service discovery of the server (disco#info lists every registered feature). */
export function register(ctx: ModuleContext, opts: DiscoOptions): void {
  const info = (features: Iterable<string>, identity: XmlElement, node: string | undefined): XmlElement => {
    // XEP-0030 §3.1: a node we do not know is item-not-found.
    if (node !== undefined) throw new StanzaErrorException('item-not-found');
    const query = x('query', { xmlns: NS.DISCO_INFO }, identity);
    for (const f of [...features].sort()) query.append(x('feature', { var: f }));
    return query;
  };
  ctx.iq.register('host', 'get', NS.DISCO_INFO, (_s, _iq, payload) =>
    info(ctx.disco.features, x('identity', { category: 'server', type: 'im', name: opts.name }), payload.attr('node')));
  // XEP-0030 §3.1 / RFC 6121: an account answers with the account identity.
  ctx.iq.register('self', 'get', NS.DISCO_INFO, (_s, _iq, payload) =>
    info(ctx.disco.accountFeatures, x('identity', { category: 'account', type: 'registered' }), payload.attr('node')));
  ctx.iq.register('both', 'get', NS.DISCO_ITEMS, (_s, _iq, payload) => {
    if (payload.attr('node') !== undefined) throw new StanzaErrorException('item-not-found');
    return x('query', { xmlns: NS.DISCO_ITEMS });
  });
}

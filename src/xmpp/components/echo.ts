import { NS, x, type XmlElement } from '../../xml/index.js';
import { tryParseJid } from '../../jid/index.js';
import type { ModuleContext } from '../context.js';
import type { RouteEvent } from '../events.js';
import { stanzaErrorReply } from '../errors.js';
import { iqResult } from '../registry.js';

export interface EchoOptions {
  /** The subdomain (or any domain that is not one of XMPP_DOMAIN) it serves, e.g. echo.example.org. */
  readonly address: string;
  /** Reported by jabber:iq:version (XEP-0092). */
  readonly version: string;
}

/**
 * A tiny built-in component, and the proof that a component (say group chat
 * on conference.<domain>) needs no change to the core: it registers its
 * address with ctx.components and answers everything sent there through
 * the router, as an XEP-0114 component would over a socket.
 * - messages with a body come back to their sender, same type and id;
 * - disco#info (XEP-0030) names it and its features, XEP-0092 its version,
 *   XEP-0199 pings get a result; any other IQ get/set is
 *   service-unavailable (RFC 6120 §8.4); results, errors and presence end here.
 * Off unless ECHO_COMPONENT names its domain.
 */
export function register(ctx: ModuleContext, opts: EchoOptions): void {
  if (ctx.hosts.has(opts.address)) throw new Error(`ECHO_COMPONENT (${opts.address}) must not be one of XMPP_DOMAIN`);
  const reply = (to: string | undefined, el: XmlElement): void => {
    const jid = tryParseJid(to);
    if (jid) void ctx.router.route(null, el, jid);
  };

  ctx.components.register({
    address: opts.address,
    name: 'Echo',
    handle(event: RouteEvent) {
      const { stanza } = event;
      const type = stanza.attr('type');
      if (stanza.name === 'message') {
        const body = stanza.getChild('body', NS.CLIENT);
        if (body && type !== 'error') {
          reply(stanza.attr('from'), x('message', { xmlns: NS.CLIENT, from: stanza.attr('to'), to: stanza.attr('from'), type, id: stanza.attr('id') }, body.clone()));
        }
      } else if (stanza.name === 'iq' && (type === 'get' || type === 'set')) {
        const answer = type === 'get' ? query(stanza.firstElement, opts) : undefined;
        reply(stanza.attr('from'), answer === null ? stanzaErrorReply(stanza, 'service-unavailable') : iqResult(stanza, answer));
      }
    },
  });
}

/** The payload of the result for an IQ get, or null when it is not one this component answers. */
function query(payload: XmlElement | undefined, opts: EchoOptions): XmlElement | undefined | null {
  if (!payload || payload.attr('node') !== undefined) return null;
  if (payload.is('query', NS.DISCO_INFO)) {
    return x('query', { xmlns: NS.DISCO_INFO },
      x('identity', { category: 'component', type: 'generic', name: 'Echo' }),
      ...[NS.DISCO_INFO, NS.PING, NS.VERSION].map((v) => x('feature', { var: v })));
  }
  if (payload.is('query', NS.DISCO_ITEMS)) return x('query', { xmlns: NS.DISCO_ITEMS });
  if (payload.is('query', NS.VERSION)) return x('query', { xmlns: NS.VERSION }, x('name', {}, 'xmpp-web-gateway echo'), x('version', {}, opts.version));
  if (payload.is('ping', NS.PING)) return undefined;
  return null;
}

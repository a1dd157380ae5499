import { NS, type XmlElement } from '../xml/index.js';
import { makeJid, tryParseJid, type Jid } from '../jid/index.js';
import type { Hooks } from './hooks.js';
import type { CoreEvents, RouteEvent } from './events.js';
import type { Session } from './session.js';
import { stanzaErrorReply, type StanzaErrorCondition } from './errors.js';

export type StanzaKind = 'message' | 'presence' | 'iq';

/**
 * Classifies a stanza by its `to` (RFC 6120 §10.3–10.5) and fires
 * `<kind>/<full|bare|host>` for local domains or `route/remote` for others.
 * What happens then is up to the features: the IM rules of RFC 6121 and the
 * fallbacks live in features/, not here.
 */
export class Router {
  constructor(private readonly hooks: Hooks<CoreEvents>, private readonly hosts: ReadonlySet<string>) {}

  isLocal(domain: string): boolean { return this.hosts.has(domain); }

  /** Routes a stanza from `origin` (null = the server) to `to`. */
  route(origin: Session | null, stanza: XmlElement, to: Jid): void {
    const kind = stanza.name as StanzaKind;
    const event: RouteEvent = { origin, stanza, to };
    if (!this.hosts.has(to.domain)) {
      this.hooks.fire('route/remote', event);
      return;
    }
    const target = to.local === '' ? 'host' : to.resource === '' ? 'bare' : 'full';
    this.hooks.fire(`${kind}/${target}`, event);
  }

  /**
   * Routes a stanza the client sent without `to`: RFC 6120 §10.3.3 — the
   * server handles it on behalf of the account (an IQ, a message to
   * oneself) or, for presence, broadcasts it (RFC 6121 §4.2).
   */
  routeNoTo(origin: Session, stanza: XmlElement): void {
    const bare = makeJid(origin.username ?? '', origin.host ?? '');
    if (stanza.name === 'presence') {
      this.hooks.fire('presence/broadcast', { origin, stanza, to: bare });
      return;
    }
    this.route(origin, stanza, bare);
  }

  /**
   * Sends an error reply for `stanza` back to whoever sent it, unless it is
   * itself an error (RFC 6120 §8.3.1: never answer an error with an error).
   */
  bounce(event: RouteEvent, condition: StanzaErrorCondition, text?: string): void {
    const { stanza, origin } = event;
    if (stanza.attr('type') === 'error') return;
    const reply = stanzaErrorReply(stanza, condition, text);
    if (origin && !origin.destroyed) {
      origin.send(reply);
      return;
    }
    // The sender's session is gone (or the server re-routes on its behalf):
    // address the error to the sender's JID like any other stanza.
    const to = tryParseJid(reply.attr('to'));
    if (to) this.route(null, reply, to);
  }
}

/** True for the three stanza kinds of jabber:client (RFC 6120 §8). */
export function isClientStanza(el: XmlElement): boolean {
  return el.ns === NS.CLIENT && (el.name === 'message' || el.name === 'presence' || el.name === 'iq');
}

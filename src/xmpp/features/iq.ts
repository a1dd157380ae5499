import type { XmlElement } from '../../xml/index.js';
import { StanzaErrorException, stanzaErrorReply } from '../errors.js';
import { iqResult } from '../registry.js';
import type { ModuleContext } from '../context.js';
import type { RouteEvent } from '../events.js';
import type { Session } from '../session.js';

/**
 * Answers IQ get/set addressed to the server or to the sender's own account
 * (RFC 6120 §10.3.3, §8.2.3) from the IQ registry, and routes IQs to full
 * JIDs. Whatever nobody handles gets service-unavailable (RFC 6120 §8.4).
 */
export function register(ctx: ModuleContext): void {
  const answer = (scope: 'host' | 'self', event: RouteEvent): boolean => {
    const { stanza, origin } = event;
    const type = stanza.attr('type');
    if (type !== 'get' && type !== 'set') return true; // results and errors to the server end here
    if (!origin) return true;
    const payload = stanza.firstElement!;
    const entry = ctx.iq.lookup(scope, type, payload.ns);
    if (!entry) {
      ctx.router.bounce(event, 'service-unavailable');
      return true;
    }
    run(ctx, origin, stanza, () => entry.handler(origin, stanza, payload));
    return true;
  };

  ctx.hooks.on('iq/host', (event) => answer('host', event), -100);
  ctx.hooks.on('iq/bare', (event) => {
    const self = event.origin && event.to.local === event.origin.username && event.to.domain === event.origin.host;
    if (self) return answer('self', event);
    // RFC 6121 §8.5.2: an IQ to another account's bare JID is answered by the
    // server on that account's behalf; features (vCard, disco) hook in above.
    ctx.router.bounce(event, 'service-unavailable');
    return true;
  }, -100);
  ctx.hooks.on('iq/full', (event) => {
    const { to, stanza } = event;
    const target = ctx.sessions.get(to.domain, to.local, to.resource);
    if (target) target.send(stanza);
    // RFC 6121 §8.5.3.2.1: no such resource → service-unavailable for get/set, results are dropped.
    else if (stanza.attr('type') === 'get' || stanza.attr('type') === 'set') ctx.router.bounce(event, 'service-unavailable');
    return true;
  }, -100);
}

/** Runs an IQ handler, sync or async, and sends its result or error. */
export function run(ctx: ModuleContext, session: Session, iq: XmlElement, handler: () => XmlElement | void | Promise<XmlElement | void>): void {
  let out: XmlElement | void | Promise<XmlElement | void>;
  try {
    out = handler();
  } catch (err) {
    // Answer synchronous errors at once, so replies keep the order of requests.
    if (err instanceof StanzaErrorException) {
      session.send(stanzaErrorReply(iq, err.condition, err.text, err.type));
      return;
    }
    ctx.guard(session, iq, () => Promise.reject(err));
    return;
  }
  if (out instanceof Promise) {
    ctx.guard(session, iq, async () => { const payload = await out; if (!session.destroyed) session.send(iqResult(iq, payload)); });
  } else {
    session.send(iqResult(iq, out));
  }
}

export { StanzaErrorException };

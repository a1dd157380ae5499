import { NS, x, type XmlElement } from '../xml/index.js';
import { makeJid } from '../jid/index.js';
import type { ModuleContext } from './context.js';
import type { Session } from './session.js';
import type { Undelivered } from './undelivered.js';
import { messageType } from './message-types.js';

export type { Undelivered };

/** The delay note (XEP-0203) of stream management's unacknowledged stanzas handed over at a session's end. */
export const NOT_ACKNOWLEDGED = 'resent: not acknowledged by the client';

/**
 * What happens to stanzas a session never delivered when it ends for good:
 * XEP-0198 §5's unacked stanzas (resume timeout, buffer overflow, close),
 * and, for a session without stream management, what its transport still
 * held (a BOSH queue no request came for, a write to a socket already
 * closing). Messages are routed again to the account's bare JID — another
 * available resource, offline storage, or an error to the sender — with a
 * delay stamp (XEP-0203, see Undelivered); headlines are dropped, as for
 * a resource that is gone (RFC 6121 §8.5.3.2.1); IQ requests get an
 * error reply; presence is state and is not replayed; copies the server made
 * from the account's own data (isOwnCopy) are not routed again. Nothing else
 * is dropped. What a feature still owns elsewhere (the 'hand-over' hook:
 * offline messages delivered but not yet acked stay in storage) is left to
 * it. The session must be out of the session table by now, or a
 * message could be routed straight back to it.
 */
export function handOver(ctx: ModuleContext, session: Session, stanzas: readonly Undelivered[], note: string): void {
  if (stanzas.length === 0 || session.username === undefined || session.host === undefined) return;
  reroute(ctx, session.username, session.host, handOverHook(ctx, session, stanzas), note);
}

/**
 * The 'hand-over' hook alone, run while the session ends: what is left to
 * route once features that still own some (offline storage) took theirs
 * out. Stream management in a cluster routes it later (reroute), once it
 * knows that no other node took the session over.
 */
export function handOverHook(ctx: ModuleContext, session: Session, stanzas: readonly Undelivered[]): Undelivered[] {
  if (stanzas.length === 0) return [];
  const event = { session, stanzas: [...stanzas] };
  ctx.hooks.run('hand-over', event);
  return event.stanzas;
}

/**
 * handOver's routing, for stanzas whose session is not in this process:
 * a cluster node handing over the queue of a session whose node died and
 * that nobody resumed (src/cluster/sm-orphans.ts). Resolves once every
 * route has settled: what offline storage took is then queued on the
 * account's delivery line (queues.ts), which a job of its own waits behind.
 */
export function reroute(ctx: ModuleContext, username: string, host: string, stanzas: readonly Undelivered[], note: string): Promise<void> {
  const bare = makeJid(username, host);
  const routes: Promise<void>[] = [];
  let messages = 0;
  let bounced = 0;
  for (const { stanza, at } of stanzas) {
    const type = stanza.attr('type');
    if (stanza.name === 'message' && isOwnCopy(stanza, bare.bare)) continue;
    // RFC 6121 §8.5.3.2.1: a headline for a resource that is gone is silently ignored. Routed to
    // the bare JID it would reach the other resources again (each got its own: a contact's PEP
    // notification, an announcement, a headline to the bare JID), or ones it was never for.
    if (stanza.name === 'message' && messageType(stanza) === 'headline') continue;
    if (stanza.name === 'message' && type !== 'error') {
      messages++;
      // The same stanza object may sit in other sessions' queues: stamp a copy.
      const copy = stanza.clone();
      if (!copy.getChildren('delay', NS.DELAY).some((d) => d.attr('from') === host)) {
        copy.append(x('delay', { xmlns: NS.DELAY, from: host, stamp: new Date(at).toISOString() }, note));
      }
      const route = ctx.router.route(null, copy, bare);
      if (route) routes.push(route);
    } else if (stanza.name === 'iq' && (type === 'get' || type === 'set')) {
      bounced++;
      ctx.router.bounce({ origin: null, stanza, to: bare }, 'service-unavailable', 'the recipient went away before answering');
    }
  }
  if (messages > 0) ctx.log.debug({ event: 'handed-over', to: bare.bare, note, ids: stanzas.slice(0, 64).map((u) => u.stanza.attr('id')) }, 'routed again');
  if (bounced > 0) ctx.metrics.smHandedOver('bounced', bounced);
  if (messages > 0) ctx.metrics.smHandedOver(reachable(ctx, username, host) ? 'resource' : 'offline', messages);
  // A route's failure is answered by the router (onError): it settles all the same.
  return Promise.all(routes).then(() => undefined);
}

/**
 * A message from the account's own bare JID is one the server made for that
 * session out of what the account already has: a carbon copy (XEP-0280 §10.3:
 * the original reached its recipient), a result of the session's own MAM query
 * (XEP-0313 §4: an answer nobody waits for any more, still in the archive), a
 * notification of its own PEP node. Routed again, it would reach the other
 * resources twice or fill offline storage; it is not replayed. (What clients send
 * carries their full JID as `from`. ejabberd's mod_stream_mgmt likewise drops
 * forwarded and archived messages from a queue it hands over; Prosody 0.12's
 * mod_smacks stores or bounces them like any message.)
 */
function isOwnCopy(stanza: XmlElement, bare: string): boolean {
  return stanza.attr('from') === bare;
}

/**
 * Where the router sends a message to the bare JID (RFC 6121 §8.5.2.1): an
 * available resource of non-negative priority of this process, else offline
 * storage (which may still bounce one over its quota: xmpp_offline_messages_total
 * counts that as refused-quota).
 */
function reachable(ctx: ModuleContext, username: string, host: string): boolean {
  for (const s of ctx.sessions.available(host, username)) if (s.priority >= 0) return true;
  return false;
}

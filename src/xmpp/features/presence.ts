import { NS, WRITTEN_LIMITS, parseXml, x, type XmlElement } from '../../xml/index.js';
import type { Jid } from '../../jid/index.js';
import type { ModuleContext } from '../context.js';
import { resourceChanged, type RouteEvent } from '../events.js';
import type { Session } from '../session.js';
import type { Account, AccountsService } from './accounts/index.js';
import { hasFrom, hasTo, isSubscriptionType } from './accounts/subscription.js';
import { drive, type Fanout } from './accounts/fanout.js';
import { PRIORITY } from '../priorities.js';
import { delivered, type DeliverResult } from '../pipeline.js';

/** §4.6 directed presence, as blocking (XEP-0191 §3.3) needs it. */
export interface DirectedPresence {
  /**
   * Sends unavailable from `session` to each JID it sent directed available presence to for which
   * `ends` is true, and forgets them (the end of the session owes them nothing more).
   */
  withdraw(session: Session, ends: (to: Jid) => boolean): void;
}

/**
 * RFC 6121 §4.6.3: at most this many directed-presence recipients are kept per session. A new one
 * beyond it makes the oldest get its unavailable at once, rather than be forgotten: forgotten, it
 * would see the sender online for good. The bound keeps a session's memory, and in a cluster its
 * directory entry (published to every node) and stream-management snapshot, small; web clients
 * rarely send directed presence at all.
 */
export const DIRECTED_MAX = 100;

export interface PresenceDeps {
  /** The accounts in memory and presence relaying between them (accounts.register). */
  readonly accounts: AccountsService;
}

/**
 * Presence (RFC 6121 §4): broadcast to subscribers and the user's own
 * resources, probes answered from the contacts' current presence (all
 * accounts are local), directed presence, and unavailable presence when a
 * session ends for any reason. Keeps the seed's `presence` (the last
 * non-directed available presence, undefined once unavailable) and
 * `priority`. Subscription types are roster/subscriptions.ts's.
 */
export function register(ctx: ModuleContext, { accounts: svc }: PresenceDeps): DirectedPresence {
  const { relay, accounts } = svc;

  /**
   * Sends `stanza` (from `session`) to every subscriber of the account and
   * to each of its available resources. A fan-out (queue.ts): a large
   * roster is spread over several event-loop turns. With `only`, to the
   * sessions it accepts alone (a cluster node's own: 'remote-presence').
   */
  function* broadcast(session: Session, me: Account, stanza: XmlElement, only?: (s: Session) => boolean): Fanout {
    const remoteOrigin = svc.peekAccount(session) === undefined;
    for (const item of me.items.values()) {
      yield 1;
      if (!hasFrom(item.subscription)) continue;
      const contact = me.contact(item.jid);
      const target = ctx.router.isLocal(contact.domain) ? accounts.peek(contact.domain, contact.local) : undefined;
      if (!target && !only && remoteOrigin && ctx.router.isLocal(contact.domain) && ctx.sessions.countResources(contact.domain, contact.local) > 0) {
        // Cluster: a contact online on another node whose account is not held here. A local sender's
        // contacts are held (accounts/remote.ts); those of a dead node's session, ended by a survivor
        // (a remote stub, cluster/directory-module.ts), are not.
        const out = stanza.clone().setAttr('to', contact.bare);
        svc.use(contact, (t) => { if (relay.mayReach(session.jid!, me, contact, t)) relay.deliver(contact, out); })
          .catch((err: unknown) => ctx.log.warn({ err }, 'presence to a contact on another node failed'));
        continue;
      }
      // Not in memory: no session, so no available resource; XEP-0191 blocks either way.
      if (!target || !relay.mayReach(session.jid!, me, contact, target)) continue;
      yield relay.deliver(contact, stanza.clone().setAttr('to', contact.bare), only);
    }
    // §4.2.2 / §4.4.2: the user's available resources, the sender included.
    for (const s of relay.available(me)) if (!only || only(s)) s.send(stanza.clone().setAttr('to', s.full_jid));
  }

  function available(session: Session, stanza: XmlElement): Promise<void> | undefined {
    if (session.destroyed) return undefined;
    const me = svc.accountOf(session);
    const initial = session.presence === undefined;
    const presence = stanza.clone().setAttr('to', undefined);
    session.presence = presence;
    session.priority = parsePriority(stanza);
    resourceChanged(ctx.hooks, session);
    return drive((function* () {
      yield* broadcast(session, me, presence);
      if (initial) yield* afterInitial(session, me);
    })());
  }

  /** §4.2: what a resource gets when it becomes available. */
  function* afterInitial(session: Session, me: Account): Fanout {
    // §4.2.1 probes to the contacts the user is subscribed to, answered at once (§4.3.2).
    for (const item of me.items.values()) {
      yield 1;
      if (!hasTo(item.subscription)) continue;
      const contact = me.contact(item.jid);
      const target = ctx.router.isLocal(contact.domain) ? accounts.peek(contact.domain, contact.local) : undefined;
      if (target && hasFrom(target.state(me.bare).subscription)) yield relay.sendCurrent(target, session.jid!);
      // §4.3.2: a contact in memory that does not have the user as From answers unsubscribed. An
      // offline one is not read for this: each login would read the rosters of all its contacts.
      else if (target) void refuseUnlessFrom(me, target, contact);
    }
    // §4.2.2: the presence of the user's other available resources.
    for (const s of relay.available(me)) {
      if (s !== session) session.send(s.presence!.clone().setAttr('to', session.full_jid));
    }
    // §3.1.3: subscription requests that arrived while the user was offline, or unanswered.
    // XEP-0191 §3.3: not from a JID the user blocks since (kept: it comes again after an unblock).
    for (const pending of me.pending.values()) {
      if (svc.isBlocked(me, me.contact(pending.jid))) continue;
      session.send(storedRequest(pending.jid, pending.stanza, me.bare));
      yield 1;
    }
  }

  /** Unavailable presence `stanza`, sent by the client or on its behalf when the session ended (§4.5.2). */
  function unavailable(session: Session, me: Account, stanza: XmlElement): Promise<void> | undefined {
    const wasAvailable = session.presence !== undefined;
    // Seed: presence is reset on unavailable (and before the broadcast, so the sender is no longer "available").
    session.presence = undefined;
    // The directed set too, before the change is published: a cluster survivor must not send them again.
    const recipients = session.directed;
    session.directed = undefined;
    if (wasAvailable || recipients) resourceChanged(ctx.hooks, session);
    return drive((function* () {
      if (wasAvailable) yield* broadcast(session, me, stanza);
      if (recipients) yield* endDirected(session, me, recipients, wasAvailable);
    })());
  }

  /** §4.6.3 / §4.5.2: directed-presence recipients get unavailable too, unless the broadcast covered them. */
  function* endDirected(session: Session, me: Account, recipients: ReadonlyMap<string, Jid>, broadcasted: boolean): Fanout {
    for (const to of recipients.values()) {
      yield 1;
      if (broadcasted && hasFrom(me.state(to.bare).subscription)) continue;
      const stanza = unavailableFrom(session, to);
      const target = accounts.peek(to.domain, to.local);
      if (target) {
        if (relay.mayReach(session.jid!, me, to, target)) yield relay.deliver(to, stanza);
      } else if (ctx.sessions.countResources(to.domain, to.local) > 0) {
        // Cluster: a recipient on another node whose account is not held here yet (accounts/remote.ts).
        svc.use(to.bareJid(), (t) => { if (relay.mayReach(session.jid!, me, to, t)) relay.deliver(to, stanza); })
          .catch((err: unknown) => ctx.log.warn({ err }, 'unavailable presence to a directed-presence recipient failed'));
      }
    }
  }

  /** §4.6: presence a client addresses to someone; remembered so that unavailable follows at the end. */
  function direct(session: Session, stanza: XmlElement, to: Jid): void {
    const type = stanza.attr('type');
    const own = to.local === session.username && to.domain === session.host;
    // A change is published (cluster: directory entry and SM snapshot); a repeat changes nothing.
    if (!own && type !== 'error' && (type === undefined ? remember(session, to) : forget(session, to.full))) resourceChanged(ctx.hooks, session);
    // §8.5.2.2.3 / §8.5.3.2.3: presence for an account or resource with no session is dropped.
    relay.deliver(to, stanza);
  }

  /** Adds `to` to the session's directed set (DIRECTED_MAX: the oldest beyond it is told at once); true if it was not there. */
  function remember(session: Session, to: Jid): boolean {
    const recipients = session.directed ??= new Map();
    if (recipients.has(to.full)) return false;
    recipients.set(to.full, to);
    if (recipients.size > DIRECTED_MAX) {
      const [key, oldest] = recipients.entries().next().value as [string, Jid];
      recipients.delete(key);
      ctx.log.debug({ event: 'directed-presence-evicted', session: session.logId, to: key }, 'too many directed-presence recipients: the oldest gets unavailable now');
      relay.deliver(oldest, unavailableFrom(session, oldest));
    }
    return true;
  }

  /** Removes `full` from the session's directed set; true if it was there. */
  function forget(session: Session, full: string): boolean {
    const recipients = session.directed;
    if (!recipients?.delete(full)) return false;
    if (recipients.size === 0) session.directed = undefined;
    return true;
  }

  /** §4.3: a probe from a client, answered by the server for local contacts. */
  function probe(session: Session, to: Jid): Promise<void> | undefined {
    const me = svc.accountOf(session);
    if (to.bare === me.bare) {
      for (const s of relay.available(me)) if (s !== session) session.send(s.presence!.clone().setAttr('to', session.full_jid));
      return undefined;
    }
    // §4.3.2: only a subscriber learns anything; offline contacts get no answer (the RFC's option 2).
    // A contact without the user as From answers unsubscribed (step 1) when the user's roster says
    // To or Both, so the stale half ends (A.3.4). Otherwise unsubscribed would change nothing (None)
    // or withdraw a request the contact has not answered yet (Pending Out, which a probe from the
    // client should not end) and is not sent: a missing account and a non-subscriber look alike.
    const stale = hasTo(me.state(to.bare).subscription);
    const answer = (target: Account): Promise<void> | undefined => {
      if (hasFrom(target.state(me.bare).subscription)) relay.sendCurrent(target, session.jid!);
      else if (stale) return refuseUnlessFrom(me, target, to);
      return undefined;
    };
    const target = accounts.peek(to.domain, to.local);
    if (target) return answer(target);
    // Cluster: a contact online on another node whose account is not held here yet (accounts/remote.ts).
    if (ctx.sessions.countResources(to.domain, to.local) > 0) return svc.use(to, answer);
    if (!stale) return undefined;
    // Offline, or no such account (§8.5.1 lets a probe to it be answered with unsubscribed).
    return accounts.exists(to).then((exists) => exists ? accounts.use(to, answer) : refuse(me, to));
  }

  /**
   * §4.3.2 step 1 for `target`, the contact's account, which does not have the user as From in
   * memory: read again first (cluster: another node may have changed it since), since the
   * unsubscribed ends the user's subscription. XEP-0191: a contact that blocks the user answers nothing.
   */
  async function refuseUnlessFrom(me: Account, target: Account, contact: Jid): Promise<void> {
    try {
      await accounts.reload(target.host, target.username);
      if (hasFrom(target.state(me.bare).subscription) || svc.isBlocked(target, me.jid)) return;
      await refuse(me, contact);
    } catch (err) {
      ctx.log.warn({ err }, 'answering a presence probe with unsubscribed failed');
    }
  }

  /** §4.3.2: the unsubscribed a probe gets from `contact` on the server's side, processed at the user's account (A.3.4). */
  function refuse(me: Account, contact: Jid): Promise<void> | undefined {
    const stanza = x('presence', { xmlns: NS.CLIENT, type: 'unsubscribed', from: contact.bare, to: me.bare });
    return ctx.router.route(null, stanza, me.jid) ?? undefined;
  }

  // The account of a stub that a local account lists is held (accounts/remote.ts): not held, nobody here gets it.
  // Cluster: a remote session's broadcast again, to this node's sessions alone: its owner sent it before it
  // saw some of them available (RFC 6121 §4.2.2 across nodes).
  const here = (s: Session): boolean => ctx.sessions.getLocal(s.host!, s.username!, s.resource!) === s;
  ctx.hooks.notify('remote-presence', ({ session, stanza }) => {
    const me = accounts.peek(session.host!, session.username!);
    if (me) return drive(broadcast(session, me, stanza, here));
    // Held and still being read: its stub came a moment ago (a contact that binds and sends its initial
    // presence at once). The broadcast waits for the read. Else a contact here that became available at
    // the same moment got it by no way: its owner's broadcast went before the owner saw the contact
    // available, the contact's probe before this node saw the presence. Reads of one account end in
    // order, so a later presence of the stub still comes after this one (the stanza-out filter of
    // cluster/remote-presence.ts passes only the newest the directory shows). An available whose stub went
    // unavailable or away meanwhile is not sent: its unavailable may have come by the inbox already, and
    // the filter lets an available from a resource with no presence pass. An unavailable always goes (the
    // stub of a session that ended is marked destroyed right after its unavailable is queued).
    return svc.remote.holding(session.jid!.bare)?.then((account) => {
      if (stanza.attr('type') === undefined && (session.destroyed || session.presence === undefined)) return undefined;
      return drive(broadcast(session, account, stanza, here));
    });
  }, PRIORITY.lifecycle.default);

  // A fan-out returns its promise: the sender's next stanza waits for it (core.ts, RFC 6120 §10.1).
  ctx.hooks.deliver('presence/broadcast', (event) => {
    const { origin, stanza } = event;
    if (!origin) return 'delivered';
    const type = stanza.attr('type');
    if (type === undefined) return delivered(available(origin, stanza));
    if (type === 'unavailable') {
      // A remote stub (a dead node's session, cluster/directory-module.ts) has its account loaded on demand.
      const me = svc.peekAccount(origin);
      return delivered(me ? unavailable(origin, me, stanza.clone()) : svc.use(origin.jid!.bareJid(), (a) => unavailable(origin, a, stanza.clone())));
    }
    // Subscription types, probes and errors need a 'to' (§3, §4.3); an unknown type is malformed.
    if (!isKnownType(type)) ctx.router.bounce(event, 'bad-request', `unknown presence type '${type.slice(0, 32)}'`);
    return 'delivered';
  }, PRIORITY.route.standard);

  const addressed = (event: RouteEvent): DeliverResult | Promise<DeliverResult> => {
    const { origin, stanza, to } = event;
    const type = stanza.attr('type');
    if (!isKnownType(type)) {
      ctx.router.bounce(event, 'bad-request', `unknown presence type '${(type ?? '').slice(0, 32)}'`);
    } else if (type === 'probe') {
      if (origin) return delivered(probe(origin, to.bareJid()));
    } else if (origin) {
      direct(origin, stanza, to);
    } else {
      relay.deliver(to, stanza);
    }
    return 'delivered';
  };
  ctx.hooks.deliver('presence/full', addressed, PRIORITY.route.standard);
  ctx.hooks.deliver('presence/bare', addressed, PRIORITY.route.standard);
  // Presence to the server's own domain: nothing here keeps presence for it.
  ctx.hooks.deliver('presence/host', () => 'delivered', PRIORITY.route.standard);

  // §4.5.2: a session that ends for any reason (close, error, timeout, a hibernation that was
  // never resumed) without unavailable presence gets it sent on its behalf.
  ctx.hooks.notify('session-destroyed', ({ session }) => {
    if (session.full_jid === undefined) return;
    ctx.queues.sessions.after(session, () => {
      const me = svc.peekAccount(session);
      if (!me) return undefined;
      return unavailable(session, me, x('presence', { xmlns: NS.CLIENT, type: 'unavailable', from: session.full_jid }));
    });
  }, PRIORITY.lifecycle.default);

  ctx.hooks.notify('session-superseded', ({ session }) => {
    const recipients = session.directed;
    if (!recipients || session.jid === undefined) return undefined;
    session.directed = undefined;
    // The newer session's broadcast reached the contacts (endDirected skips them as broadcast), its
    // own directed presence these: neither is told, the unavailable would be taken for the newer one's.
    const newer = ctx.sessions.get(session.host!, session.username!, session.resource!)?.directed;
    const owed = newer ? new Map([...recipients].filter(([key]) => !newer.has(key))) : recipients;
    const end = (me: Account): Promise<void> | undefined => drive(endDirected(session, me, owed, true));
    const me = svc.peekAccount(session);
    return me ? end(me) : svc.use(session.jid.bareJid(), end);
  }, PRIORITY.lifecycle.default);

  return {
    withdraw(session, ends) {
      const recipients = session.directed;
      if (!recipients || session.full_jid === undefined) return;
      let changed = false;
      for (const [key, to] of recipients) {
        if (!ends(to)) continue;
        changed = forget(session, key) || changed;
        relay.deliver(to, unavailableFrom(session, to));
      }
      if (changed) resourceChanged(ctx.hooks, session);
    },
  };
}

/** §4.6.3: the unavailable presence a directed-presence recipient is owed. */
function unavailableFrom(session: Session, to: Jid): XmlElement {
  return x('presence', { xmlns: NS.CLIENT, type: 'unavailable', from: session.full_jid, to: to.full });
}

function isKnownType(type: string | undefined): boolean {
  return type === undefined || type === 'unavailable' || type === 'probe' || type === 'error' || isSubscriptionType(type);
}

/** A stored subscription request, as it arrived, for the next login (or a plain one if it cannot be read back). */
function storedRequest(from: string, stanza: string, to: string): XmlElement {
  try {
    return parseXml(stanza, WRITTEN_LIMITS, NS.CLIENT).setAttr('to', to);
  } catch {
    return x('presence', { xmlns: NS.CLIENT, type: 'subscribe', from, to });
  }
}

/** RFC 6121 §4.7.2.3: an integer from -128 to +127, default 0. */
function parsePriority(presence: XmlElement): number {
  const raw = presence.getChildText('priority');
  if (raw === undefined) return 0;
  const n = Number.parseInt(raw.trim(), 10);
  return Number.isFinite(n) ? Math.max(-128, Math.min(127, n)) : 0;
}

/**
 * The directory as a cluster module (index.ts): this node's bound sessions
 * are written to the directory (directory.ts) when bound, changed
 * ('resource-changed') and destroyed; every other node's sessions become
 * remote stubs in the SessionManager (remote.ts); inbox entries for our
 * sessions are delivered here; a duplicate resource across nodes ends the
 * older session with conflict; a dead node's entries are removed; a local
 * client's answer to another node's question goes back to it (answers.ts);
 * a presence change of another node's session reaches this node's
 * recipients of it as within one process (remote-presence.ts).
 */
import { parseJid, tryParseJid, type Jid } from '../jid/index.js';
import { WRITTEN_LIMITS, NS, parseXml, serialize, x, type XmlElement } from '../xml/index.js';
import type { ModuleContext } from '../xmpp/context.js';
import type { Session } from '../xmpp/session.js';
import type { StreamErrorCondition } from '../xmpp/errors.js';
import { handOver } from '../xmpp/hand-over.js';
import { movedElsewhere, routeWhenSettled } from '../xmpp/features/stream-management/journal.js';
import { PRIORITY } from '../xmpp/priorities.js';
import { isPromise, type Outcome } from '../xmpp/pipeline.js';
import type { RouteEvent } from '../xmpp/events.js';
import { DeliveryRefused, type Handed, type InboxEntry } from './delivery.js';
import { createDirectory, type DirEntry, type DirFields } from './directory.js';
import { RECOVERY_BATCH } from './redis.js';
import { inBatches } from '../util/batches.js';
import { createStub, refresh, stanzaEntry, type RemoteSink } from './remote.js';
import { createAnswerRoutes } from './answers.js';
import { registerRemotePresence, type RemotePresence } from './remote-presence.js';
import type { ClusterModule, ClusterServices } from './module.js';

declare module '../xmpp/events.js' {
  interface CoreEvents {
    /**
     * Another node bound `session`'s resource later (RFC 6120 §7.7.2.2 across
     * nodes): the session ends with conflict unless a filter drops this
     * (the new session is this one resumed there, XEP-0198 takeover).
     */
    'cluster-conflict': { readonly session: Session; readonly node: string; readonly sid: string };
  }
}

/** Whether the directory already says what the session is. */
function same(entry: DirFields, now: DirFields): boolean {
  return entry.priority === now.priority && entry.presence === now.presence && entry.unavailable === now.unavailable && entry.interested === now.interested
    && entry.carbons === now.carbons && (entry.blocklist === true) === (now.blocklist === true)
    && sameList(entry.directed, now.directed);
}

function sameList(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if ((a?.length ?? 0) !== (b?.length ?? 0)) return false;
  return a === undefined || a.every((v, i) => v === b![i]);
}

interface Stub { readonly session: Session; readonly sid: string; readonly node: string }

/**
 * How long the entry of a session resumed on another node outlives it here:
 * the new owner binds it (overwriting the entry) once it has loaded the
 * account. Removed at once, the resource would be unknown in between, and a
 * message for it would go by the bare-JID rules to offline storage, where a
 * resumed session never looks (XEP-0160 is for new sessions). Kept, a
 * message goes to this node, which routes it again once the new entry is
 * known (routeWhenSettled). Removed after this if the new owner never bound it.
 */
const MOVED_ENTRY_MS = 5000;

/**
 * How often a node whose lease was found gone (a delivery refused
 * 'node-down') is asked again whether it holds one: a lease that lapsed
 * (a stall, Redis restarted past CLUSTER_NODE_TTL) and was taken again
 * without anyone declaring the node dead brings its stubs back into routing.
 */
const SUSPENDED_RECHECK_MS = 1000;

/** An IQ get or set from the server itself (a served domain): a question whose answer the client sends to the domain. */
function fromServer(ctx: ModuleContext, el: XmlElement): boolean {
  const type = el.attr('type');
  const from = el.attr('from');
  return (type === 'get' || type === 'set') && from !== undefined && ctx.hosts.has(from);
}

/** The presence types that change rosters (RFC 6121 §3). */
const SUBSCRIPTION = new Set(['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed']);

/**
 * The largest unavailable presence a directory entry carries (serialized, UTF-8). The entry is
 * published to every node, and a client's unavailable can be as large as MAX_STANZA_SIZE (a
 * status of 64 KiB): a larger one is not carried, and the other nodes' copy for their sessions
 * (remote-presence.ts, for the few that the owner's broadcast missed) is a plain unavailable.
 */
export const UNAVAILABLE_MAX_BYTES = 2048;

export function createDirectoryModule({ node, delivery, log }: ClusterServices): ClusterModule {
  const me = node.id;
  let ctx: ModuleContext | undefined;
  /** RFC 6121 §4.2 from another node's sessions to this node's, as within one process (remote-presence.ts). */
  let remotePresence: RemotePresence | undefined;
  /** The unavailable presence a local session's client sent last, serialized: its entry carries it (remote-presence.ts). */
  const wentUnavailable = new WeakMap<Session, string>();
  /** Remote stubs by full JID. */
  const stubs = new Map<string, Stub>();
  /** Removals put off for sessions resumed on another node (MOVED_ENTRY_MS). */
  const moved = new Set<NodeJS.Timeout>();
  /** Full JIDs of local sessions resumed on another node, until their entry here goes (MOVED_ENTRY_MS). */
  const movedAway = new Map<string, number>();
  /** Stanzas for one of those handed to routeWhenSettled: their route again goes on as any. */
  const settling = new WeakSet<XmlElement>();
  /** Nodes whose stubs are out of routing since a delivery to them was refused 'node-down', with the timer that asks again. */
  const suspended = new Map<string, NodeJS.Timeout>();
  /** The sequence number of each local session's bind write (directory.ts): who bound last wins. */
  const boundAt = new WeakMap<Session, number>();
  const directory = createDirectory(node, changed, log, () => { void repair(); }, endLeftBehind);
  const sidOf = (s: Session): string => `${me}:${s.logId}`;
  /** Which node asked a local client a question from the server (answers.ts). */
  const answers = createAnswerRoutes();

  /** The local (not stub) session bound to `full`, if any. */
  function local(host: string, username: string, resource: string): Session | undefined {
    return ctx?.sessions.getLocal(host, username, resource);
  }

  function fields(s: Session): DirFields {
    return {
      node: me, sid: sidOf(s), priority: s.priority, presence: s.presence ? serialize(s.presence) : null,
      interested: s.interested === true, carbons: s.carbons, anonymous: s.anonymous, blocklist: s.blocklistRequested,
      ...(s.directed === undefined ? {} : { directed: [...s.directed.keys()] }),
      ...(s.presence === undefined && wentUnavailable.has(s) ? { unavailable: wentUnavailable.get(s)! } : {}),
    };
  }

  /** A mirror change (directory.ts): keep the stubs in step, and end a local session another node took over. */
  function changed(bare: string, resource: string, entry: DirEntry | null, previous: DirEntry | undefined): void {
    if (!ctx) return;
    const full = `${bare}/${resource}`;
    const stub = stubs.get(full);
    if (entry === null) {
      if (stub && stub.sid === previous?.sid) {
        // Gone without a word first (its connection ended): §4.5.2's unavailable, made on its behalf.
        if (stub.session.presence !== undefined) remotePresence?.unavailable(stub.session, undefined);
        dropStub(full, stub);
      }
      return;
    }
    if (entry.node === me) {
      if (stub) dropStub(full, stub);
      return;
    }
    conflict(parseJid(full), entry);
    const presenceChanged = entry.presence !== null && entry.presence !== previous?.presence;
    if (stub && stub.sid === entry.sid) {
      const wasAvailable = stub.session.presence !== undefined;
      refresh(stub.session, entry);
      ctx.sessions.setCarbons(stub.session, entry.carbons);
      if (presenceChanged) remotePresence?.available(stub.session);
      else if (wasAvailable && entry.presence === null) remotePresence?.unavailable(stub.session, entry.unavailable);
      return;
    }
    if (stub) dropStub(full, stub);
    const session = createStub(bare, resource, entry, sink);
    stubs.set(full, { session, sid: entry.sid, node: entry.node });
    ctx.sessions.bindRemote(session);
    ctx.hooks.run('remote-session', { session, present: true });
    if (presenceChanged) remotePresence?.available(session);
  }

  function dropStub(full: string, stub: Stub): void {
    stubs.delete(full);
    stub.session.destroyed = true;
    ctx!.sessions.removeRemote(stub.session);
    ctx!.hooks.run('remote-session', { session: stub.session, present: false });
  }

  /** RFC 6120 §7.7.2.2 across nodes: the session bound last (in Redis order) keeps the resource. */
  function conflict(jid: ReturnType<typeof parseJid>, entry: DirEntry): void {
    const mine = local(jid.domain, jid.local, jid.resource);
    const seq = mine && boundAt.get(mine);
    if (mine && seq !== undefined && entry.seq > seq) replaced(mine, entry);
  }

  /**
   * Ends `session` with conflict, unless a 'cluster-conflict' filter drops
   * the event: stream management's takeover (the session moved to the
   * other node with its state) ends it its own way.
   */
  function replaced(session: Session, entry: DirEntry): void {
    const close = (outcome: Outcome): void => {
      if (outcome !== 'dropped' && !session.destroyed) session.close({ condition: 'conflict', text: 'replaced by a new connection' });
    };
    const outcome = ctx!.hooks.run('cluster-conflict', { session, node: entry.node, sid: entry.sid });
    if (isPromise<Outcome>(outcome)) outcome.then(close, (err: unknown) => { log.warn({ err }, 'a cluster-conflict handler failed'); close('undelivered'); });
    else close(outcome);
  }

  const sink: RemoteSink = {
    stanza(stub, owner, el) {
      delivery.send(owner, stanzaEntry(stub.full_jid!, el)).catch((err: unknown) => refused(stub, owner, el, err));
    },
    close(_stub, owner, entry) {
      delivery.send(owner, entry).catch((err: unknown) => log.warn({ err, to: entry.to }, 'asking another node to close a session failed'));
    },
  };

  /**
   * The owner's inbox refused a stanza: nothing is lost. A dead owner's
   * stubs go out of routing, and the stanza is handed over like a gone
   * session's (another resource, offline storage, or an error); a full inbox
   * or a Redis failure answers with an error (presence is state and is not
   * replayed).
   */
  function refused(stub: Session, owner: string, el: XmlElement, err: unknown): void {
    if (!ctx) return;
    const reason = err instanceof DeliveryRefused ? err.reason : 'redis';
    log.warn({ event: 'cluster-delivery-refused', node: owner, reason, to: stub.full_jid, id: el.attr('id') }, 'a stanza for another node was refused; routing it here');
    if (reason === 'node-down') {
      suspend(ctx, owner);
      handOver(ctx, stub, [{ stanza: el, at: Date.now() }], 'Offline storage');
      return;
    }
    if (el.name !== 'presence') ctx.router.bounce({ origin: null, stanza: el, to: stub.jid! }, 'resource-constraint', 'the recipient cannot be reached right now');
  }

  /**
   * Takes `owner`'s stubs out of routing at once (the hand-over of what was
   * refused must not loop back to them; the survivor told of the death
   * still ends their presence, onNodeDown), and asks every
   * SUSPENDED_RECHECK_MS whether the node holds a lease again. Its lease may
   * only have lapsed (node.ts: a node that finds its lease gone, and nobody
   * declared it dead, takes it again): then its stubs come back, or every
   * session on it would stay unreachable from here for as long as it lives.
   * Asking stops once none of its stubs is left (a survivor removed its
   * entries: the mirror dropped them).
   */
  function suspend(c: ModuleContext, owner: string): void {
    for (const s of stubs.values()) if (s.node === owner) c.sessions.removeRemote(s.session);
    if (suspended.has(owner)) return;
    const check = async (): Promise<void> => {
      const alive = await node.alive(owner).catch(() => false);
      if (!suspended.has(owner)) return;
      const held = [...stubs.values()].filter((s) => s.node === owner);
      if (held.length > 0 && !alive) {
        suspended.set(owner, setTimeout(() => void check(), SUSPENDED_RECHECK_MS).unref());
        return;
      }
      suspended.delete(owner);
      for (const s of held) {
        const { host, username, resource } = s.session;
        if (c.sessions.get(host!, username!, resource!) === undefined) c.sessions.bindRemote(s.session);
      }
      if (held.length > 0) log.info({ event: 'cluster-node-back', node: owner, sessions: held.length }, 'a node whose lease had lapsed holds it again: its sessions are routed to it again');
    };
    suspended.set(owner, setTimeout(() => void check(), SUSPENDED_RECHECK_MS).unref());
  }

  /**
   * The sender's node changed both rosters of a subscription presence (the
   * sender's ask or state, the recipient's Pending In or state; RFC 6121 §3)
   * and stored them before it sent it: our copies are read again first, or an
   * answer given at once would meet the old state here (an approval without
   * Pending In is ignored, §3.1.5; one to a contact without ask changes nothing).
   */
  async function reloadBoth(c: ModuleContext, el: XmlElement, to: Jid): Promise<void> {
    const from = tryParseJid(el.attr('from'));
    if (from) await c.hooks.run('account-stale', { host: from.domain, username: from.local });
    await c.hooks.run('account-stale', { host: to.domain, username: to.local });
  }

  /** Our inbox (delivery.ts): a stanza for a local session, or a request to close one. `sender` is the node that added it. */
  async function onEntry(entry: InboxEntry, sender: string): Promise<void | Handed> {
    const c = ctx;
    const to = tryParseJid(entry.to);
    if (!c || !to) return;
    const session = local(to.domain, to.local, to.resource);
    if (entry.kind === 'close') {
      if (session && sidOf(session) === entry.sid) session.close({ condition: entry.condition as StreamErrorCondition, text: entry.text });
      return;
    }
    const el = parseXml(entry.xml, WRITTEN_LIMITS, NS.CLIENT);
    if (session && !session.destroyed) {
      if (el.name === 'presence' && SUBSCRIPTION.has(el.attr('type') ?? '')) await reloadBoth(c, el, to);
      if (el.name === 'iq' && fromServer(c, el)) answers.asked(sender, entry.to, el.attr('id') ?? '');
      session.send(el);
      return;
    }
    log.debug({ event: 'cluster-entry-no-session', to: entry.to, id: el.attr('id') }, 'an inbox entry found no local session: routed again');
    // The session went away meanwhile: route it again (another resource, offline storage, or an error),
    // once the directory has settled: it may have just been resumed on another node (journal.ts). Handed
    // on: entries for a session that is gone for good must not hold the inbox a second each, and the
    // entry is acknowledged only once it is routed (or stored offline): a crash meanwhile leaves it
    // pending, read again at the next start (delivery.ts), not lost.
    if (to.resource) return { settled: routeWhenSettled(c, to, el) };
    await c.router.route(null, el, to);
    // Offline storage writes on the account's line (features/offline): acknowledged once that is done.
    return { settled: new Promise<void>((done) => { c.queues.deliveries.after(to.bare, done); }) };
  }

  delivery.onEntry((entry, sender) => onEntry(entry, sender));
  delivery.onUndeliverable(async (entry) => {
    log.error({ event: 'cluster-entry-undeliverable', entry }, 'an inbox entry kept failing');
    const to = tryParseJid(entry.to);
    if (entry.kind === 'stanza' && ctx && to) await ctx.router.route(null, parseXml(entry.xml, WRITTEN_LIMITS, NS.CLIENT), to.bareJid());
  });
  node.onNodeDown(async (dead) => {
    await inBatches([...stubs].filter(([, s]) => s.node === dead), RECOVERY_BATCH, async ([full, s]) => {
      await endPresence(s.session);
      // Resumed on another node meanwhile: the newer stub on that resource stays (its change dropped this one).
      if (stubs.get(full) === s) dropStub(full, s);
    });
    const removed = await directory.removeNode(dead);
    log.info({ event: 'cluster-directory-node-removed', node: dead, entries: removed }, 'removed a dead node\'s directory entries');
  });

  /**
   * A new run of this NODE_ID after a crash, before anyone else declared the
   * old one dead (node.ts start(): it recovers itself): the old run's
   * sessions are gone, and their contacts and directed-presence recipients
   * are told, as a survivor tells them for a dead node (onNodeDown), before
   * the entries are removed. Before, they were removed without a word and
   * those sessions looked online for ever.
   */
  async function endLeftBehind({ bare, resource, entry }: { bare: string; resource: string; entry: DirEntry }): Promise<void> {
    if (!ctx) return;
    const full = `${bare}/${resource}`;
    if (stubs.has(full) || local(...splitFull(bare, resource)) !== undefined) return;
    const session = createStub(bare, resource, entry, sink);
    const stub = { session, sid: entry.sid, node: entry.node };
    stubs.set(full, stub);
    ctx.sessions.bindRemote(session);
    ctx.hooks.run('remote-session', { session, present: true });
    await endPresence(session);
    if (stubs.get(full) === stub) dropStub(full, stub);
  }

  function splitFull(bare: string, resource: string): [string, string, string] {
    const at = bare.indexOf('@');
    return [bare.slice(at + 1), bare.slice(0, at), resource];
  }

  /**
   * RFC 6121 §4.5.2 on behalf of a dead node's session: its contacts (on
   * every node) get unavailable presence, as if the session had sent it,
   * and so do the JIDs it sent directed presence to (§4.6.3: its directory
   * entry carries them onto the stub; presence.ts skips those the broadcast
   * covered). Run once, by the survivor told of the death.
   */
  async function endPresence(stub: Session): Promise<void> {
    if (!ctx || (stub.presence === undefined && stub.directed === undefined)) return;
    try {
      await ctx.router.routeNoTo(stub, x('presence', { xmlns: NS.CLIENT, type: 'unavailable', from: stub.full_jid }));
    } catch (err) {
      log.warn({ err, jid: stub.full_jid }, 'unavailable presence for a dead node\'s session failed');
    }
  }

  /**
   * Removes the session's entry if it is still its own (the remove is fenced
   * by sid). Not sent when the mirror shows another session bound on the
   * resource after this one: its bind took the entry over, and out of this
   * node's set if it was bound elsewhere (directory.ts WRITE); the remove
   * would only take this node's set member away from that session if it is local.
   */
  function unbind(session: Session): void {
    const entry = directory.entries(session.jid!.bare)?.get(session.resource!);
    if (entry !== undefined && entry.sid !== sidOf(session) && entry.seq > (boundAt.get(session) ?? Infinity)) return;
    directory.remove(session.jid!.bare, session.resource!, sidOf(session))
      .catch((err: unknown) => log.warn({ err, jid: session.full_jid }, 'removing a session from the directory failed'));
  }

  async function bound(session: Session): Promise<void> {
    const seq = await directory.bind(session.jid!.bare, session.resource!, fields(session));
    boundAt.set(session, seq);
    // Another node's bind that Redis applied after ours, seen before our answer came back.
    const entry = directory.entries(session.jid!.bare)?.get(session.resource!);
    if (entry && entry.node !== me && entry.seq > seq) replaced(session, entry);
    else if (session.destroyed) await directory.remove(session.jid!.bare, session.resource!, sidOf(session));
  }

  /**
   * After a resync (Redis or our subscriber was away): a local session whose
   * write never made it (bind or update failed, or Redis lost it) is
   * written again, unless another node holds its resource now (changed()
   * ended it with conflict). One pass over the local sessions.
   */
  async function repair(): Promise<void> {
    if (!ctx) return;
    let rewritten = 0;
    for (const s of [...ctx.sessions.all]) {
      if (s.destroyed || s.full_jid === undefined || local(s.host!, s.username!, s.resource!) !== s) continue;
      const entry = directory.entries(s.jid!.bare)?.get(s.resource!);
      const now = fields(s);
      if ((entry && entry.node !== me) || (entry?.sid === now.sid && same(entry, now))) continue;
      const written = entry?.sid === now.sid ? directory.update(s.jid!.bare, s.resource!, now) : bound(s);
      await written.catch((err: unknown) => log.warn({ err, jid: s.full_jid }, 'writing a session to the directory again failed'));
      rewritten++;
    }
    if (rewritten > 0) log.info({ event: 'cluster-directory-repaired', sessions: rewritten }, 'wrote local sessions to the directory again');
  }

  function feature(c: ModuleContext): void {
    ctx = c;
    remotePresence = registerRemotePresence(c);
    // Before presence.ts broadcasts it (a deliver handler) and the entry is written ('resource-changed').
    c.hooks.filter('presence/broadcast', ({ origin, stanza }) => {
      if (origin === null || stanza.attr('type') !== 'unavailable' || origin.resource === undefined) return undefined;
      if (local(origin.host!, origin.username!, origin.resource) !== origin) return undefined;
      // Larger, the other nodes send a plain unavailable instead (the owner's broadcast still carries this one).
      const text = serialize(stanza);
      if (Buffer.byteLength(text) <= UNAVAILABLE_MAX_BYTES) wentUnavailable.set(origin, text); else wentUnavailable.delete(origin);
      return undefined;
    }, PRIORITY.route.standard);
    // The bind result waits for the write: once the client is told its JID, every node can find it.
    c.hooks.notify('resource-bound', ({ session }) => bound(session).catch((err: unknown) => {
      log.warn({ err, jid: session.full_jid }, 'writing a session to the directory failed: other nodes cannot reach it');
    }), PRIORITY.lifecycle.default);
    // An answer that tells the client its change took effect waits for the write (events.ts resourceChanged).
    c.hooks.notify('resource-changed', ({ session, answerAfter }) => {
      if (session.destroyed || boundAt.get(session) === undefined) return;
      answerAfter(directory.update(session.jid!.bare, session.resource!, fields(session))
        .catch((err: unknown) => log.warn({ err, jid: session.full_jid }, 'updating the directory failed')));
    }, PRIORITY.lifecycle.default);
    // The answer to a question another node asked (answers.ts): its inbox, where it is routed to the domain
    // again. Refused (that node is gone or full), it is dropped, as an answer nobody waits for is anyway.
    c.hooks.deliver('iq/host', ({ origin, stanza, to }) => {
      const type = stanza.attr('type');
      if ((type !== 'result' && type !== 'error') || origin?.full_jid === undefined) return undefined;
      const asker = answers.take(origin.full_jid, stanza.attr('id') ?? '');
      if (asker === undefined) return undefined;
      delivery.send(asker, stanzaEntry(to.full, stanza))
        .catch((err: unknown) => log.debug({ err, node: asker, from: origin.full_jid }, 'an answer for another node was refused'));
      return 'delivered';
    }, PRIORITY.route.answerElsewhere);
    c.hooks.notify('session-destroyed', ({ session, reason }) => {
      if (session.full_jid === undefined || boundAt.get(session) === undefined) return;
      if (!movedElsewhere(reason)) return unbind(session);
      const full = session.full_jid;
      movedAway.set(full, (movedAway.get(full) ?? 0) + 1);
      const timer = setTimeout(() => {
        moved.delete(timer);
        const n = movedAway.get(full)! - 1;
        if (n > 0) movedAway.set(full, n); else movedAway.delete(full);
        unbind(session);
      }, MOVED_ENTRY_MS);
      timer.unref();
      moved.add(timer);
    }, PRIORITY.lifecycle.default);
    // A stanza for a full JID with no session here, before it takes the rules of a resource that is gone
    // (RFC 6121 §8.5.3.2: the bare JID's, offline storage, or an error). Two cases:
    // - the resource's session was held here until another node resumed it (XEP-0198 §5 takeover), and
    //   the new owner's bind does not show yet: as a stanza that reached our inbox (onEntry), it waits for
    //   the new entry (routeWhenSettled); offline storage is where a resumed session never looks;
    // - otherwise it may have been bound on another node a moment ago: its client has its bind result
    //   (which waits for the write) and may have given the JID out before the change reaches this node.
    //   Redis is asked first: one HGET for each stanza to a full JID unknown here. The sender's next
    //   stanza waits for it.
    const unknownHere = (event: RouteEvent): 'delivered' | Promise<'delivered' | undefined> | undefined => {
      const { origin, stanza, to } = event;
      if (to.resource === '' || !c.hosts.has(to.domain) || c.sessions.get(to.domain, to.local, to.resource) !== undefined) return undefined;
      if (movedAway.has(to.full) && !settling.has(stanza)) {
        settling.add(stanza);
        routeWhenSettled(c, to, stanza).catch((err: unknown) => log.warn({ err, to: to.full }, 'routing a stanza to a moved session failed'));
        return 'delivered';
      }
      return directory.catchUp(to.bare, to.resource).then(async () => {
        // Known now: routed again, to the session (a chat message came here by the bare JID's rules, router.ts).
        if (c.sessions.get(to.domain, to.local, to.resource) === undefined) return undefined;
        await c.router.route(origin, stanza, to);
        return 'delivered' as const;
      }, (err: unknown) => {
        log.debug({ err, to: to.full }, 'reading a directory entry failed');
        return undefined;
      });
    };
    for (const route of ['message/full', 'message/bare', 'iq/full', 'presence/full'] as const) c.hooks.deliver(route, unknownHere, PRIORITY.route.unknownHere);
  }

  return {
    feature,
    start: () => directory.start(),
    async stop() {
      // Left, or stopping: a survivor removes what this node still holds (onNodeDown), those entries included.
      for (const timer of moved) clearTimeout(timer);
      moved.clear();
      for (const timer of suspended.values()) clearTimeout(timer);
      suspended.clear();
      movedAway.clear();
      for (const [full, s] of [...stubs]) dropStub(full, s);
      await directory.stop();
    },
  };
}

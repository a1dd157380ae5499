/**
 * The directory as a cluster module (index.ts): this node's bound sessions
 * are written to the directory (directory.ts) when bound, changed
 * ('resource-changed') and destroyed; every other node's sessions become
 * remote stubs in the SessionManager (remote.ts); inbox entries for our
 * sessions are delivered here; a duplicate resource across nodes ends the
 * older session with conflict; a dead node's entries are removed.
 */
import { parseJid, tryParseJid } from '../jid/index.js';
import { DEFAULT_LIMITS, NS, parseXml, serialize, type XmlElement } from '../xml/index.js';
import type { ModuleContext } from '../xmpp/context.js';
import type { Session } from '../xmpp/session.js';
import type { StreamErrorCondition } from '../xmpp/errors.js';
import { handOver } from '../xmpp/hand-over.js';
import { PRIORITY } from '../xmpp/priorities.js';
import { DeliveryRefused, type InboxEntry } from './delivery.js';
import { createDirectory, type DirEntry, type DirFields } from './directory.js';
import { createStub, refresh, stanzaEntry, type RemoteSink } from './remote.js';
import type { ClusterModule, ClusterServices } from './index.js';

interface Stub { readonly session: Session; readonly sid: string; readonly node: string }

export function createDirectoryModule({ node, delivery, log }: ClusterServices): ClusterModule {
  const me = node.id;
  let ctx: ModuleContext | undefined;
  /** Remote stubs by full JID. */
  const stubs = new Map<string, Stub>();
  /** The sequence number of each local session's bind write (directory.ts): who bound last wins. */
  const boundAt = new WeakMap<Session, number>();
  const directory = createDirectory(node, changed, log);
  const sidOf = (s: Session): string => `${me}:${s.logId}`;

  /** The local (not stub) session bound to `full`, if any. */
  function local(host: string, username: string, resource: string): Session | undefined {
    const s = ctx?.sessions.get(host, username, resource);
    return s === undefined || stubs.get(s.full_jid!)?.session === s ? undefined : s;
  }

  function fields(s: Session): DirFields {
    return {
      node: me, sid: sidOf(s), priority: s.priority, presence: s.presence ? serialize(s.presence) : null,
      interested: s.interested === true, carbons: s.carbons, anonymous: s.anonymous,
    };
  }

  /** A mirror change (directory.ts): keep the stubs in step, and end a local session another node took over. */
  function changed(bare: string, resource: string, entry: DirEntry | null, previous: DirEntry | undefined): void {
    if (!ctx) return;
    const full = `${bare}/${resource}`;
    const stub = stubs.get(full);
    if (entry === null) {
      if (stub && stub.sid === previous?.sid) dropStub(full, stub);
      return;
    }
    if (entry.node === me) {
      if (stub) dropStub(full, stub);
      return;
    }
    conflict(parseJid(full), entry);
    if (stub && stub.sid === entry.sid) {
      refresh(stub.session, entry);
      ctx.sessions.setCarbons(stub.session, entry.carbons);
      return;
    }
    if (stub) dropStub(full, stub);
    const session = createStub(bare, resource, entry, sink);
    stubs.set(full, { session, sid: entry.sid, node: entry.node });
    ctx.sessions.bindRemote(session);
    ctx.hooks.run('remote-session', { session, present: true });
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
    if (mine && seq !== undefined && entry.seq > seq) mine.close({ condition: 'conflict', text: 'replaced by a new connection' });
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
   * stubs go, and the stanza is handed over like a gone session's (another
   * resource, offline storage, or an error); a full inbox or a Redis failure
   * answers with an error (presence is state and is not replayed).
   */
  function refused(stub: Session, owner: string, el: XmlElement, err: unknown): void {
    if (!ctx) return;
    const reason = err instanceof DeliveryRefused ? err.reason : 'redis';
    log.warn({ event: 'cluster-delivery-refused', node: owner, reason, to: stub.full_jid }, 'a stanza for another node was refused; routing it here');
    if (reason === 'node-down') {
      for (const [full, s] of [...stubs]) if (s.node === owner) dropStub(full, s);
      handOver(ctx, stub, [{ stanza: el, at: Date.now() }], 'Offline storage');
      return;
    }
    ctx.router.bounce({ origin: null, stanza: el, to: stub.jid! }, 'resource-constraint', 'the recipient cannot be reached right now');
  }

  /** Our inbox (delivery.ts): a stanza for a local session, or a request to close one. */
  async function onEntry(entry: InboxEntry): Promise<void> {
    const c = ctx;
    const to = tryParseJid(entry.to);
    if (!c || !to) return;
    const session = local(to.domain, to.local, to.resource);
    if (entry.kind === 'close') {
      if (session && sidOf(session) === entry.sid) session.close({ condition: entry.condition as StreamErrorCondition, text: entry.text });
      return;
    }
    const el = parseXml(entry.xml, DEFAULT_LIMITS, NS.CLIENT);
    if (session && !session.destroyed) {
      session.send(el);
      return;
    }
    // The session went away meanwhile: route it again (another resource, offline storage, or an error).
    await c.router.route(null, el, to);
  }

  delivery.onEntry((entry) => onEntry(entry));
  delivery.onUndeliverable(async (entry) => {
    log.error({ event: 'cluster-entry-undeliverable', entry }, 'an inbox entry kept failing');
    const to = tryParseJid(entry.to);
    if (entry.kind === 'stanza' && ctx && to) await ctx.router.route(null, parseXml(entry.xml, DEFAULT_LIMITS, NS.CLIENT), to.bareJid());
  });
  node.onNodeDown(async (dead) => {
    for (const [full, s] of [...stubs]) if (s.node === dead) dropStub(full, s);
    const removed = await directory.removeNode(dead);
    log.info({ event: 'cluster-directory-node-removed', node: dead, entries: removed }, 'removed a dead node\'s directory entries');
  });

  async function bound(session: Session): Promise<void> {
    const seq = await directory.bind(session.jid!.bare, session.resource!, fields(session));
    boundAt.set(session, seq);
    // Another node's bind that Redis applied after ours, seen before our answer came back.
    const entry = directory.entries(session.jid!.bare)?.get(session.resource!);
    if (entry && entry.node !== me && entry.seq > seq) session.close({ condition: 'conflict', text: 'replaced by a new connection' });
    else if (session.destroyed) await directory.remove(session.jid!.bare, session.resource!, sidOf(session));
  }

  function feature(c: ModuleContext): void {
    ctx = c;
    // The bind result waits for the write: once the client is told its JID, every node can find it.
    c.hooks.notify('resource-bound', ({ session }) => bound(session).catch((err: unknown) => {
      log.warn({ err, jid: session.full_jid }, 'writing a session to the directory failed: other nodes cannot reach it');
    }), PRIORITY.lifecycle.default);
    c.hooks.notify('resource-changed', ({ session }) => {
      if (session.destroyed || boundAt.get(session) === undefined) return;
      directory.update(session.jid!.bare, session.resource!, fields(session))
        .catch((err: unknown) => log.warn({ err, jid: session.full_jid }, 'updating the directory failed'));
    }, PRIORITY.lifecycle.default);
    c.hooks.notify('session-destroyed', ({ session }) => {
      if (session.full_jid === undefined || boundAt.get(session) === undefined) return;
      directory.remove(session.jid!.bare, session.resource!, sidOf(session))
        .catch((err: unknown) => log.warn({ err, jid: session.full_jid }, 'removing a session from the directory failed'));
    }, PRIORITY.lifecycle.default);
  }

  return {
    feature,
    start: () => directory.start(),
    async stop() {
      for (const [full, s] of [...stubs]) dropStub(full, s);
      await directory.stop();
    },
  };
}

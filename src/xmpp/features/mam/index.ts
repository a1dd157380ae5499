import type {} from '../stream-management/index.js'; // declares 'ack-due'
import { WRITTEN_LIMITS, NS, parseXml, unwatchSerialization, watchSerialization, x, type XmlElement } from '../../../xml/index.js';
import type { Jid } from '../../../jid/index.js';
import type { ArchivePrefs, ArchiveStore } from '../../../storage/ports/archive.js';
import { randomId } from '../../../util/random.js';
import { StanzaErrorException } from '../../errors.js';
import type { ModuleContext } from '../../context.js';
import type { RouteEvent } from '../../events.js';
import type { Session } from '../../session.js';
import { isPromise } from '../../pipeline.js';
import { PRIORITY } from '../../priorities.js';
import { archivable, archiveIdFor, archiveSequence, PrefsCache, stanzaIdElement, stripForgedStanzaIds } from './archiving.js';
import { NS_MAM, NS_MAM_EXTENDED, NS_SID } from './ns.js';
import { archives, parsePrefs, prefsElement } from './prefs.js';
import { finElement, parseQuery, queryForm } from './query.js';
import { createRetention, type RetentionOptions } from './retention.js';
import { BATCH_MS, createArchiveWriter } from './writer.js';
import { RECIPIENT, SENDER, type PackedRecord } from '../../../storage/ports/archive-pack.js';

declare module '../../events.js' {
  interface RouteEvent {
    /**
     * XEP-0359: the sender's archive id of this message, set by the archive when the sender's
     * archive keeps it (the <stanza-id/> of its <sent/> carbons, see senderStanzaId). On the event,
     * not in a WeakMap keyed by it: a new weak key per message cost the event loop 0.6 µs at
     * saturation (bench/RESULTS.md, "Message archive").
     */
    senderArchiveId?: string;
    /** The recipient's archive id of this message, when the recipient's archive keeps it: taken back out if the message bounces. */
    recipientArchiveId?: string;
  }
}

export interface MamOptions extends RetentionOptions {
  /** The most results one query returns (MAM_MAX_PAGE_SIZE). */
  readonly maxPage: number;
  /** Bytes of archive entries queued for the store at most before messages wait (MAM_WRITE_QUEUE_BYTES). */
  readonly writeQueueBytes: number;
}

export interface MamDeps {
  readonly archive: ArchiveStore;
  /** For prefs default 'roster': whether `contact`'s bare JID is on `account`'s roster (XEP-0313 §6.1.1: an item, whatever its subscription). */
  readonly inRoster: (account: Jid, contact: Jid) => Promise<boolean>;
  readonly now?: () => number;
}

export interface MamFeature {
  /** XEP-0313 §3 / XEP-0280: the sender's <stanza-id/> for the <sent/> carbons of this message, when the sender archived it. */
  senderStanzaId(event: RouteEvent): XmlElement | undefined;
  /** Commits what is queued and makes the removals of bounced copies still waiting (shutdown). */
  flush(): Promise<void>;
  /** One retention sweep now; resolves with the messages deleted. */
  sweep(): Promise<number>;
  dispose(): void;
}

// Read back what the server wrote: not bound by a client's input limits (xml/limits.ts).
const STORED_LIMITS = WRITTEN_LIMITS;

/**
 * Message Archive Management (XEP-0313, urn:xmpp:mam:2 and #extended) for
 * one-to-one chat, with XEP-0359 stanza ids. A message a client sends is
 * archived once per account (sender's and recipient's), whatever copies
 * carbons, forking or offline storage make of it: it is archived on its
 * route event (a transform, before any delivery), never on a copy or a
 * re-route (origin null). The writes are batched (writer.ts) and nothing
 * on the message's path waits for them, but the XEP-0198 <a/> that covers
 * a message waits for its commit ('ack-due'): nothing is acknowledged
 * before it is in the archive.
 */
export function register(ctx: ModuleContext, opts: MamOptions, deps: MamDeps): MamFeature {
  const sequence = archiveSequence(deps.now ?? Date.now);
  // Numbering starts after the store's newest entry (a clock set back across a restart reuses no seq).
  const primed = deps.archive.newestAt?.().then((at) => { if (at !== undefined) sequence.floor(at); },
    (err: unknown) => ctx.log.error({ err }, 'message archive: the newest entry cannot be read; numbering from the clock'));
  const writer = createArchiveWriter(deps.archive, opts.writeQueueBytes, {
    onRetry: (err, delayMs) => ctx.log.warn({ err, delayMs }, 'message archive: a write failed; trying again'),
  });
  const retention = createRetention(deps.archive, opts, ctx.log, deps.now ?? Date.now);
  const prefsCache = new PrefsCache();
  // The last archive commit each sending session waits for before its next <a/> (XEP-0198).
  const commits = new WeakMap<Session, Promise<void>>();
  // Every message of a batch gets the batch's promise: one handler per batch, not one per message.
  let batch: Promise<void> | undefined;
  let batchSettled: Promise<void> = Promise.resolve();
  const settled = (done: Promise<void>): Promise<void> => {
    if (done === batch) return batchSettled;
    batch = done;
    batchSettled = done.catch((err: unknown) => {
      // Delivered (or stored offline) already: only the archive copies are missing. Logged, never bounced.
      ctx.log.error({ err }, 'message archive: a write failed for good (the store failing for RETRY_FOR_MS): its messages are not archived');
    });
    return batchSettled;
  };
  // XEP-0313 §8: the archive is the account's, discovered on its bare JID; XEP-0359 §6 on the server.
  // An anonymous account has no archive (the store keeps none for an account that is not registered).
  ctx.disco.addAccountFeature(NS_MAM, { anonymous: false });
  ctx.disco.addAccountFeature(NS_MAM_EXTENDED, { anonymous: false });
  ctx.disco.addFeature(NS_SID);
  // XEP-0359: the entity named in `by` (the account's bare JID) says it stamps ids; Conversations
  // asks the account, and ignores every stanza-id (MAM deduplication) without it.
  ctx.disco.addAccountFeature(NS_SID, { anonymous: false });

  ctx.hooks.transform('stanza-in', ({ stanza }) => {
    if (stanza.name === 'message') stripForgedStanzaIds(stanza, ctx.hosts);
  }, PRIORITY.stanzaIn.forgedDelays);

  const prefsOf = (jid: Jid): ArchivePrefs | Promise<ArchivePrefs> => {
    const hit = prefsCache.get(jid.bare);
    if (hit) return hit;
    // An anonymous account of this node has no archive: nothing is kept for it, and nothing it
    // receives gets a <stanza-id/> of an archive that does not exist (XEP-0313 §3).
    // Not cached: guests come and go, and would push registered accounts' prefs out of the cache.
    if (anonymousHere(jid)) return NO_ARCHIVE;
    return deps.archive.getPrefs(jid.domain, jid.local).then((p) => { prefsCache.set(jid.bare, p); return p; });
  };
  const anonymousHere = (jid: Jid): boolean => {
    for (const s of ctx.sessions.resources(jid.domain, jid.local)) if (s.anonymous) return true;
    return false;
  };
  // owner and contact as routed (full or bare): the owner's bare part counts, the contact's full JID for prefs lists.
  // No closure per call: two calls per archived message.
  const decide = (owner: Jid, contact: Jid): boolean | Promise<boolean> => {
    const prefs = prefsOf(owner);
    return isPromise<ArchivePrefs>(prefs) ? prefs.then((p) => decideBy(p, owner, contact)) : decideBy(prefs, owner, contact);
  };
  const decideBy = (prefs: ArchivePrefs, owner: Jid, contact: Jid): boolean | Promise<boolean> => {
    const kept = archives(prefs, contact);
    return kept === 'roster' ? deps.inRoster(owner.bareJid(), contact.bareJid()) : kept;
  };

  // The record handed to the writer, filled again for each message: the writer packs it at once and
  // keeps nothing of it (writer.ts), so no object is made per message.
  const record: { -readonly [K in keyof PackedRecord]: PackedRecord[K] } = {
    key: 0, id: '', at: 0, sender: '', receiver: '', sides: 0, stanza: '', xmlns: NS.CLIENT, omit: undefined, skipFrom: 0, skipTo: 0,
  };
  // The message archived last, until its record is handed to the writer. It is packed as the
  // recipient's transport serialises it on delivery (xml/serialize.ts, serializeOut), a moment
  // later in the same run of the route, instead of serialised once more here: that was the
  // largest part of what the archive cost the event loop (bench/RESULTS.md, "Message archive",
  // session 38). A message not written out then (stored offline, held for a resume, routed to
  // another node) is serialised here: when the next message is archived, before anything that
  // reads the commits below (ack-due, route-bounced, a query, the shutdown), and at the latest at
  // the end of the event loop's turn (one setImmediate per turn, not one per message). Not in a
  // microtask: an archive decision that waited for the store (prefs 'roster', a cold cache) runs
  // in a promise's callback, and a microtask queued there ran before the delivery.
  let pending: XmlElement | undefined;
  let pendingOrigin: Session | undefined;
  let pendingId: XmlElement | undefined;
  let drainQueued = false;
  const writePending = (): void => {
    const origin = pendingOrigin!;
    if (pending !== undefined) unwatchSerialization(pending);
    pending = pendingOrigin = pendingId = undefined;
    let done: Promise<void>;
    try {
      done = writer.write(record);
    } finally {
      record.stanza = '';
      record.omit = undefined;
      record.skipFrom = record.skipTo = 0;
    }
    commits.set(origin, settled(done));
  };
  /** Hands the message archived last to the writer, serialised here if no transport wrote it. */
  const flushPending = (): void => {
    if (pending === undefined) return;
    record.stanza = pending;
    record.omit = pendingId;
    writePending();
  };
  const drain = (): void => {
    drainQueued = false;
    try {
      flushPending();
    } catch (err) {
      // Only a record the pack cannot hold (over 256 MiB) throws: no stanza is that large.
      ctx.log.error({ err }, 'message archive: a message could not be queued for the archive');
    }
  };
  // The text a transport wrote for the pending message: the message as delivered, with the
  // recipient's <stanza-id/> (the archive keeps it without) as its last child.
  const delivered = (text: string): void => {
    const el = pending;
    if (el === undefined) return;
    const last = el.children[el.children.length - 1];
    // In jabber:client (what the archive keeps), and nothing appended after the <stanza-id/>.
    if (el.attrs.xmlns !== NS.CLIENT || (pendingId !== undefined && last !== pendingId)) return flushPending();
    record.stanza = text;
    if (pendingId !== undefined) {
      // The end tag, then the <stanza-id/> before it: '<' is escaped in its attributes.
      record.skipTo = text.length - el.name.length - 3;
      record.skipFrom = text.lastIndexOf('<', record.skipTo - 1);
    }
    writePending();
  };
  const archive = (event: RouteEvent, sender: Jid, receiver: Jid, senderOk: boolean, receiverOk: boolean): void => {
    const { stanza } = event;
    const same = sender.bare === receiver.bare;
    if (!receiverOk && (!senderOk || same)) return;
    // The message before this one was not written out: packed now, before this one (in order).
    flushPending();
    const { at, key } = sequence.next();
    const id = archiveIdFor(key);
    const sides = (receiverOk ? RECIPIENT : 0) | (senderOk && !same ? SENDER : 0);
    record.key = key; record.id = id; record.at = at; record.sender = sender.bare; record.receiver = receiver.bare;
    record.sides = sides;
    pending = stanza;
    pendingOrigin = event.origin!;
    watchSerialization(stanza, delivered);
    if (!drainQueued) {
      drainQueued = true;
      setImmediate(drain);
    }
    if (receiverOk) {
      // XEP-0313 §3: the recipient sees where and under which id it is archived.
      stanza.append(pendingId = stanzaIdElement(receiver.bare, id));
      retention.touched(receiver.bare);
    }
    if (sides & SENDER) {
      event.senderArchiveId = id;
      retention.touched(sender.bare);
    }
    // A note to oneself is one copy, the sender's too: it stays even if it bounces.
    if (receiverOk && !same) event.recipientArchiveId = id;
  };

  // Before any delivery handler, after the filters that stop a message (blocking: never archived for
  // the blocker; a client's message to a blocker is archived for its sender only, refusedByRecipient).
  const onRoute = (event: RouteEvent): void | Promise<void> => {
    const { origin, stanza } = event;
    if (!origin || origin.jid === undefined || !archivable(stanza)) return;
    // The write queue is full (the store is slower than the senders): the message waits before
    // delivery, and the sender's later input waits behind it in the core (bounded), not dropped.
    const room = writer.room();
    if (room) return room.then(() => onRoute(event));
    // Full JIDs as they are: archiving reads only their bare parts (no new Jid per message).
    const sender = origin.jid;
    const receiver = event.to;
    // XEP-0313 §5.1.1: a registered recipient's archive keeps what an anonymous account sent it;
    // the anonymous sender has no archive.
    const senderOk = origin.anonymous ? false : decide(sender, receiver);
    // XEP-0191: a recipient that blocks the sender refused it (never in its archive); the sender sent it.
    const receiverOk = event.refusedByRecipient ? false : sender.bare === receiver.bare ? senderOk : decide(receiver, sender);
    if (!isPromise(senderOk) && !isPromise(receiverOk)) return archive(event, sender, receiver, senderOk, receiverOk);
    return Promise.all([senderOk, receiverOk]).then(([s, r]) => archive(event, sender, receiver, s, r));
  };
  for (const route of ['message/full', 'message/bare'] as const) ctx.hooks.transform(route, onRoute, PRIORITY.route.archive);
  // XEP-0313 §5.1.1: a message its recipient did not take (its offline storage full, say: the sender
  // got an error) "should not appear in the archive for the entity that rejected it". It was archived
  // before delivery; once that commit is done, the recipient's copy is taken out (the sender's stays).
  // Removals are gathered for BATCH_MS and made per account, after the commits they wait for: a
  // flood of bounces (an offline store kept full) costs one store call per account and batch.
  let bounced: Array<{ readonly host: string; readonly username: string; readonly id: string; readonly committed: Promise<void> }> = [];
  // Removals under way (their batch taken), for the shutdown to wait for.
  const removing = new Set<Promise<void>>();
  const removeBounced = (): Promise<void> => {
    const run = removeTaken();
    removing.add(run);
    return run.finally(() => { removing.delete(run); });
  };
  const removeTaken = async (): Promise<void> => {
    const taken = bounced;
    bounced = [];
    await Promise.all(taken.map((b) => b.committed));
    const byAccount = new Map<string, { host: string; username: string; ids: string[] }>();
    for (const b of taken) {
      const key = `${b.username}@${b.host}`;
      const entry = byAccount.get(key) ?? { host: b.host, username: b.username, ids: [] };
      entry.ids.push(b.id);
      byAccount.set(key, entry);
    }
    for (const { host, username, ids } of byAccount.values()) {
      await deps.archive.remove(host, username, ids).catch((err: unknown) => {
        ctx.log.error({ err }, 'message archive: bounced messages could not be taken out of the recipient archive');
      });
    }
  };
  ctx.hooks.notify('route-bounced', ({ event }) => {
    const id = event.recipientArchiveId;
    if (id === undefined) return;
    flushPending();
    // The sender's latest commit: this message's batch, or one after it (batches commit in order).
    bounced.push({ host: event.to.domain, username: event.to.local, id, committed: commits.get(event.origin!) ?? Promise.resolve() });
    if (bounced.length === 1) setTimeout(() => void removeBounced(), BATCH_MS).unref();
  }, PRIORITY.lifecycle.default);
  // Warm the preferences at bind (the bind result waits for it, as for the roster): a bound
  // session's messages are then archived without waiting for the store, so the stanzas behind
  // them (a ping in the same BOSH body) are answered in the same response as before MAM.
  ctx.hooks.notify('resource-bound', async ({ session }) => {
    if (session.anonymous || session.jid === undefined) return;
    await primed;
    await prefsOf(session.jid.bareJid());
  }, PRIORITY.lifecycle.default);
  // XEP-0198: the <a/> that covers a message the session sent waits for that message's commit.
  ctx.hooks.notify('ack-due', ({ session }) => {
    flushPending();
    return commits.get(session);
  }, PRIORITY.lifecycle.default);

  // A query reads its own writes: what is queued is committed first (a message delivered a moment ago is in the page).
  registerQueries(ctx, opts, deps.archive, {
    prefsChanged: (host, username, prefs) => {
      prefsCache.set(`${username}@${host}`, prefs);
      // CLUSTER=redis: the account's stored state changed; other nodes drop their copy of the prefs
      // ('account-stale' below; cluster/account-sync.ts carries it). Other nodes archive the
      // account's messages with its contacts there, reading its prefs from their own cache.
      void ctx.hooks.run('account-written', { host, username });
    },
    settle: () => {
      flushPending();
      return writer.flush();
    },
  });
  ctx.hooks.notify('account-stale', ({ host, username }) => { prefsCache.delete(`${username}@${host}`); }, PRIORITY.lifecycle.default);

  return {
    senderStanzaId: (event) => {
      const id = event.senderArchiveId;
      return id === undefined || event.origin?.jid === undefined ? undefined : stanzaIdElement(event.origin.jid.bare, id);
    },
    // Shutdown: the queued messages are committed (no more retries), then the bounced copies still
    // gathered are taken out, and the removals already under way are waited for.
    flush: async () => {
      flushPending();
      await writer.close();
      await removeBounced();
      await Promise.all([...removing]);
    },
    sweep: () => retention.sweep(),
    dispose: () => retention.dispose(),
  };
}

/** The IQs of XEP-0313: query (set), its form, metadata and prefs (get), prefs (set); forbidden on another account's archive. */
interface QueryHooks {
  prefsChanged(host: string, username: string, prefs: ArchivePrefs): void;
  /** Resolves once the archive writes queued so far are committed. */
  settle(): Promise<void>;
}

function registerQueries(ctx: ModuleContext, opts: MamOptions, store: ArchiveStore, { prefsChanged, settle }: QueryHooks): void {
  ctx.iq.register('self', 'set', NS_MAM, async (session, _iq, payload) => {
    const { host, username } = account(session);
    if (payload.local === 'query') {
      await settle();
      return query(ctx, session, payload, store, opts.maxPage);
    }
    if (payload.local !== 'prefs') throw new StanzaErrorException('bad-request', 'expected <query/> or <prefs/>');
    const prefs = parsePrefs(payload);
    await store.setPrefs(host, username, prefs);
    prefsChanged(host, username, prefs);
    return prefsElement(prefs);
  });
  ctx.iq.register('self', 'get', NS_MAM, async (session, _iq, payload) => {
    const { host, username } = account(session);
    if (payload.local === 'query') return queryForm();
    if (payload.local === 'prefs') return prefsElement(await store.getPrefs(host, username));
    if (payload.local !== 'metadata') throw new StanzaErrorException('bad-request', 'expected <query/>, <prefs/> or <metadata/>');
    // XEP-0313 §7.1: <start/> and <end/> of a non-empty archive; empty <metadata/> otherwise.
    await settle();
    const { first, last } = await store.bounds(host, username);
    const edge = (name: string, m: typeof first) => m && x(name, { id: m.id, timestamp: new Date(m.at).toISOString() });
    return x('metadata', { xmlns: NS_MAM }, edge('start', first), edge('end', last));
  });
  // XEP-0313 §9 (Security): only the account itself reads its archive. Above the bare-JID IQ default.
  ctx.hooks.deliver('iq/bare', (event) => {
    const { origin, stanza, to } = event;
    if (!origin || stanza.firstElement?.ns !== NS_MAM || (origin.username === to.local && origin.host === to.domain)) return;
    const type = stanza.attr('type');
    if (type !== 'get' && type !== 'set') return;
    ctx.router.bounce(event, 'forbidden', "only the account itself may use its archive");
    return 'delivered';
  }, PRIORITY.route.onBehalf);
}

/** The session's account; an anonymous one has no archive (not announced to it either). */
function account(session: Session): { host: string; username: string } {
  if (session.anonymous) throw new StanzaErrorException('service-unavailable', 'anonymous accounts have no message archive');
  return { host: session.host!, username: session.username! };
}

/** Sends the page's results, then answers with <fin/> (XEP-0313 §4.3). */
async function query(ctx: ModuleContext, session: Session, payload: XmlElement, store: ArchiveStore, maxPage: number): Promise<XmlElement> {
  const parsed = parseQuery(payload, { maxPage });
  const page = await store.query(session.host!, session.username!, parsed.query);
  // XEP-0313 §4.1.1 / §4.3.2: an id to start from that is not in the archive.
  if (page === 'item-not-found') throw new StanzaErrorException('item-not-found', 'no such id in the archive');
  const ordered = parsed.flip ? [...page.messages].reverse() : page.messages;
  for (const m of ordered) {
    const inner = readStored(ctx, m.stanza);
    if (!inner) continue;
    session.send(x('message', { xmlns: NS.CLIENT, to: session.full_jid, from: session.jid!.bare, id: randomId(9) },
      x('result', { xmlns: NS_MAM, queryid: parsed.queryid, id: m.id },
        x('forwarded', { xmlns: NS.FORWARD }, x('delay', { xmlns: NS.DELAY, stamp: new Date(m.at).toISOString() }), inner))));
  }
  return finElement(page.messages.map((m) => m.id), page.complete, page.count);
}

/** The prefs of an account that has no archive (an anonymous one): nothing is kept. */
const NO_ARCHIVE: ArchivePrefs = { default: 'never', always: [], never: [] };

function readStored(ctx: ModuleContext, text: string): XmlElement | undefined {
  try {
    return parseXml(text, STORED_LIMITS, NS.CLIENT);
  } catch (err) {
    ctx.log.error({ err }, 'message archive: a stored message cannot be read');
    return undefined;
  }
}

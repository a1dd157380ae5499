import { WRITTEN_LIMITS, NS, parseXml, x, type XmlElement } from '../../../xml/index.js';
import type { OfflineMessage, OfflineStore } from '../../../storage/ports/offline.js';
import type { ModuleContext } from '../../context.js';
import type { Session } from '../../session.js';
import { PRIORITY } from '../../priorities.js';
import { tryParseJid, type Jid } from '../../../jid/index.js';
import { stanzaErrorReply } from '../../errors.js';
import '../stream-management/index.js';
import { movedElsewhere } from '../stream-management/journal.js';

/** Stored messages read and sent at once; the next page waits until this one is acked (or written). */
export const PAGE_SIZE = 50;
/**
 * And at most this many bytes of them (at least one message): what a page adds to a session's
 * XEP-0198 pending queue past buffer_max stays far under SM_PENDING_MAX_BYTES (4 MiB), which closes
 * the session when passed; 50 messages near the stanza limit were 12.5 MB (found in review).
 */
export const PAGE_BYTES = 256 * 1024;

/** The head of `page` within PAGE_BYTES of stored text, at least its first message. */
function withinBytes(page: readonly OfflineMessage[]): readonly OfflineMessage[] {
  let bytes = 0;
  let n = 0;
  while (n < page.length && (n === 0 || bytes + page[n]!.stanza.length <= PAGE_BYTES)) bytes += page[n++]!.stanza.length;
  return page.slice(0, n);
}
/** How often a delivery without stream management looks at the transport's backlog if no 'session-drained' comes. */
export const DRAIN_POLL_MS = 1000;

// What we stored passed the stanza limits when it arrived; reading it back must not fail on them.
// Read back what the server wrote: not bound by a client's input limits (xml/limits.ts).
const STORED_LIMITS = WRITTEN_LIMITS;

/** What offline delivery asks of stream management (XEP-0198). */
export interface AckTracker {
  /** True when what is sent to `session` stays queued until the client acks it ('stanzas-acked' then fires). */
  tracks(session: Session): boolean;
  /** True when `session`'s queue is stored outside this process (SM_BACKEND=redis): it owns what it holds. */
  journaled?(session: Session): boolean;
}

/** What offline delivery gives its feature (index.ts). */
export interface Delivery {
  /**
   * Delivers `session`'s stored messages, page by page; on the account's line. Those whose stanza
   * (as delivered, serialized) is in `inQueue` are in its XEP-0198 queue already: taken out, not sent.
   */
  deliver(session: Session, inQueue?: ReadonlySet<string>): Promise<void>;
  /** Whether a delivery to `session` stopped when it hibernated, with stored messages left: run again on its resumption. */
  resumed(session: Session): boolean;
}

/** XEP-0191: whether the session's account blocks `from` (a message stored before the block is then not delivered). */
export type BlocksSender = (session: Session, from: Jid) => boolean;

/** The page of a session waiting for acks: its stanzas still unacked (by stored id), and the ids acked so far. */
interface InFlight {
  readonly unacked: Map<XmlElement, number>;
  readonly acked: number[];
  wake: () => void;
}

/**
 * A page a session had not acked when it hibernated (its queue in this process only): still stored,
 * and still in its XEP-0198 queue. Acked later (a resumption), each is taken out of storage then.
 * Every delivery to the account skips them meanwhile (`ids`), the session's own run on its resumption
 * (they are in the resumed stream) and another resource's (they would arrive twice); once the session
 * ends they are the next login's, as any page a session left unacked.
 */
interface Left {
  readonly unacked: Map<XmlElement, number>;
  readonly ids: Set<number>;
}

/**
 * XEP-0160 delivery of an account's stored messages to one session, in
 * pages (issue 10): never the whole backlog in memory, never more than a
 * page in flight, one event-loop turn per page.
 *
 * Who owns a message, so that each arrives once: storage, until the client
 * acknowledges it (XEP-0198 with `buffer` and acks), or until it is written
 * to a client without stream management. A session that ends with a page
 * unacked leaves those messages in storage, and its hand-over leaves them
 * out (the 'hand-over' hook), so the next login gets them, in order, once.
 *
 * A delivery runs on the account's line, and every message for the account
 * waits behind it (index.ts). So a session that hibernates with a page
 * unacked does not hold it for its whole resume time, and the account's
 * other resources and senders with it: the delivery stops there. A queue
 * stored outside the process (SM_BACKEND=redis) owns the page from then on
 * (the resumption, wherever it lands, or the hand-over at its timeout):
 * it leaves storage. A queue in this process only keeps it stored (`Left`:
 * a crash must not lose it), taken out as the resumed stream acks it. The
 * rest of the backlog follows on the resumed stream (index.ts runs the
 * delivery again), or at the next login.
 */
export function createDelivery(
  ctx: ModuleContext, store: Pick<OfflineStore, 'list' | 'remove'>, acks: AckTracker | undefined, blocks?: BlocksSender, drainPollMs = DRAIN_POLL_MS,
): Delivery {
  const inFlight = new WeakMap<Session, InFlight>();
  const left = new WeakMap<Session, Left>();
  /** The sessions of each account (bare JID) that have a `Left`. */
  const leftIn = new Map<string, Set<Session>>();
  const account = (session: Session): string => `${session.username}@${session.host}`;
  const forget = (session: Session): void => {
    left.delete(session);
    const held = leftIn.get(account(session));
    if (held?.delete(session) && held.size === 0) leftIn.delete(account(session));
  };
  /** Sessions whose delivery stopped at hibernation with messages left in storage. */
  const stopped = new WeakSet<Session>();
  /** Sessions that ended because another node resumed them (XEP-0198 §5 across nodes): their queue went with them. */
  const moved = new WeakSet<Session>();
  const drainWaiters = new WeakMap<Session, () => void>();

  ctx.hooks.notify('stanzas-acked', ({ session, stanzas }) => {
    const f = inFlight.get(session);
    if (f) {
      for (const s of stanzas) {
        const id = f.unacked.get(s);
        if (id !== undefined) { f.unacked.delete(s); f.acked.push(id); }
      }
      if (f.unacked.size === 0) f.wake();
    }
    const l = left.get(session);
    if (!l) return;
    const acked: number[] = [];
    for (const s of stanzas) {
      const id = l.unacked.get(s);
      if (id !== undefined) { l.unacked.delete(s); acked.push(id); }
    }
    // Skipped by other deliveries until they are out of storage (a listing meanwhile would send them again).
    remove(session, acked).then(() => { if (l.unacked.size === 0 && left.get(session) === l) forget(session); },
      (err: unknown) => ctx.log.error({ err, jid: account(session) }, 'offline messages: acked messages could not be taken out of storage (the next login gets them again)'));
  }, PRIORITY.lifecycle.default);
  ctx.hooks.transform('hand-over', (event) => {
    const f = inFlight.get(event.session);
    const l = left.get(event.session);
    if ((!f || f.unacked.size === 0) && !l) return;
    event.stanzas = event.stanzas.filter((u) => !f?.unacked.has(u.stanza) && !l?.unacked.has(u.stanza));
  }, PRIORITY.lifecycle.default);
  ctx.hooks.notify('session-drained', ({ session }) => { drainWaiters.get(session)?.(); }, PRIORITY.lifecycle.default);
  // Wakes a waiting delivery; it goes on in a later microtask, after the session's hand-over has run.
  ctx.hooks.notify('session-destroyed', ({ session, reason }) => {
    if (movedElsewhere(reason)) moved.add(session);
    inFlight.get(session)?.wake();
    drainWaiters.get(session)?.();
    // Its hand-over ran first ('hand-over' above kept them out): the left page is storage's again.
    if (left.has(session)) forget(session);
  }, PRIORITY.lifecycle.default);
  ctx.hooks.notify('session-hibernated', ({ session }) => { inFlight.get(session)?.wake(); }, PRIORITY.lifecycle.default);

  // Removed once acked (or written, without stream management): delivered (XEP-0160).
  const remove = async (session: Session, ids: number[]): Promise<void> => {
    if (ids.length === 0) return;
    await store.remove(session.host!, session.username!, ids);
    ctx.metrics.offline('delivered', ids.length);
  };

  /** Sends one page; resolves once it is acked (or written and drained). False when the session is gone or hibernates. */
  async function deliverPage(session: Session, page: readonly OfflineMessage[], skip: ReadonlySet<number> | undefined, inQueue: ReadonlySet<string> | undefined): Promise<boolean> {
    const tracked = acks?.tracks(session) ?? false;
    const journaled = tracked && (acks?.journaled?.(session) ?? false);
    const f: InFlight = { unacked: new Map(), acked: [], wake: () => {} };
    const written: number[] = [];
    const refused: number[] = [];
    const queued: number[] = [];
    const bounces: Array<{ error: XmlElement; to: Jid }> = [];
    // Registered before sending: a session that ends while a page is sent must not hand it over.
    if (tracked) inFlight.set(session, f);
    for (const m of page) {
      if (session.destroyed) break;
      if (skip?.has(m.id)) continue;
      const message = read(ctx, session, m);
      if (!message) continue;
      // Delivered by a node that died before the ack: in the session's queue (resent or acknowledged), not twice.
      if (inQueue?.has(message.toString())) {
        queued.push(m.id);
        continue;
      }
      // XEP-0191 §3.3: stored before the user blocked its sender: not delivered, taken out, and
      // the sender told what a message to a blocker gets (service-unavailable), as at routing.
      const from = tryParseJid(message.attr('from'));
      if (from && blocks?.(session, from)) {
        refused.push(m.id);
        if (message.attr('type') !== 'error') bounces.push({ error: stanzaErrorReply(message, 'service-unavailable'), to: from });
        continue;
      }
      if (tracked) f.unacked.set(message, m.id); else written.push(m.id);
      // Through the session's filters: with stream management it is queued until acked.
      session.send(message);
    }
    ctx.log.debug({ event: 'offline-delivered', session: session.logId, ids: page.slice(0, 64).map((m) => idOf(m.stanza)) }, 'offline messages sent');
    await remove(session, queued);
    // Taken out first: a removal that fails leaves them stored, and answered at the next login, once.
    if (refused.length > 0) {
      await store.remove(session.host!, session.username!, refused);
      for (const b of bounces) void ctx.router.route(null, b.error, b.to);
    }
    if (tracked) {
      while (f.unacked.size > 0 && !session.destroyed && !hibernating(session)) await new Promise<void>((resolve) => { f.wake = resolve; });
      inFlight.delete(session);
      // Decided in the turn that woke it: a resumption comes later and finds the delivery marked stopped.
      const stopping = f.unacked.size > 0 && !session.destroyed;
      if (stopping) stop(session, f, journaled);
      // Hibernating, or resumed on another node: a journaled queue owns the page now (the resumption resends it).
      if (f.unacked.size > 0 && journaled && (stopping || moved.has(session))) f.acked.push(...f.unacked.values());
      await remove(session, f.acked);
      if (stopping) return false;
    } else {
      await remove(session, written);
      await drained(session);
    }
    return !session.destroyed;
  }

  /**
   * Without stream management: waits until the transport has handed its backlog to the client.
   * A turn first: a WebSocket's writes are corked until the next tick and then usually taken by
   * the kernel at once, with no 'session-drained' (that comes only after the high-water mark);
   * without the turn every page waited out DRAIN_POLL_MS, a second per 50 messages, and live
   * messages queued behind the delivery (found in review).
   */
  async function drained(session: Session): Promise<void> {
    if ((session.conn?.bufferedBytes ?? 0) > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    while (!session.destroyed && (session.conn?.bufferedBytes ?? 0) > 0) {
      const signalled = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => { drainWaiters.delete(session); resolve(false); }, drainPollMs);
        drainWaiters.set(session, () => { clearTimeout(timer); drainWaiters.delete(session); resolve(true); });
      });
      if (signalled) return;
    }
  }

  /** A session with no transport: stream management keeps it for a resumption (XEP-0198 §5). */
  function hibernating(session: Session): boolean {
    return session.conn === null;
  }

  /**
   * The session hibernated with `f` unacked: the delivery stops (see createDelivery). A page in a
   * queue of this process only stays stored, as `Left`; a journaled one leaves storage (deliverPage).
   */
  function stop(session: Session, f: InFlight, journaled: boolean): void {
    stopped.add(session);
    ctx.log.debug({ event: 'offline-delivery-stopped', session: session.logId, unacked: f.unacked.size }, 'offline delivery stopped: the session hibernates');
    if (journaled) return;
    const l = left.get(session) ?? { unacked: new Map<XmlElement, number>(), ids: new Set<number>() };
    for (const [stanza, id] of f.unacked) { l.unacked.set(stanza, id); l.ids.add(id); }
    left.set(session, l);
    const held = leftIn.get(account(session)) ?? new Set<Session>();
    held.add(session);
    leftIn.set(account(session), held);
  }

  /** The stored ids in the queues of the account's hibernating sessions (`Left`), or undefined when none. */
  function skipped(session: Session): ReadonlySet<number> | undefined {
    const held = leftIn.get(account(session));
    if (!held) return undefined;
    const ids = new Set<number>();
    for (const s of held) for (const id of left.get(s)?.ids ?? []) ids.add(id);
    return ids;
  }

  return {
    async deliver(session, inQueue) {
      const skip = skipped(session);
      let afterId = 0;
      while (!session.destroyed) {
        const listed = await store.list(session.host!, session.username!, { afterId, limit: PAGE_SIZE });
        if (listed.length === 0) return;
        const page = withinBytes(listed);
        afterId = page[page.length - 1]!.id;
        if (!await deliverPage(session, page, skip, inQueue)) return;
        // One page per event-loop turn: a large backlog does not stall other sessions.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    },
    resumed(session) {
      if (!stopped.has(session)) return false;
      stopped.delete(session);
      return true;
    },
  };
}

/** Parses a stored message and stamps it; undefined (kept in storage, logged) when it cannot be read. */
function read(ctx: ModuleContext, session: Session, m: OfflineMessage): XmlElement | undefined {
  try {
    return asDelivered(m, session.host!);
  } catch (err) {
    // Kept, not dropped: an operator can look at it; it still counts against the limit.
    ctx.log.error({ err, jid: `${session.username}@${session.host}`, id: m.id }, 'offline messages: a stored message cannot be read');
    return undefined;
  }
}

/** A stored message as a delivery sends it (parsed, stamped); throws when it cannot be read. */
function asDelivered(m: OfflineMessage, host: string): XmlElement {
  const message = parseXml(m.stanza, STORED_LIMITS, NS.CLIENT);
  stampDelay(message, host, m.storedAt);
  return message;
}

/**
 * Whether `message`, about to be stored for host/username, is a stored message as delivered (its
 * 'Offline Storage' delay) that is still stored: a page a dead node's session got and never acked,
 * handed over from its XEP-0198 queue when nobody resumed it (cluster/sm-orphans.ts). Stored again, the
 * next login got it twice. Only such a message costs a read of the account's stored messages.
 */
export async function storedAlready(store: OfflineStore, host: string, username: string, message: XmlElement): Promise<boolean> {
  // The delivery's stamp is the last child (stampDelay), with the time the message was stored: only
  // stored messages of that millisecond are read and compared, the message without its stamp.
  const delay = message.children[message.children.length - 1];
  if (typeof delay === 'string' || delay?.name !== 'delay' || delay.attr('xmlns') !== NS.DELAY || delay.attr('from') !== host || delay.text() !== STORED_NOTE) return false;
  const stamp = delay.attr('stamp');
  const storedAt = Date.parse(stamp ?? '');
  if (Number.isNaN(storedAt)) return false;
  const unstamped = message.clone();
  unstamped.children.pop();
  const text = unstamped.toString();
  const same = (m: OfflineMessage): boolean => {
    try {
      return parseXml(m.stanza, STORED_LIMITS, NS.CLIENT).toString() === text;
    } catch {
      return false;
    }
  };
  for (let afterId = 0; ;) {
    const page = await store.list(host, username, { afterId, limit: PAGE_SIZE, storedAt });
    if (page.length === 0) return false;
    if (page.some(same)) return true;
    afterId = page[page.length - 1]!.id;
  }
}

/** The text of the delay (XEP-0203) a stored message is delivered with. */
const STORED_NOTE = 'Offline Storage';

/**
 * XEP-0203: one delay notation from this server. One is already there when
 * the message was stored before (stream-management hand-over stamps it with
 * when it first arrived); a client's claim to be us was removed on receipt.
 */
function stampDelay(message: XmlElement, host: string, storedAt: number): void {
  if (message.getChildren('delay', NS.DELAY).some((d) => d.attr('from') === host)) return;
  message.append(x('delay', { xmlns: NS.DELAY, from: host, stamp: new Date(storedAt).toISOString() }, STORED_NOTE));
}

/** A stored message's id attribute, for the debug log (roll-trace.ts finds a message's lines by it). */
function idOf(stanza: string): string | undefined {
  return /^<message\b[^>]*?\sid=["']([^"']*)["']/.exec(stanza)?.[1];
}

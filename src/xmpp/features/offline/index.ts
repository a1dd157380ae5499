import { NS, type XmlElement } from '../../../xml/index.js';
import { makeJid, type Jid } from '../../../jid/index.js';
import type { OfflineQuota, OfflineStore } from '../../../storage/ports/offline.js';
import type { UserStore } from '../../../storage/ports/accounts.js';
import type { ModuleContext } from '../../context.js';
import type { RouteEvent } from '../../events.js';
import type { Session } from '../../session.js';
import { bareTargets, deliverFull, undeliverable, type MessageDelivery } from '../message.js';
import { PRIORITY } from '../../priorities.js';
import { handledAsBareWithoutResource, messageType } from '../../message-types.js';
import { createDelivery, storedAlready, type AckTracker, type BlocksSender } from './delivery.js';

export interface OfflineOptions {
  /** Messages one account may hold; 0 disables offline storage (RFC 6121 §8.5.2.2.1 then bounces). */
  readonly maxMessages: number;
  /** UTF-8 bytes of stored stanzas one account may hold (MAX_OFFLINE_BYTES). */
  readonly maxBytes: number;
  /** Bytes of messages one account may have waiting in memory behind a delivery of its stored ones. */
  readonly maxWaitingBytes: number;
  /** How often a delivery without XEP-0198 looks at the transport's backlog if no drain is signalled (default DRAIN_POLL_MS). */
  readonly drainPollMs?: number;
}

export interface OfflineDeps {
  readonly offline: OfflineStore;
  /** Only existing accounts get messages stored (RFC 6121 §8.5.1). */
  readonly users: Pick<UserStore, 'get'>;
  /** Stream management: whether a session's stanzas are acknowledged (XEP-0198). */
  readonly acks?: AckTracker;
  /** Blocking (XEP-0191): whether the session's account blocks a sender. */
  readonly blocks?: BlocksSender;
  /** Message delivery (message.ts): the bare-JID rules for messages that waited behind a delivery. */
  readonly messages: Pick<MessageDelivery, 'deliverBare'>;
}

export interface OfflineFeature {
  /** Resolves once every store and delivery started so far has finished; shutdown awaits it before closing storage. */
  flush(): Promise<void>;
}

/** The longest a delivery waits for the presence feature to process the presence that triggered it. */
const PRESENCE_WAIT_MS = 5000;

/**
 * Offline messages (XEP-0160): a chat or normal message for an existing
 * account with no available resource of non-negative priority is stored,
 * and delivered with a XEP-0203 delay stamp when a resource of the account
 * becomes available with non-negative priority, in pages (delivery.ts);
 * deleted once acknowledged.
 *
 * Everything for one account runs on the account's queue (ctx.queues):
 * while a store or a delivery is under way, newer messages to that account
 * wait behind it, so nobody sees them out of order.
 */
export function register(ctx: ModuleContext, opts: OfflineOptions, deps: OfflineDeps): OfflineFeature {
  const line = ctx.queues.deliveries;
  if (opts.maxMessages === 0) return { flush: () => line.idle() };
  const quota: OfflineQuota = { maxMessages: opts.maxMessages, maxBytes: opts.maxBytes };
  ctx.disco.addFeature(NS.OFFLINE);
  const delivery = createDelivery(ctx, deps.offline, deps.acks, deps.blocks, opts.drainPollMs);
  const keyOf = (jid: Jid): string => jid.bare;
  // At shutdown every session is about to close: what stream management
  // hands over then is stored, not given to another resource that may have
  // no stream management to hand it back (core.shutdown() fires this hook
  // before it closes the sessions).
  let shuttingDown = false;
  ctx.hooks.notify('server-shutdown', () => { shuttingDown = true; }, PRIORITY.lifecycle.default);

  // Above the standard delivery, after the filters that stop a message
  // (blocking), as in Prosody where mod_offline comes last.
  ctx.hooks.deliver('message/bare', (event) => {
    const key = keyOf(event.to);
    if (line.busy(key)) {
      behind(key, event, () => deliverOrStore(event));
      return 'delivered';
    }
    if (!storable(event.stanza) || (!shuttingDown && bareTargets(ctx, event).length > 0)) return;
    line.after(key, () => store(event));
    return 'delivered';
  }, PRIORITY.route.offline);

  ctx.hooks.deliver('message/full', (event) => {
    const key = keyOf(event.to);
    if (!line.busy(key)) return;
    // RFC 6121 §8.5.3.2.1: only chat and normal take the bare-JID rules when the resource is gone by
    // then; deliverFull bounces groupchat and ignores headline and error, as without a delivery running.
    behind(key, event, () => (ctx.sessions.get(event.to.domain, event.to.local, event.to.resource) || !handledAsBareWithoutResource(messageType(event.stanza))
      ? deliverFull(ctx, event) : deliverOrStore(event)));
    return 'delivered';
  }, PRIORITY.route.offline);

  // A delivery may wait for acks for up to SM_ACK_TIMEOUT, or a resume
  // timeout: what queues behind it in memory is bounded in bytes per
  // account, and beyond that the sender gets resource-constraint (type
  // wait) to retry, rather than the server holding without limit. What the
  // server re-routes itself (origin null: a session's hand-over) is neither
  // refused nor counted here: its volume is already bounded by that
  // session's own SM bounds, and refusing it would bounce messages the
  // server had accepted.
  const heldBytes = new Map<string, number>();
  function behind(key: string, event: RouteEvent, task: () => Promise<void> | void): void {
    if (event.origin === null) {
      line.after(key, task);
      return;
    }
    const bytes = Buffer.byteLength(event.stanza.toString());
    const held = heldBytes.get(key) ?? 0;
    if (held + bytes > opts.maxWaitingBytes) {
      ctx.router.bounce(event, 'resource-constraint', 'too many messages are waiting for the recipient');
      return;
    }
    heldBytes.set(key, held + bytes);
    line.after(key, () => {
      const left = (heldBytes.get(key) ?? 0) - bytes;
      if (left > 0) heldBytes.set(key, left); else heldBytes.delete(key);
      return task();
    });
  }

  // XEP-0160 §2: "When the recipient next sends non-negative available
  // presence", deliver to that resource. Runs before the presence feature
  // (at 50; it must see the old state) and never handles the event. The
  // delivery is queued and waits until the presence has been processed, so
  // from then on bare-JID messages reach the resource directly, and the
  // ones that arrive meanwhile queue up behind the stored ones. Prosody
  // delivers on initial presence only; a resource that goes from a negative
  // to a non-negative priority also counts here, as XEP-0160 reads.
  // A filter that only looks: it must see the state before presence changes it.
  ctx.hooks.filter('presence/broadcast', ({ origin, stanza }) => {
    if (!origin || origin.username === undefined || stanza.attr('type') !== undefined) return;
    const wasReachable = origin.presence !== undefined && origin.priority >= 0;
    if (wasReachable || priorityOf(stanza) < 0) return;
    line.after(makeJid(origin.username, origin.host!).bare, async () => {
      await processed(origin);
      await delivery.deliver(origin);
    });
  }, PRIORITY.route.offlineTrigger);
  // A delivery that stopped when its session hibernated (delivery.ts) goes on once the session is
  // resumed here: what is left follows on the resumed stream, after what its queue resent. So does
  // one for a session announced available again after its contacts were told it was gone (its node
  // died): what was sent to the account meanwhile was stored, and its resumption, not a new login,
  // is the account's return (before, the user saw those messages only at the next fresh login).
  ctx.hooks.notify('session-resumed', ({ session, wasUnavailable, queued }) => {
    const stopped = delivery.resumed(session);
    if (!(stopped || (wasUnavailable === true && session.priority >= 0)) || session.username === undefined) return;
    // A page its dead node delivered is in its queue and still stored: the queue's (resent, or acknowledged).
    const inQueue = queued && queued.length > 0 ? new Set(queued.map((el) => el.toString())) : undefined;
    // Taken over from another node, the session is still being built (its account loads in the job on
    // the session's queue, takeover.ts): a delivery begun now failed on it, the messages left stored.
    // The line is held from now on all the same (what comes for the account meanwhile follows them).
    const built = wasUnavailable === true ? afterJob(session) : undefined;
    line.after(makeJid(session.username, session.host!).bare, async () => {
      await built;
      await delivery.deliver(session, inQueue);
    });
  }, PRIORITY.lifecycle.default);

  /** Resolves once the job `session`'s queue runs now has; after PRESENCE_WAIT_MS at the latest, so a line never stalls. */
  function afterJob(session: Session): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, PRESENCE_WAIT_MS);
      timer.unref();
      ctx.queues.sessions.after(session, () => { clearTimeout(timer); resolve(); });
    });
  }

  // The presence feature may process presence asynchronously (after the
  // roster is loaded): the broadcast's pipeline has run once its notify
  // phase does, and the delivery waiting above may go on.
  const waiting = new WeakMap<Session, () => void>();
  ctx.hooks.notify('presence/broadcast', ({ origin }) => { if (origin) waiting.get(origin)?.(); }, PRIORITY.route.standard);
  ctx.hooks.notify('session-destroyed', ({ session }) => { waiting.get(session)?.(); }, PRIORITY.lifecycle.default);

  /** Resolves once `session` is reachable (or gone); after PRESENCE_WAIT_MS at the latest, so a line never stalls. */
  function processed(session: Session): Promise<void> {
    if ((session.presence !== undefined && session.priority >= 0) || session.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        waiting.delete(session);
        resolve();
      };
      const timer = setTimeout(done, PRESENCE_WAIT_MS);
      timer.unref();
      waiting.set(session, done);
    });
  }

  async function deliverOrStore(event: RouteEvent): Promise<void> {
    if (deps.messages.deliverBare(event)) return;
    if (storable(event.stanza)) await store(event);
    else undeliverable(ctx, event);
  }

  async function store(event: RouteEvent): Promise<void> {
    const { to, stanza } = event;
    try {
      // RFC 6121 §8.5.1: no such account (a throw-away anonymous one is not
      // stored either) gets what a server without offline storage answers.
      if (await deps.users.get(to.domain, to.local) === undefined) {
        ctx.router.bounce(event, 'service-unavailable');
        return;
      }
      const copy = stanza.clone().setAttr('xmlns', NS.CLIENT);
      if (await storedAlready(deps.offline, to.domain, to.local, copy)) {
        ctx.log.debug({ event: 'offline-stored-already', to: to.bare, id: stanza.attr('id') }, 'a stored message handed back: stored already');
        return;
      }
      // The store checks both limits and inserts in one step: a refused
      // message leaves nothing behind, and concurrent pushes cannot overshoot.
      const stored = await deps.offline.push(to.domain, to.local, copy.toString(), quota);
      ctx.metrics.offline(stored ? 'stored' : 'refused-quota');
      if (stored) ctx.log.debug({ event: 'offline-stored', to: to.bare, id: stanza.attr('id') }, 'stored offline');
      if (!stored) {
        ctx.metrics.limitRefused('offline');
        // XEP-0160 §2 would answer service-unavailable; like ejabberd we say
        // resource-constraint (type wait): the account exists and the sender
        // may retry later, instead of a silent drop or a misleading "no such user".
        ctx.router.bounce(event, 'resource-constraint', 'the offline message store of the recipient is full');
      }
    } catch (err) {
      ctx.metrics.internalError();
      ctx.log.error({ err, to: to.bare }, 'offline messages: cannot store a message');
      ctx.router.bounce(event, 'internal-server-error', 'the message could not be stored');
    }
  }

  return { flush: () => line.idle() };
}

/**
 * XEP-0160 §3: chat and normal are stored, except chat messages with only
 * XEP-0085 chat states; XEP-0334 <no-store/> asks not to be stored. What is
 * not stored gets the RFC 6121 answer of a server without storage.
 */
export function storable(stanza: XmlElement): boolean {
  const type = messageType(stanza);
  if (type !== 'chat' && type !== 'normal') return false;
  if (stanza.getChild('no-store', NS.HINTS)) return false;
  const payload = stanza.getChildren().filter((c) => !(c.local === 'thread' && c.ns === NS.CLIENT));
  return payload.length === 0 || !payload.every((c) => c.ns === NS.CHATSTATES);
}

/** RFC 6121 §4.7.2.3: an integer from -128 to +127, default 0. */
function priorityOf(presence: XmlElement): number {
  const raw = presence.getChildText('priority');
  const n = raw === undefined ? 0 : Number.parseInt(raw.trim(), 10);
  return Number.isFinite(n) ? n : 0;
}

import { NS, x, type XmlElement } from '../../../xml/index.js';
import type { ModuleContext } from '../../context.js';
import type { Session } from '../../session.js';
import { add, parseH } from './counter.js';
import type { SmQueue } from './queue.js';
import type { PendingQueue } from './pending.js';
import { newState } from './state.js';
import { createFlow } from './flow.js';
import type { SmRegistry } from './registry.js';
import { NOT_ACKNOWLEDGED, handOver, handOverHook, reroute, type Undelivered } from '../../hand-over.js';
import { createRecentIds } from './recent.js';
import { CLASSIC, createResume, type ResumeReply } from './resume.js';
import { createSmCluster } from './journal.js';
import type { WriteGate } from './gate.js';
import { randomId } from '../../../util/random.js';
import { PRIORITY } from '../../priorities.js';
import { isPromise } from '../../pipeline.js';

declare module '../../events.js' {
  interface CoreEvents {
    /**
     * XEP-0198 §4: the client acknowledged these stanzas (oldest first); they
     * are delivered for good. Run by stream management with `buffer` on.
     */
    'stanzas-acked': { readonly session: Session; readonly stanzas: readonly XmlElement[] };
    /**
     * An <a h/> for `session` is due (its client sent <r/>): a handler may
     * return a promise, and the <a/> is written once it settles. For features
     * that make a handled stanza durable after its route (the message archive
     * batches its commits): nothing is acknowledged before it is kept.
     */
    'ack-due': { readonly session: Session };
  }
}

/** mod_stream_management's options (seed 004), under their names there. */
export interface SmOptions {
  /** Keep unacked stanzas so they can be resent on resumption (seed: buffer). */
  readonly buffer: boolean;
  /**
   * Seed: buffer_max, "Buffer size for messages yet to be acknowledged":
   * the stanzas in flight unacknowledged at once (Infinity: no limit). More
   * wait in the pending queue until acks make room; they do not close the
   * stream (issue 10: any sender could otherwise end any session).
   */
  readonly buffer_max: number;
  /** Bytes of stanzas the pending queue may hold; more closes with policy-violation. */
  readonly pending_max_bytes: number;
  /** Seconds an <r/> may go unanswered while stanzas are unacked (ejabberd: ack_timeout). */
  readonly ack_timeout: number;
  /** Send <r/> to the client (seed: ack). */
  readonly ack: boolean;
  /** Request an ack every ack_freq stanzas (seed: ack_freq). */
  readonly ack_freq: number;
  /** Seconds a session waits for resumption after its transport dies (seed: resume_timeout). */
  readonly resume_timeout: number;
  readonly stale_h: { readonly enabled: boolean; readonly repeat_after: number; readonly geriatric: number };
  /** Hibernating sessions one account may keep; the oldest goes first (Converse.js issue 4101). */
  readonly max_hibernated_per_user: number;
  /** Seconds of quiet after which outstanding stanzas get an <r/> even below ack_freq. */
  readonly ack_quiet_period: number;
}

/** A buffered stanza and when it was queued, for the XEP-0203 stamp if it must be handed over. */
export type Buffered = Undelivered;

/** MongooseIM's sm_state record (seed 004), per session with SM enabled. */
export interface SmState {
  readonly queue: SmQueue<Buffered>;
  /** Stanzas waiting for room in `queue` (flow control), or for a resumption. */
  readonly pending: PendingQueue<Buffered>;
  /** Runs while an <r/> is unanswered (ack_timeout). */
  ackTimer: NodeJS.Timeout | undefined;
  /** Stanzas received from the client (the server's h). */
  counter_in: number;
  readonly buffer_max: number;
  readonly ack_freq: number;
  /**
   * Seed: peer — on resumption, which session this one was resumed from. Here
   * the session object itself survives and only its transport is replaced,
   * so this records the log id of the carrier session that brought it.
   */
  peer: string | undefined;
  readonly smid: string | undefined;
  /** Seconds this session may hibernate; 0 when not resumable. */
  readonly max: number;
  hibernation: NodeJS.Timeout | undefined;
  hibernatedAt: number;
  /** Stanzas sent since the last <r/>. */
  sinceRequest: number;
  /** Cluster only: writes to the client wait here for the journal to store the stanzas queued before them (gate.ts). */
  gate?: WriteGate;
}


/** What other features may ask of stream management. */
export interface StreamManagement {
  /** True when what is sent to `session` stays queued until the client acks it ('stanzas-acked' then fires). */
  tracks(session: Session): boolean;
  /**
   * True when `session`'s queue is stored outside this process (SM_BACKEND=redis, the journal): it
   * outlives the process, and a resumption on another node or a survivor's hand-over takes it from there.
   */
  journaled(session: Session): boolean;
  /** XEP-0198 §3 inside Bind2 (XEP-0386): the <enabled/> or <failed/> for its <bound/>. */
  enable(session: Session, el: XmlElement): XmlElement;
  /** XEP-0198 §5 inside SASL2 (XEP-0388): the classic resumption, answered through `reply`. */
  resume(carrier: Session, el: XmlElement, reply: ResumeReply): void | Promise<void>;
  /** Stanzas sent to `session` and not yet acked (seed: buffer_size); undefined when SM is not enabled on it (the admin CLI shows it). */
  unacked(session: Session): number | undefined;
  dispose(): void;
}

/** XEP-0198 stream management: acks, flow control, resumption, hibernation (urn:xmpp:sm:3). */
export function register(ctx: ModuleContext, opts: SmOptions, registry: SmRegistry): StreamManagement {
  const states = new WeakMap<Session, SmState>();
  // For xmpp_sm_resumes_total{outcome="timed-out"}: 10k smids of 24 characters, under 1 MB with the Set's overhead.
  const timedOut = createRecentIds(10_000, 10_000 * 48);
  // SM_BACKEND=memory has no journal: nothing below awaits or allocates for one.
  const journal = registry.journal;
  const cluster = journal ? createSmCluster(ctx, journal, registry, (session) => states.get(session)?.counter_in) : undefined;
  journal?.source((smid) => {
    const session = registry.get(smid);
    const st = session && states.get(session);
    return st && { items: [...st.queue.unacked(), ...st.pending.items()], counterOut: st.queue.counter_out };
  });
  const flow = createFlow(ctx, opts, states, cluster?.flow);
  const failed = (condition: string, h?: number, extra?: XmlElement): XmlElement =>
    x('failed', { xmlns: NS.SM, h }, x(condition, { xmlns: NS.STANZAS }), extra);
  // Stale h is a courtesy (XEP-0198 §5): a storage error costs the h attribute, never the session.
  const staleHFailed = (err: unknown): void => { ctx.log.warn({ err }, 'stale h storage failed'); };

  ctx.hooks.transform('stream-features', ({ session, features }) => {
    // XEP-0198 §2: offered once authenticated (resume before bind, enable after); not once enabled
    // (SASL2 inline, XEP-0388: the features after <success/> would otherwise invite a second <enable/>).
    if (session.type === 'c2s' && !states.has(session)) features.append(x('sm', { xmlns: NS.SM }));
  }, PRIORITY.features.streamManagement);

  /** XEP-0198 §3 <enable/>, answered with <enabled/> or <failed/> (written by the caller: on the stream, or in Bind2's <bound/>). */
  function enable(session: Session, el: XmlElement): XmlElement {
    // XEP-0198 §3: enabling before binding a resource, or twice, is unexpected-request.
    if (session.full_jid === undefined || states.has(session)) return failed('unexpected-request');
    const wantsResume = el.attr('resume') === 'true' || el.attr('resume') === '1';
    const requested = Number.parseInt(el.attr('max') ?? '', 10);
    const resumable = wantsResume && opts.buffer;
    const max = resumable ? Math.min(opts.resume_timeout, requested > 0 ? requested : opts.resume_timeout) : 0;
    // 144 random bits: smids must be unguessable, resumption trusts them.
    const smid = resumable ? randomId(18) : undefined;
    const state = newState(opts, smid, max);
    states.set(session, state);
    if (smid) registry.register(smid, session);
    if (smid && journal) journal.open(smid, session, max);
    ctx.metrics.sm('enabled');
    ctx.metrics.smEnabled(session.transport);
    return x('enabled', { xmlns: NS.SM, id: smid, resume: resumable ? 'true' : undefined, max: resumable ? max : undefined });
  }
  ctx.nonzas.register(NS.SM, 'enable', (session, el) => session.write(enable(session, el)));

  ctx.nonzas.register(NS.SM, 'r', (session) => {
    const st = states.get(session);
    if (!st) return;
    // Everything before the <r/> has been handled (the session's queue is in order): h is stored.
    const h = st.counter_in;
    const answer = (): void => {
      if (journal && st.smid) journal.received(st.smid, h);
      if (!session.destroyed) session.write(x('a', { xmlns: NS.SM, h }));
    };
    // Not awaited: the stanzas after the <r/> go on meanwhile; <a/>s keep their order (their barriers settle in order).
    const due = ctx.hooks.has('ack-due') ? ctx.hooks.run('ack-due', { session }) : undefined;
    if (isPromise(due)) void due.then(answer, answer);
    else answer();
  });

  ctx.nonzas.register(NS.SM, 'a', (session, el) => {
    const st = states.get(session);
    if (!st) return;
    const h = parseH(el.attr('h'));
    if (h === undefined) return session.close({ condition: 'undefined-condition', text: 'invalid h' });
    ctx.metrics.smQueueDepth(st.queue.buffer_size);
    const result = flow.ack(session, st, h);
    if (result.ok) return flow.release(session, st);
    // XEP-0198 §4 (v1.6): h beyond what was sent closes the stream.
    session.close({
      condition: 'undefined-condition', text: `you acknowledged ${h} stanzas but only ${result.sent} were sent`,
      appCondition: x('handled-count-too-high', { xmlns: NS.SM, h, 'send-count': result.sent }),
    });
  });

  ctx.hooks.notify('stanza-received', ({ session }) => {
    const st = states.get(session);
    if (!st) return;
    // Stored as the next stanza arrives, when the one before has been handled (its route awaited):
    // a crash repeats a stanza on resumption, never loses one.
    if (journal && st.smid) journal.received(st.smid, st.counter_in);
    // XEP-0198 §4: from 2^32-1 back to 0 (counter.ts, unit-tested there).
    st.counter_in = add(st.counter_in, 1);
  }, PRIORITY.lifecycle.streamManagement);

  // SM writes every stanza of a session with SM enabled (counted, buffered until acked).
  ctx.hooks.deliver('stanza-out', ({ session, stanza }) => {
    const st = states.get(session);
    if (!st) return;
    flow.out(session, st, stanza);
    return 'delivered';
  }, PRIORITY.stanzaOut.streamManagement);

  // XEP-0198 §5: a resumable session whose transport dies hibernates; the core does it.
  ctx.lifecycle.hibernateWhen((session) => (states.get(session)?.max ?? 0) > 0);
  ctx.hooks.notify('session-hibernated', ({ session, reason }) => {
    const st = states.get(session);
    if (!st) return;
    flow.stop(session, st);
    st.hibernatedAt = Date.now();
    if (journal && st.smid) {
      const smid = st.smid;
      journal.hibernated(smid, session, st.hibernatedAt);
      // XEP-0198 §5: a resumption on another node answers with the h stored here; once what the
      // client sent has been handled, it is stored whole, or the client would send its last stanza again.
      ctx.queues.sessions.after(session, () => journal.received(smid, st.counter_in));
    }
    st.hibernation = setTimeout(() => {
      ctx.metrics.sm('timed-out');
      ctx.metrics.smResumeTimeout();
      if (st.smid) timedOut.add(st.smid);
      session.close({ condition: 'connection-timeout', text: `not resumed within ${st.max} s` });
    }, st.max * 1000);
    ctx.metrics.sm('hibernated');
    st.hibernation.unref();
    ctx.log.info({ event: 'session-hibernated', session: session.logId, jid: session.full_jid, ip: session.ip, reason, buffered: st.queue.buffer_size, pending: st.pending.length }, 'session hibernating');
    capHibernated(session);
  }, PRIORITY.lifecycle.streamManagement);

  /** The one place the hibernation timer is cleared: on resumption and at the end. */
  function wake(st: SmState): void {
    if (st.hibernation) clearTimeout(st.hibernation);
    st.hibernation = undefined;
  }

  // After <resumed/> and the resent queue (lifecycle.resume): what waited goes out as buffer_max allows.
  ctx.hooks.notify('session-resumed', ({ session }) => {
    const st = states.get(session);
    if (!st) return;
    wake(st);
    if (journal && st.smid) journal.resumed(st.smid);
    // An <r/> the old transport left unanswered is not the new one's: its wait ends here, and the
    // request below starts a full SM_ACK_TIMEOUT for the resumed stream (found in review).
    flow.stop(session, st);
    flow.release(session, st);
    if (st.queue.buffer_size > 0 && opts.ack) flow.requestAck(session, st);
  }, PRIORITY.lifecycle.streamManagement);

  /** Keeps at most max_hibernated_per_user hibernating sessions per account, ending the oldest. */
  function capHibernated(session: Session): void {
    const hibernating = [...ctx.sessions.resources(session.host!, session.username!)]
      .filter((s) => s.conn === null && states.get(s)?.hibernation !== undefined)
      .sort((a, b) => states.get(a)!.hibernatedAt - states.get(b)!.hibernatedAt);
    for (let i = 0; i < hibernating.length - opts.max_hibernated_per_user; i++) {
      hibernating[i]!.close({ condition: 'conflict', text: 'too many hibernating sessions for this account' });
    }
  }

  ctx.hooks.notify('session-destroyed', ({ session }) => {
    const st = states.get(session);
    if (!st) return;
    states.delete(session);
    flow.stop(session, st);
    wake(st);
    // In order: what was sent and not acked, then what waited to be sent.
    const drained = [...st.queue.drain(), ...st.pending.drain()];
    if (drained.length > 0) handedOver.set(session, new Set(drained.map((b) => b.stanza)));
    const smid = st.smid !== undefined && registry.get(st.smid) === session ? st.smid : undefined;
    if (smid === undefined) return handOver(ctx, session, drained, NOT_ACKNOWLEDGED);
    if (!journal) {
      registry.remove(smid);
      if (opts.stale_h.enabled) registry.setStaleH(smid, session, st.counter_in, Date.now()).catch(staleHFailed);
      return handOver(ctx, session, drained, NOT_ACKNOWLEDGED);
    }
    // Cluster: the queue is this node's to route only if no other node took the session over
    // (journal.ts). Decided first on the session's queue: its unavailable presence (presence.ts) waits.
    // The 'hand-over' hook runs now, while the features that own some of it still know the session.
    const left = handOverHook(ctx, session, drained);
    const mine = journal.close(smid);
    registry.remove(smid);
    ctx.queues.sessions.after(session, () => mine.then((ours) => {
      // Resumed on another node: it lives on there, with its queue, its presence and its directed-presence
      // recipients (RFC 6121 §4.6.3: the new owner tells them at the end; told here, they would see it offline).
      if (!ours) {
        ctx.log.debug({ event: 'sm-not-handed-over', session: session.logId, ids: left.slice(0, 64).map((b) => b.stanza.attr('id')) }, 'session lives on elsewhere: its queue is not handed over here');
        session.presence = undefined;
        session.directed = undefined;
        return;
      }
      if (opts.stale_h.enabled) registry.setStaleH(smid, session, st.counter_in, Date.now()).catch(staleHFailed);
      reroute(ctx, session.username!, session.host!, left, NOT_ACKNOWLEDGED);
    }));
  }, PRIORITY.lifecycle.streamManagement);

  // A stanza the transport could not deliver may still be in the SM queue
  // (with `buffer`, every stanza after <enable/> is queued before it is
  // written): then it is resent on resumption or handed over with the
  // queue, and the transport's report of it is dropped here. So is a report
  // that comes after the queue was handed over (a terminate body nobody
  // fetched) for the stanzas that queue held. Anything else (sent before
  // <enable/>, or `buffer` off) is left to the core's hand-over.
  const handedOver = new WeakMap<Session, ReadonlySet<XmlElement>>();
  ctx.hooks.transform('stanzas-undelivered', (event) => {
    const st = states.get(event.session);
    const held = st ? new Set(st.queue.unacked().map((b) => b.stanza)) : handedOver.get(event.session);
    if (!held || held.size === 0) return;
    event.stanzas = event.stanzas.filter((s) => !held.has(s));
  }, PRIORITY.lifecycle.streamManagement);

  const resume = createResume(ctx, opts, flow, registry, { states, failed, timedOut });
  ctx.nonzas.register(NS.SM, 'resume', (carrier, el) => resume(carrier, el, CLASSIC));

  const timers: NodeJS.Timeout[] = [];
  if (opts.stale_h.enabled) {
    // Seed: stale_h.repeat_after is how often stale h records are collected.
    timers.push(setInterval(() => { registry.collectStaleH(Date.now(), opts.stale_h.geriatric).catch(staleHFailed); }, opts.stale_h.repeat_after * 1000));
  }
  for (const t of timers) t.unref();
  ctx.disco.addFeature(NS.SM);
  return {
    // Without ack requests a client may never ack: then what is written is SM's (handed over if unacked).
    tracks: (session) => opts.buffer && opts.ack && states.has(session),
    journaled: (session) => journal !== undefined && states.has(session),
    enable,
    resume,
    unacked: (session) => states.get(session)?.queue.buffer_size,
    dispose: () => { flow.dispose(); for (const t of timers) clearInterval(t); },
  };
}

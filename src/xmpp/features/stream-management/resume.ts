import { NS, x, type XmlElement } from '../../../xml/index.js';
import type { ModuleContext } from '../../context.js';
import type { Session } from '../../session.js';
import { parseH } from './counter.js';
import type { SmOptions, SmState } from './index.js';
import type { Flow } from './flow.js';
import type { SmRegistry } from './registry.js';
import { createTakeover } from './takeover.js';
import type { RecentIds } from './recent.js';

type Failed = (condition: string, h?: number, extra?: XmlElement) => XmlElement;

/**
 * Where the answer to a resumption goes: on the stream (XEP-0198 §5) or
 * inside SASL2's <success/> (XEP-0198 §6 inline, XEP-0388). The logic is
 * the same; only the wrapping differs.
 */
export interface ResumeReply {
  /** <failed/>: written as is, or kept for <success/> (then Bind2 goes on). */
  failed(carrier: Session, el: XmlElement): void;
  /** The head of the greeting for the resumed `session`, before the resent stanzas. */
  greeting(session: Session, resumed: XmlElement): XmlElement[];
}

/** The classic reply: <failed/> and <resumed/> on the stream. */
export const CLASSIC: ResumeReply = { failed: (carrier, el) => carrier.write(el), greeting: (_session, resumed) => [resumed] };

export type Resume = (carrier: Session, el: XmlElement, reply: ResumeReply) => void | Promise<void>;

/**
 * XEP-0198 §5 resumption: a new stream, authenticated as the same account,
 * takes over a hibernating (or still connected) session by its smid. The new
 * transport moves under the old session; the session object that the new
 * transport created is retired. Works across transports, since a session
 * only sees the Conn interface.
 */
export interface ResumeDeps {
  readonly states: WeakMap<Session, SmState>;
  readonly failed: Failed;
  /** Smids whose sessions timed out lately: a failure on one of them is counted as 'timed-out'. */
  readonly timedOut: RecentIds;
}

export function createResume(ctx: ModuleContext, opts: SmOptions, flow: Flow, registry: SmRegistry, deps: ResumeDeps): Resume {
  const { states, failed, timedOut } = deps;
  const { journal } = registry;
  const takeover = journal ? createTakeover(ctx, opts, { journal, registry, states, failed, notFound }) : undefined;
  return (carrier, el, reply) => {
    // Only after authentication and before binding (XEP-0198 §5).
    if (carrier.type !== 'c2s' || carrier.full_jid !== undefined || states.has(carrier)) {
      return reply.failed(carrier, failed('unexpected-request'));
    }
    // Without the buffer no session is resumable (<enabled/> never says resume): XEP-0198 §5, "If the
    // server does not support session resumption, it MUST return a <failed/> element, which SHOULD
    // include an error condition of <feature-not-implemented/>" (not item-not-found: no smid can ever be found).
    if (!opts.buffer) {
      ctx.metrics.sm('resume-failed');
      return reply.failed(carrier, failed('feature-not-implemented'));
    }
    const previd = el.attr('previd') ?? '';
    const h = parseH(el.attr('h'));
    if (h === undefined) return reply.failed(carrier, failed('bad-request'));
    const old = registry.get(previd);
    // Not held here: with a journal (a cluster), another node may hold it, or have held it before it died.
    if (!old && takeover) return takeover(carrier, previd, h, reply).then(() => undefined);
    // Another account's smid is answered exactly like an unknown one (only the metric tells them apart).
    if (!old || !states.has(old) || old.destroyed) return notFound(carrier, previd, reply);
    if (!sameAccount(carrier, old)) return notFound(carrier, previd, reply, old);
    // XEP-0198 §5: <resumed h/> counts what the old session handled, so what it still has queued
    // (behind a handler that awaits) runs first; the resumption is a job on its queue.
    return ctx.queues.session(old, () => take(carrier, old, previd, h, reply));
  };

  /**
   * `other`: the session the smid names, of another account ('remote': held or journaled by another node),
   * or 'replaced': the account's, ended because a newer session holds its full JID (another node's claim found it).
   */
  function notFound(carrier: Session, previd: string, reply: ResumeReply, other?: Session | 'remote' | 'replaced'): void | Promise<void> {
    ctx.metrics.sm('resume-failed');
    if (other === 'replaced') ctx.metrics.smResume('replaced', 'none', carrier.transport);
    else if (other) ctx.metrics.smResume('wrong-user', other === 'remote' ? 'none' : fromTransport(other), carrier.transport);
    else ctx.metrics.smResume(timedOut.has(previd) ? 'timed-out' : 'unknown-smid', 'none', carrier.transport);
    if (!opts.stale_h.enabled) return reply.failed(carrier, failed('item-not-found'));
    // The stale h is in storage: the session's next element waits for the answer (core.ts),
    // so replies keep their order. Without the h, <failed/> still goes.
    // Only the account's own: another's smid stays indistinguishable from an unknown one.
    return registry.getStaleH(previd, carrier).then(
      (stale) => reply.failed(carrier, failed('item-not-found', stale)),
      (err: unknown) => { ctx.log.warn({ err }, 'stale h storage failed'); reply.failed(carrier, failed('item-not-found')); },
    );
  }

  function take(carrier: Session, old: Session, previd: string, h: number, reply: ResumeReply): void | Promise<void> {
    const st = states.get(old);
    // A session another node claimed while this one still handled what it took before (its final h drain,
    // journal.ts) ended behind that input, just before this job: it lives on there, so it is claimed back
    // (XEP-0198 §5: the later resumption has it), not answered item-not-found. One that ended for good has
    // no record any more (its TAKE went out first): the claim finds nothing.
    if (takeover && (!st || old.destroyed) && !carrier.destroyed && registry.get(previd) === undefined) {
      return takeover(carrier, previd, h, reply).then(() => undefined);
    }
    if (!st || old.destroyed || carrier.destroyed) return notFound(carrier, previd, reply);
    const acked = flow.ack(old, st, h);
    if (!acked.ok) {
      ctx.metrics.sm('resume-failed');
      ctx.metrics.smResume('handled-count-too-high', fromTransport(old), carrier.transport);
      return reply.failed(carrier, failed('undefined-condition', undefined,
        x('handled-count-too-high', { xmlns: NS.SM, h, 'send-count': acked.sent })));
    }
    st.peer = carrier.logId;
    // The core moves the transport (lifecycle.ts). Resent: what the client has not acknowledged,
    // in order; it stays buffered until acked. What waited meanwhile follows as buffer_max allows
    // ('session-resumed' in index.ts); acks bring the rest.
    const pending = st.queue.unacked();
    ctx.metrics.smResume('resumed', fromTransport(old), carrier.transport);
    if (old.conn === null) ctx.metrics.smHibernation((Date.now() - st.hibernatedAt) / 1000);
    const head = reply.greeting(old, x('resumed', { xmlns: NS.SM, previd, h: st.counter_in }));
    ctx.lifecycle.resume(carrier, old, [...head, ...pending.map((b) => b.stanza)]);
    ctx.metrics.sm('resumed');
    ctx.log.info({ event: 'session-resumed', session: old.logId, jid: old.full_jid, transport: old.transport, ip: old.ip, resent: pending.length }, 'session resumed');
    if (pending.length > 0) ctx.log.debug({ event: 'sm-resent', session: old.logId, h, ids: pending.slice(0, 64).map((b) => b.stanza.attr('id')) }, 'resent on resumption');
  }
}

/**
 * Whether `carrier` may resume `old`: the same account, or — for SASL
 * ANONYMOUS, where every login is a new random account — an anonymous
 * session on the same host, the unguessable smid being the only secret
 * (which is what resumption relies on for everyone).
 */
function sameAccount(carrier: Session, old: Session): boolean {
  if (old.host !== carrier.host) return false;
  if (old.anonymous) return carrier.anonymous;
  return !carrier.anonymous && old.username === carrier.username;
}

/** The transport a session had last: its current one, or the one it hibernated from (session.transport follows resumptions). */
function fromTransport(session: Session): 'websocket' | 'bosh' {
  return session.conn?.transport ?? session.transport;
}

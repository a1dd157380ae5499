import type { XmlElement } from '../xml/index.js';
import type { StreamError } from './errors.js';
import { DETACHED } from './conn.js';
import type { Pipeline } from './pipeline.js';
import type { CoreEvents } from './events.js';
import type { Session } from './session.js';
import type { SessionManager } from './session-manager.js';
import type { Log } from './log.js';
import type { CoreMetrics, SessionEndReason } from './metrics-port.js';

/** Decides whether a session whose transport died may hibernate (stream management: resumable and not closing). */
export type HibernationPolicy = (session: Session, reason: string) => boolean;

/**
 * The session life cycle as the core runs it (unauthenticated → bound →
 * hibernating → resumed or ended). Features decide *when* (stream
 * management: may this session hibernate, does this <resume/> match);
 * the core does *how*, and is the only writer of `session.conn`.
 */
export interface Lifecycle {
  /** Stream management's rule; without one, a lost transport ends its session. */
  hibernateWhen(policy: HibernationPolicy): void;
  /**
   * XEP-0198 §5: moves the transport of `carrier` (a new stream,
   * authenticated, not bound) under `old`, which takes its stream id and
   * transport facts; a transport `old` still had gets conflict. `carrier`
   * ends without a word on the wire (it was never more than a carrier).
   * Then `greeting` is written (<resumed/> and the resent queue) and
   * 'session-resumed' runs.
   */
  resume(carrier: Session, old: Session, greeting: readonly XmlElement[]): void;
  /**
   * XEP-0198 §5 for a session another node held (a cluster): `session`,
   * the new stream, has been built as the resumed session on its own
   * transport; `greeting` is written and 'session-resumed' runs
   * (`wasUnavailable`: its presence had been ended on its behalf, and is announced again; `queued`: what
   * its queue held, events.ts).
   */
  adopt(session: Session, greeting: readonly XmlElement[], wasUnavailable?: boolean, queued?: readonly XmlElement[]): void;
}

export interface LifecycleDeps {
  readonly hooks: Pipeline<CoreEvents>;
  readonly sessions: SessionManager;
  readonly log: Log;
  readonly metrics: CoreMetrics;
  /** `ended`: xmpp_sessions_ended_total's reason when the stream error does not say it (a resumption's carrier). */
  destroy(session: Session, reason: StreamError | undefined, ended?: SessionEndReason): void;
}

/** The core's side of the life cycle: what ModuleContext exposes plus the steps only the core takes. */
export interface CoreLifecycle extends Lifecycle {
  /** Whether `session` would hibernate if its transport died now (a rolling restart drops only those). */
  mayHibernate(session: Session): boolean;
  /** The transport died: hibernate if the policy allows (true), else the caller destroys. */
  hibernate(session: Session, reason: string): boolean;
  /** The transport is gone for good: forget it before destroying. */
  detach(session: Session): void;
}

export function createLifecycle(deps: LifecycleDeps): CoreLifecycle {
  let policy: HibernationPolicy = () => false;
  const { hooks } = deps;
  function adopt(session: Session, greeting: readonly XmlElement[], wasUnavailable?: boolean, queued: readonly XmlElement[] = []): void {
    for (const el of greeting) session.write(el);
    hooks.run('session-resumed', wasUnavailable ? { session, wasUnavailable, queued } : { session });
  }
  return {
    hibernateWhen(p) { policy = p; },
    mayHibernate: (session) => !session.closing && policy(session, 'rolling restart'),
    hibernate(session, reason) {
      if (session.closing || !policy(session, reason)) return false;
      session.conn = null;
      hooks.run('session-hibernated', { session, reason });
      return true;
    },
    detach(session) { session.conn = null; },
    resume(carrier, old, greeting) {
      const conn = carrier.conn!;
      if (old.conn) {
        // XEP-0198 §5: the old connection may still look alive; it is replaced.
        const previous = old.conn;
        previous.attach(DETACHED);
        previous.close({ condition: 'conflict', text: 'the session was resumed elsewhere' });
        // The transport's stream ends with that error while its session lives on: counted here (core.ts counts a session's own).
        deps.metrics.streamError('conflict');
      }
      carrier.conn = null;
      conn.attach(old);
      old.conn = conn;
      // What the replaced transport sent and still waits in the queue is dropped; what the new one sent
      // behind <resume/> (queued on the carrier) follows here (core.ts).
      old.resumptions++;
      carrier.resumedInto = { session: old, resumptions: old.resumptions };
      old.secure = conn.secure;
      old.ip = conn.ip;
      old.transport = conn.transport;
      old.streamId = carrier.streamId;
      old.notopen = false;
      // Counted as 'resumed', not as the stream error it never was (nothing is written to the carrier).
      deps.destroy(carrier, { condition: 'reset', text: `resumed into ${old.logId}` }, 'resumed');
      adopt(old, greeting);
    },
    adopt,
  };
}

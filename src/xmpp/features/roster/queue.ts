import type { XmlElement } from '../../../xml/index.js';
import type { ModuleContext } from '../../context.js';
import type { Session } from '../../session.js';

/**
 * One work queue per session for everything the roster, presence and
 * blocking features do with storage in between: a session's presence,
 * roster and subscription stanzas take effect in the order it sent them,
 * even when one of them has to wait for an offline contact's roster to
 * load. The hooks themselves stay synchronous (hooks.ts); they hand their
 * work to the queue and return true.
 */
export class SessionQueues {
  readonly #tails = new WeakMap<Session, Promise<unknown>>();

  constructor(private readonly ctx: ModuleContext) {}

  /** Runs `work` after the session's earlier work; the promise settles with it. */
  then<T>(session: Session, work: () => T | Promise<T>): Promise<T> {
    const prev = this.#tails.get(session) ?? Promise.resolve();
    const job = prev.then(work);
    this.#tails.set(session, job.then(noop, noop));
    return job;
  }

  /** Runs `work` in order; a stanza error answers `stanza`, anything else ends the session (ModuleContext.guard). */
  guarded(session: Session, stanza: XmlElement | undefined, work: () => void | Promise<void>): void {
    const job = this.then(session, work);
    this.ctx.guard(session, stanza, () => job);
  }

  /** Runs clean-up work in order for a session that is already gone: failures are only logged. */
  after(session: Session, work: () => void | Promise<void>): void {
    this.then(session, work).catch((err: unknown) => {
      this.ctx.metrics.internalError();
      this.ctx.log.error({ err, session: session.logId }, 'error while cleaning up after a session');
    });
  }
}

function noop(): void {}

import type { XmlElement } from '../../../xml/index.js';
import type { ModuleContext } from '../../context.js';
import type { Session } from '../../session.js';

/** Deliveries (or items looked at) in one event-loop turn before a fan-out yields. */
export const FANOUT_BATCH = 100;

/** A fan-out as a generator: after each step it yields how many deliveries (or items looked at) that was. */
export type Fanout = Generator<number, void, unknown>;

/** Input a session may send while it is held (see holds()); more ends the stream. */
export const MAX_HELD_BYTES = 1024 * 1024;

/**
 * One work queue per session for everything the roster, presence and
 * blocking features do with storage in between: a session's presence,
 * roster and subscription stanzas take effect in the order it sent them,
 * even when one of them has to wait for an offline contact's roster to
 * load. The hooks themselves stay synchronous (hooks.ts); they hand their
 * work to the queue and return true.
 *
 * Fan-outs (a broadcast to a large roster, pushes to many resources) yield
 * the event loop every FANOUT_BATCH deliveries (drive()), so one session's
 * roster cannot stall every other session. From a fan-out's first yield
 * until its queue is empty again the session is *held*: its later stanzas
 * of any kind go onto this queue too (holdWhileFanningOut() in index.ts),
 * so none overtakes the fan-out (RFC 6120 §10.1 in-order processing).
 * Without a yield nothing changes: the hooks run at once, as before.
 */
export class SessionQueues {
  readonly #tails = new WeakMap<Session, Promise<unknown>>();
  readonly #pending = new WeakMap<Session, number>();
  /** Sessions held since a fan-out of theirs yielded, with the bytes of input held for them. */
  readonly #held = new WeakMap<Session, number>();
  /** During a held stanza's replay: where nested jobs of that session go (run at once, awaited by the replay). */
  readonly #nested = new WeakMap<Session, Promise<unknown>[]>();
  /** Every job not yet settled, so shutdown can wait for them (idle()). */
  readonly #active = new Set<Promise<unknown>>();

  constructor(private readonly ctx: ModuleContext) {}

  /** Runs `work` after the session's earlier work; the promise settles with it. */
  then<T>(session: Session, work: () => T | Promise<T>): Promise<T> {
    const nested = this.#nested.get(session);
    if (nested) {
      // A held stanza's own handling: it is the session's current job already, not a later one.
      const job = Promise.resolve().then(work);
      nested.push(job.then(noop, noop));
      return job;
    }
    const prev = this.#tails.get(session) ?? Promise.resolve();
    const job = prev.then(work);
    const settled = job.then(noop, noop);
    this.#tails.set(session, settled);
    this.#pending.set(session, (this.#pending.get(session) ?? 0) + 1);
    this.#active.add(settled);
    void settled.then(() => this.#settled(session, settled));
    return job;
  }

  #settled(session: Session, settled: Promise<unknown>): void {
    this.#active.delete(settled);
    const left = (this.#pending.get(session) ?? 1) - 1;
    if (left > 0) { this.#pending.set(session, left); return; }
    this.#pending.delete(session);
    this.#held.delete(session);
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

  /** Whether the session's stanzas must wait on its queue (a fan-out of it is spread over turns). */
  holds(session: Session): boolean {
    return this.#held.has(session);
  }

  /** A fan-out on `session`'s queue is about to yield: hold the session's later input until the queue is empty. */
  #yielding(session: Session | undefined): void {
    if (session && this.#pending.has(session) && !this.#held.has(session)) this.#held.set(session, 0);
  }

  /**
   * Runs a fan-out for work on `session`'s queue (undefined: the server's
   * own work, nobody to hold): synchronously, exactly as a plain loop would,
   * until FANOUT_BATCH deliveries are done; then the rest goes on after
   * setImmediate (pending I/O and timers, i.e. every other session, first),
   * batch by batch. Returns undefined when it finished without yielding.
   */
  drive(session: Session | undefined, work: Fanout): Promise<void> | undefined {
    let count = 0;
    for (let step = work.next(); step.done !== true; step = work.next()) {
      count += step.value;
      if (count < FANOUT_BATCH) continue;
      this.#yielding(session);
      return new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.drive(session, work));
    }
    return undefined;
  }

  /**
   * Queues a stanza of a held session; `handle` runs it as the core would
   * have (its own nested jobs run within this one). False when the session
   * has more than MAX_HELD_BYTES held: it sends faster than its fan-out can
   * go out, and the caller ends it (what it sent is still handled).
   */
  hold(session: Session, stanza: XmlElement, handle: () => void): boolean {
    const bytes = (this.#held.get(session) ?? 0) + stanza.toString().length;
    this.#held.set(session, bytes);
    this.guarded(session, stanza, async () => {
      const nested: Promise<unknown>[] = [];
      this.#nested.set(session, nested);
      try { handle(); } finally { this.#nested.delete(session); }
      await Promise.all(nested);
    });
    return bytes <= MAX_HELD_BYTES;
  }

  /** Resolves once every queued job has run, including jobs queued meanwhile (shutdown). */
  async idle(): Promise<void> {
    while (this.#active.size > 0) await Promise.all([...this.#active]);
  }
}

function noop(): void {}

import type { Session } from './session.js';
import { isPromise } from './pipeline.js';

/**
 * Runs work one job after another per key, different keys independently.
 * The synchronous fast path: with nothing queued for the key, a job that
 * does not return a promise runs at once and allocates nothing.
 */
export class SerialQueue<K> {
  readonly #tails = new Map<K, Promise<void>>();
  readonly #depth = new Map<K, number>();
  /** Keys whose synchronous job is running right now: a job asked for meanwhile waits for it. */
  readonly #running = new Set<K>();

  /** `onError` sees what a job threw that its caller did not take (after(); run()'s caller gets its own). */
  constructor(private readonly onError: (err: unknown, key: K) => void) {}

  /** True while a job of `key` is queued or running asynchronously. */
  busy(key: K): boolean {
    return this.#tails.has(key);
  }

  /** Jobs of `key` queued or running. */
  depth(key: K): number {
    return this.#depth.get(key) ?? 0;
  }

  /**
   * Runs `work` after the key's earlier jobs: at once (and synchronously)
   * when there are none, else queued. The result (or promise of it) is the
   * job's; a failure is the caller's to handle and does not stop the line.
   */
  run<T>(key: K, work: () => T | Promise<T>): T | Promise<T> {
    const tail = this.#tails.get(key);
    if (tail === undefined && !this.#running.has(key)) {
      this.#running.add(key);
      let result: T | Promise<T>;
      try { result = work(); } finally { this.#running.delete(key); }
      if (!isPromise(result)) return result;
      this.#track(key, result);
      return result;
    }
    // Behind the queued jobs, or (asked for from inside a synchronous job of the key) right after it.
    const job = (tail ?? Promise.resolve()).then(work);
    this.#track(key, job);
    return job;
  }

  /** Like run(), for work nobody awaits: a failure goes to `onError`. */
  after(key: K, work: () => unknown): void {
    try {
      const out = this.run(key, work);
      if (isPromise(out)) out.catch((err: unknown) => this.onError(err, key));
    } catch (err) {
      this.onError(err, key);
    }
  }

  /** Keys with work queued or running. */
  get size(): number {
    return this.#tails.size;
  }

  /** Resolves once every job has run, including jobs queued meanwhile (shutdown). */
  async idle(): Promise<void> {
    while (this.#tails.size > 0) await Promise.all([...this.#tails.values()]);
  }

  #track(key: K, job: Promise<unknown>): void {
    const settled = job.then(noop, noop);
    this.#tails.set(key, settled);
    this.#depth.set(key, this.depth(key) + 1);
    void settled.then(() => {
      const left = this.depth(key) - 1;
      if (left > 0) this.#depth.set(key, left); else this.#depth.delete(key);
      if (this.#tails.get(key) === settled) this.#tails.delete(key);
    });
  }
}

/**
 * The core's work queues, used by every feature:
 * - one per session: its elements are processed in arrival order even while
 *   a handler awaits (RFC 6120 §10.1); clean-up after it ends runs last;
 * - one per account: the stanzas that change the account's state (roster
 *   sets, blocklist changes, its subscription requests), from whichever of
 *   its sessions, take effect in the order they came. Its jobs are short and
 *   never wait for a client;
 * - one delivery line per account: storing its offline messages and
 *   delivering them, which may wait for the client's acks. It is apart from
 *   the account's queue so that a delivery waiting for acks never holds up
 *   a roster set of the session that must send them.
 * A session job may wait for an account job, never the other way round, so
 * they cannot wait for each other.
 */
export class WorkQueues {
  readonly sessions: SerialQueue<Session>;
  readonly accounts: SerialQueue<string>;
  readonly deliveries: SerialQueue<string>;

  constructor(onError: (err: unknown, key: string) => void) {
    this.sessions = new SerialQueue((err, session) => onError(err, session.logId));
    this.accounts = new SerialQueue(onError);
    this.deliveries = new SerialQueue(onError);
  }

  /** Runs `work` on the session's queue, after its earlier jobs. */
  session<T>(session: Session, work: () => T | Promise<T>): T | Promise<T> {
    return this.sessions.run(session, work);
  }

  /** Runs `work` on the queue of the account with bare JID `bare`, after its earlier jobs. */
  account<T>(bare: string, work: () => T | Promise<T>): T | Promise<T> {
    return this.accounts.run(bare, work);
  }

  /** Keys with work queued or running, over all three kinds. */
  get size(): number {
    return this.sessions.size + this.accounts.size + this.deliveries.size;
  }

  async idle(): Promise<void> {
    while (this.size > 0) await Promise.all([this.sessions.idle(), this.accounts.idle(), this.deliveries.idle()]);
  }
}


function noop(): void {}

/**
 * Runs async tasks one after another per key (here: per account), tasks of
 * different keys independently. Storing a message and delivering the
 * stored ones are both async; running them in one line per account keeps
 * RFC 6120 §10.1 order: what arrived first is stored, or delivered, first.
 * Pure (no I/O of its own), so it is unit-tested on its own.
 */
export class KeyedSerial {
  readonly #tails = new Map<string, Promise<void>>();

  /** `onError` sees what a task threw; the line goes on with the next task. */
  constructor(private readonly onError: (err: unknown) => void) {}

  /** True while a task of `key` is queued or running. */
  busy(key: string): boolean {
    return this.#tails.has(key);
  }

  /** Queues `task` after the tasks already queued for `key`. */
  run(key: string, task: () => Promise<void> | void): void {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const tail = previous.then(task).catch(this.onError);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
  }

  /** Resolves once every queued task has run, including tasks queued meanwhile. */
  async idle(): Promise<void> {
    while (this.#tails.size > 0) await Promise.all([...this.#tails.values()]);
  }

  get size(): number {
    return this.#tails.size;
  }
}

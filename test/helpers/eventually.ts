/**
 * The one bounded wait of the test suite: every "poll until", "wait for"
 * and "next frame" loop goes through here, so a timeout always says what
 * was awaited and nothing waits for ever.
 */

export interface WaitOptions {
  /** Milliseconds before giving up. Default 5000. */
  readonly timeout?: number;
  /** Milliseconds between checks when no `wake` is given. Default 10. */
  readonly interval?: number;
  /** What is awaited, for the timeout error ("bob's session to end"); a function is called only on timeout. */
  readonly message?: string | (() => string);
  /** Checks again when this is notified (and at the deadline) instead of on an interval. */
  readonly wake?: Wake;
}

/**
 * Wakes the waits registered on it: a client that receives something calls
 * notify(), and eventually() re-checks at once instead of polling.
 */
export class Wake {
  #waiters = new Set<() => void>();

  notify(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  /** Resolves at the next notify() or after `ms`, whichever comes first. */
  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => { clearTimeout(timer); this.#waiters.delete(done); resolve(); };
      const timer = setTimeout(done, ms);
      this.#waiters.add(done);
    });
  }
}

/** Items in arrival order (messages a client library hands out), read with a bounded wait. */
export class Mailbox<T> {
  readonly items: T[] = [];
  #read = 0;
  readonly #wake = new Wake();

  push(item: T): void {
    this.items.push(item);
    this.#wake.notify();
  }

  /** How many items have been read with next(). */
  get read(): number { return this.#read; }

  /** The next item not yet read, waiting up to `ms` for it. */
  async next(what: string, ms = 5000): Promise<T> {
    await eventually(() => this.#read < this.items.length, { timeout: ms, wake: this.#wake, message: what });
    return this.items[this.#read++]!;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Checks `check` until it returns a truthy value (or a promise of one), and
 * returns that value. A check that throws counts as "not yet"; its last
 * error is named if the wait times out. Rejects after `timeout`.
 */
export async function eventually<T>(check: () => T | Promise<T>, opts: WaitOptions = {}): Promise<NonNullable<T>> {
  const timeout = opts.timeout ?? 5000;
  const deadline = Date.now() + timeout;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      const what = typeof opts.message === 'function' ? opts.message() : opts.message ?? 'a condition';
      const cause = last instanceof Error ? `; last error: ${last.message}` : '';
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${cause}`);
    }
    await (opts.wake ? opts.wake.wait(left) : sleep(Math.min(opts.interval ?? 10, left)));
  }
}

/**
 * Like eventually(), but resolves false at the timeout instead of failing:
 * for a test that asserts on the state afterwards, so the assertion shows
 * the values it saw.
 */
export async function waitUntil(check: () => unknown, opts: WaitOptions = {}): Promise<boolean> {
  try {
    await eventually(check, opts);
    return true;
  } catch {
    return false;
  }
}

/**
 * Rejects with a clear message if `p` has not settled within `ms`. `what`
 * may be a function, evaluated at the timeout, to report the state then.
 */
export async function within<T>(p: Promise<T>, what: string | (() => string), ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${typeof what === 'function' ? what() : what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

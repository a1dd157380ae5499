/**
 * A token bucket (rate per second, burst capacity) over an injected clock,
 * for shaping what one session may send (issue 10). Pure: it never sets a
 * timer; the caller asks how long to wait and schedules that itself.
 *
 * One item larger than the burst still passes once the bucket is full (it
 * leaves the bucket in debt), so a stanza up to MAX_STANZA_SIZE is never
 * refused by a smaller burst, only paid for afterwards.
 */
export class TokenBucket {
  #tokens: number;
  #last: number;

  /**
   * @param rate tokens added per second (> 0)
   * @param burst the most tokens the bucket holds (> 0); it starts full
   * @param now the clock, in milliseconds
   */
  constructor(readonly rate: number, readonly burst: number, private readonly now: () => number) {
    if (!(rate > 0) || !(burst > 0)) throw new RangeError('a token bucket needs a positive rate and burst');
    this.#tokens = burst;
    this.#last = now();
  }

  /** Tokens available now (negative while in debt). */
  get tokens(): number {
    this.#refill();
    return this.#tokens;
  }

  /**
   * Takes `n` tokens if the bucket allows it now and returns 0; otherwise
   * takes nothing and returns the milliseconds until it will allow it.
   */
  take(n: number): number {
    const wait = this.waitFor(n);
    if (wait === 0) this.#tokens -= n;
    return wait;
  }

  /**
   * Takes `n` tokens whether the bucket allows it or not (they were taken elsewhere: another process's copy
   * of the bucket), leaving it in debt if need be, but never more than `burst` tokens deep.
   */
  debit(n: number): void {
    this.#refill();
    this.#tokens = Math.max(-this.burst, this.#tokens - n);
  }

  /** Milliseconds until `n` tokens may be taken (0: now); takes nothing. */
  waitFor(n: number): number {
    this.#refill();
    const need = Math.min(n, this.burst);
    if (this.#tokens >= need) return 0;
    return Math.max(1, Math.ceil(((need - this.#tokens) * 1000) / this.rate));
  }

  #refill(): void {
    const now = this.now();
    const elapsed = now - this.#last;
    this.#last = now;
    if (elapsed > 0) this.#tokens = Math.min(this.burst, this.#tokens + (elapsed * this.rate) / 1000);
  }
}

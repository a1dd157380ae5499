/**
 * Failed logins counted across connections, with exponential backoff
 * (issue 13). A reconnect used to reset the count, so password guessing was
 * bounded by the connection rate alone.
 *
 * Two keys are counted: the client address (its /64 for IPv6, see
 * util/ip.ts) over all accounts, and the pair (address, account). The
 * address is limited more strictly than any one account: an account under
 * attack from elsewhere never locks out its owner, whose own address and
 * pair have no failures. Past the free failures each further failure doubles
 * the time the key is refused, up to `maxDelayMs`. A key with no failure for
 * `forgetAfterMs` starts afresh. A pure unit with an injected clock.
 */
export interface LoginThrottleOptions {
  /** Failures from one address, any accounts, before it is slowed down. */
  readonly freePerIp: number;
  /** Failures for one account from one address before that pair is slowed down. */
  readonly freePerPair: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly forgetAfterMs: number;
  /** Keys remembered at most; the least recently failed are forgotten first (bounded memory under a spray of addresses). */
  readonly maxKeys: number;
  readonly now: () => number;
}

interface Entry { failures: number; last: number; blockedUntil: number }

export class LoginThrottle {
  readonly #entries = new Map<string, Entry>();

  constructor(private readonly opts: LoginThrottleOptions) {}

  /** Milliseconds until this address (and, once known, this account from it) may try again; 0 when it may now. */
  retryAfter(ip: string, account?: string): number {
    const now = this.opts.now();
    const wait = (key: string): number => Math.max(0, (this.#live(key, now)?.blockedUntil ?? 0) - now);
    return Math.max(wait(`ip ${ip}`), account === undefined ? 0 : wait(`pair ${ip} ${account}`));
  }

  /** Counts one failed attempt (wrong password or unknown user) from `ip`, for `account` when the client named one. */
  failed(ip: string, account: string | undefined): void {
    const now = this.opts.now();
    this.#count(`ip ${ip}`, this.opts.freePerIp, now);
    if (account !== undefined) this.#count(`pair ${ip} ${account}`, this.opts.freePerPair, now);
  }

  /** A successful login clears the pair (the owner got it right), not the address; true when there was one. */
  succeeded(ip: string, account: string): boolean {
    return this.#entries.delete(`pair ${ip} ${account}`);
  }

  get size(): number { return this.#entries.size; }

  #live(key: string, now: number): Entry | undefined {
    const e = this.#entries.get(key);
    if (e && now - e.last > this.opts.forgetAfterMs && now >= e.blockedUntil) {
      this.#entries.delete(key);
      return undefined;
    }
    return e;
  }

  #count(key: string, free: number, now: number): void {
    const e = this.#live(key, now) ?? { failures: 0, last: now, blockedUntil: 0 };
    e.failures++;
    e.last = now;
    if (e.failures > free) {
      const delay = this.opts.baseDelayMs * 2 ** Math.min(e.failures - free - 1, 30);
      e.blockedUntil = now + Math.min(delay, this.opts.maxDelayMs);
    }
    // Re-inserted so the map's order is least recently failed first.
    this.#entries.delete(key);
    this.#entries.set(key, e);
    while (this.#entries.size > this.opts.maxKeys) this.#entries.delete(this.#entries.keys().next().value!);
  }
}

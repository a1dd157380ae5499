/**
 * The request-id bookkeeping of one BOSH session (XEP-0124 §14), as a pure
 * value with no timers and no I/O so it can be unit-tested on its own.
 *
 * `next` is the rid the connection manager expects to process next: every
 * rid below it has been received and processed in order. A request is
 * "open" from the moment it is processed until it is answered.
 */

/** XEP-0124 §14.1: rids never exceed 2^53 - 1. */
export const MAX_RID = Number.MAX_SAFE_INTEGER;

/** What a request with a given rid is, relative to the window. */
export type RidVerdict =
  /** The rid expected next: process it now. */
  | 'next'
  /** Inside the window but ahead of a gap (XEP-0124 §14.2): hold it until the gap fills. */
  | 'future'
  /** Processed and not answered yet: the client repeats a request we still hold (§14.3). */
  | 'open'
  /** Answered and still buffered: send the same response again (§14.3). */
  | 'answered'
  /** Too old: answered and no longer buffered, or never seen (§14.3: item-not-found). */
  | 'gone'
  /** Beyond the window (§14.2: item-not-found). */
  | 'outside';

interface Answer {
  readonly body: string;
  /** When it was sent (ms since the epoch), for the `time` of a §9.2 report. */
  readonly sentAt: number;
}

/**
 * With acknowledgements (§9), responses the client has not acknowledged are
 * kept up to this many times the window: a client whose acknowledgement lags
 * behind a lost response may have sent and received several newer requests
 * before it repeats the lost one, and one that never acknowledges still holds
 * a bounded number.
 */
export const UNACKED_BUFFER_FACTOR = 2;

export class RidWindow {
  #next: number;
  readonly #open = new Set<number>();
  /** XEP-0124 §14.3: the responses a client may still ask for again, by rid. */
  readonly #answers = new Map<number, Answer>();
  #highestAnswered = 0;
  /** §9.1: the client's acknowledgement, when it asked for acknowledgements (else undefined). */
  #clientAck: number | undefined;

  /**
   * @param firstRid the rid of the session creation request (processed at once)
   * @param size the 'requests' of the session creation response: the window size and the number of responses kept
   * @param acks the client asked for acknowledgements (§9.1: ack='1' at creation): responses are kept until it acknowledges them
   */
  constructor(firstRid: number, readonly size: number, readonly acks = false) {
    if (!Number.isSafeInteger(firstRid) || firstRid < 1) throw new RangeError('rid must be a positive safe integer');
    if (!Number.isInteger(size) || size < 1) throw new RangeError('window size must be at least 1');
    this.#next = firstRid;
    this.#clientAck = acks ? firstRid - 1 : undefined;
    this.accept(firstRid);
  }

  /**
   * §9.1: the client received the responses to every rid up to `ack`; with
   * acknowledgements on, those are no longer kept (a client repeating one of
   * them gets item-not-found). An acknowledgement never goes back.
   */
  acknowledged(ack: number): void {
    if (this.#clientAck === undefined || ack <= this.#clientAck) return;
    this.#clientAck = Math.min(ack, this.#highestAnswered);
    this.#prune();
  }

  /** The rid expected next. */
  get next(): number { return this.#next; }

  /** XEP-0124 §9.1: the highest rid received with every lower rid received too. */
  get ack(): number { return this.#next - 1; }

  /** The highest rid answered so far (0 before any answer). */
  get highestAnswered(): number { return this.#highestAnswered; }

  /** Rids processed and not yet answered, in no particular order. */
  get openCount(): number { return this.#open.size; }

  classify(rid: number): RidVerdict {
    if (rid === this.#next) return 'next';
    if (rid > this.#next) return rid < this.#next + this.size ? 'future' : 'outside';
    if (this.#open.has(rid)) return 'open';
    return this.#answers.has(rid) ? 'answered' : 'gone';
  }

  /** Marks `rid` (which must be `next`) processed and open. */
  accept(rid: number): void {
    if (rid !== this.#next) throw new RangeError(`rid ${rid} is not the next one (${this.#next})`);
    this.#open.add(rid);
    this.#next = rid + 1;
    this.#prune();
  }

  /**
   * Records the answer to an open rid. `body` undefined answers without
   * buffering (§14.3: pause responses and errors are not kept).
   */
  answer(rid: number, body: string | undefined, now: number): void {
    if (!this.#open.delete(rid)) throw new RangeError(`rid ${rid} is not open`);
    if (rid > this.#highestAnswered) this.#highestAnswered = rid;
    if (body !== undefined) this.#answers.set(rid, { body, sentAt: now });
    this.#prune();
  }

  /** Replaces the buffered response to an answered `rid` (one that never went out, sent now), if it is still buffered. */
  rebuffer(rid: number, body: string, now: number): void {
    if (this.#answers.has(rid)) this.#answers.set(rid, { body, sentAt: now });
  }

  /** The buffered response to `rid`, if any. */
  cached(rid: number): string | undefined {
    return this.#answers.get(rid)?.body;
  }

  /** When the buffered response to `rid` was sent, if it is still buffered. */
  sentAt(rid: number): number | undefined {
    return this.#answers.get(rid)?.sentAt;
  }

  /** Number of buffered responses (for memory accounting in tests). */
  get bufferedCount(): number { return this.#answers.size; }

  /**
   * §14.3: "The number of responses to non-pause requests kept in the buffer
   * SHOULD be either the same as the maximum number of simultaneous requests
   * allowed by the connection manager or, if Acknowledgements are being used by
   * the client, the number of responses that have not yet been acknowledged."
   * By count, not by rid: a response lost on the way may be older than
   * `next - size` by the time the client repeats its request, its newer requests
   * having gone through meanwhile. Without acknowledgements the last `size`
   * responses; with them, those after the client's acknowledgement, at most
   * UNACKED_BUFFER_FACTOR × `size`. The oldest go first.
   */
  #prune(): void {
    if (this.#clientAck !== undefined) for (const rid of this.#answers.keys()) if (rid <= this.#clientAck) this.#answers.delete(rid);
    const keep = this.#clientAck === undefined ? this.size : UNACKED_BUFFER_FACTOR * this.size;
    while (this.#answers.size > keep) {
      let oldest = Number.POSITIVE_INFINITY;
      for (const rid of this.#answers.keys()) if (rid < oldest) oldest = rid;
      this.#answers.delete(oldest);
    }
  }
}

/** Parses a rid attribute: a positive integer no larger than 2^53 - 1 (XEP-0124 §14.1). */
export function parseRid(value: string | undefined): number | undefined {
  if (value === undefined || value.length === 0 || value.length > 16) return undefined;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
  }
  const n = Number(value);
  return n >= 1 && n <= MAX_RID ? n : undefined;
}

import { MOD, add, distance } from './counter.js';

export type AckResult =
  | { readonly ok: true; readonly acked: number }
  | { readonly ok: false; readonly sent: number };

/**
 * The outgoing half of a stream-management session as MongooseIM's sm_state
 * keeps it (seed 004): `buffer` of stanzas not yet acked, `counter_out` the
 * client's last h. A small pure structure so its arithmetic is unit-tested
 * on its own (Prosody keeps its SM queue the same way).
 *
 * The buffer is a ring over an array with a head index, so acking many
 * stanzas does not shift the array each time.
 */
export class SmQueue<T> {
  #items: T[] = [];
  #head = 0;
  /** The client's last acknowledged h (seed: counter_out). */
  counter_out: number;
  /** How far back a late h may be: every h the client could have acked before (not wrapped). */
  #history: number;

  constructor(initialH = 0) {
    this.counter_out = initialH;
    // A queue taken over from another node starts at the h acked there: any h before it may come late.
    this.#history = initialH;
  }

  /** Stanzas sent and not yet acked (seed: buffer_size). */
  get buffer_size(): number { return this.#items.length - this.#head; }

  /** The h the client will report once it has handled everything sent so far. */
  get sent(): number { return add(this.counter_out, this.buffer_size); }

  push(item: T): void { this.#items.push(item); }

  /**
   * Applies the client's <a h/>. An h behind counter_out (a stale or
   * duplicate ack, a <resume/> with an h the client saved a while ago) is a
   * no-op; an h beyond what was sent is an error (XEP-0198 §7
   * handled-count-too-high). `onAcked` sees each stanza the ack covers,
   * oldest first (they are delivered for good).
   */
  ack(h: number, onAcked?: (item: T) => void): AckResult {
    const n = distance(this.counter_out, h);
    if (n > this.buffer_size) {
      // Behind counter_out, n wraps to a huge value: late if it is no further back than any h
      // the client has acked (and less than half the counter space); else it is ahead, too high
      // (2^32-1 right after <enable/> is not "one behind 0": §4, h wraps only after 2^32-1 stanzas).
      const back = MOD - n;
      if (back <= this.#history && back < 2 ** 31) return { ok: true, acked: 0 };
      return { ok: false, sent: this.sent };
    }
    if (onAcked) for (let i = 0; i < n; i++) onAcked(this.#items[this.#head + i]!);
    this.#head += n;
    this.counter_out = h;
    this.#history += n;
    if (this.#head > 64 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return { ok: true, acked: n };
  }

  /** The unacked stanzas, oldest first (seed: buffer). */
  unacked(): T[] { return this.#items.slice(this.#head); }

  /** Empties the buffer, returning what was in it. */
  drain(): T[] {
    const out = this.unacked();
    this.#items = [];
    this.#head = 0;
    return out;
  }
}

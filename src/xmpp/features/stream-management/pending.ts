/**
 * Flow control for XEP-0198 (issue 10): stanzas for a session whose unacked
 * queue holds buffer_max stanzas, or which is hibernating, wait here until
 * acks (or a resumption) make room. Bounded in bytes, not only in items, so
 * a burst of large stanzas cannot hold unbounded memory. A small pure FIFO
 * (like SmQueue), unit-tested on its own.
 */
export class PendingQueue<T> {
  #items: T[] = [];
  #sizes: number[] = [];
  #head = 0;
  #bytes = 0;

  constructor(readonly maxBytes: number) {}

  /** Stanzas waiting. */
  get length(): number { return this.#items.length - this.#head; }

  /** Bytes (serialized size) of the stanzas waiting. */
  get bytes(): number { return this.#bytes; }

  /**
   * Appends `item` of `bytes` bytes. False when the queue now holds more
   * than maxBytes: the item is kept all the same, so the caller, which then
   * ends the session, hands it over with the rest instead of dropping it.
   */
  push(item: T, bytes: number): boolean {
    this.#items.push(item);
    this.#sizes.push(bytes);
    this.#bytes += bytes;
    return this.#bytes <= this.maxBytes;
  }

  /** Removes and returns the oldest item. */
  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.#items[this.#head]!;
    this.#bytes -= this.#sizes[this.#head]!;
    this.#head++;
    if (this.#head > 64 && this.#head * 2 > this.#items.length) this.#compact();
    return item;
  }

  /** What waits, oldest first (nothing is taken out). */
  items(): T[] { return this.#items.slice(this.#head); }

  /** Empties the queue, returning what was in it, oldest first. */
  drain(): T[] {
    const out = this.#items.slice(this.#head);
    this.#items = [];
    this.#sizes = [];
    this.#head = 0;
    this.#bytes = 0;
    return out;
  }

  #compact(): void {
    this.#items = this.#items.slice(this.#head);
    this.#sizes = this.#sizes.slice(this.#head);
    this.#head = 0;
  }
}

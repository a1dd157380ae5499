import { serializeOut, type XmlElement } from '../../xml/index.js';

/** A payload waiting for a request, with Conn.send's `sent`: called once a response has carried it. */
export interface Queued {
  readonly el: XmlElement;
  readonly bytes: number;
  readonly sent: (() => void) | undefined;
}

/**
 * The payloads of one BOSH session waiting for a request, counted in bytes
 * (issue 10): a response carries at most `maxResponseBytes` of them (but
 * always one), and above `highWater` the session's input waits until the
 * client has fetched enough to bring it below half the mark, when
 * `drained` is called (and also whenever a response takes the last payload).
 */
export class OutQueue {
  #items: Queued[] = [];
  #bytes = 0;
  #above = false;
  #grace: NodeJS.Timeout | undefined;

  /**
   * `slowConsumer`: the queue stayed above twice the mark for `graceMs` (a client that fetches too
   * slowly to catch up while others keep sending to it): the session's end is the only bound on
   * what others send it, as for a WebSocket (ws-backlog.ts).
   */
  constructor(
    private readonly highWater: number, private readonly drained: () => void, private readonly observed: (bytes: number) => void,
    private readonly slowConsumer: () => void = () => undefined, private readonly graceMs = 30_000,
  ) {}

  get length(): number { return this.#items.length; }
  get bytes(): number { return this.#bytes; }

  /** True from above the high-water mark until back below half of it. */
  get high(): boolean { return this.#above; }

  push(el: XmlElement, sent?: () => void): void {
    // Serialized once more here than for the response: the size is what bounds memory.
    const bytes = Buffer.byteLength(serializeOut(el));
    this.#items.push({ el, bytes, sent });
    this.#bytes += bytes;
    if (this.#bytes > this.highWater) this.#above = true;
    if (this.#bytes > 2 * this.highWater && this.#grace === undefined) {
      this.#grace = setTimeout(() => {
        this.#grace = undefined;
        if (this.#bytes > 2 * this.highWater) this.slowConsumer();
      }, this.graceMs);
      this.#grace.unref();
    }
    this.observed(this.#bytes);
  }

  #clearGrace(): void {
    if (this.#grace !== undefined && this.#bytes <= 2 * this.highWater) {
      clearTimeout(this.#grace);
      this.#grace = undefined;
    }
  }

  /** How many of the oldest payloads fit in `maxBytes`, and their bytes: at least one when there is any. */
  #fitting(maxBytes: number): { n: number; size: number } {
    let n = 0;
    let size = 0;
    while (n < this.#items.length && (n === 0 || size + this.#items[n]!.bytes <= maxBytes)) size += this.#items[n++]!.bytes;
    return { n, size };
  }

  /** The oldest payloads up to `maxBytes` in all, at least one when there is any. */
  take(maxBytes: number): Queued[] {
    const { n, size } = this.#fitting(maxBytes);
    const taken = this.#items.splice(0, n);
    this.#bytes -= size;
    this.#clearGrace();
    if (this.#above && this.#bytes <= this.highWater / 2) {
      this.#above = false;
      this.drained();
    } else if (n > 0 && this.#bytes === 0) {
      // Emptied by a response: what waits for the whole backlog to reach the client (offline
      // delivery without XEP-0198) goes on now, not at its poll.
      this.drained();
    }
    return taken;
  }

  /**
   * The session is ending: the oldest payloads up to `maxBytes` (at least one when there is any,
   * unless `atLeastOne` is false) for its terminate body, and the others, to hand back. No drain
   * follows, and nothing is left.
   */
  takeFinal(maxBytes: number, atLeastOne = true): { readonly carried: Queued[]; readonly left: XmlElement[] } {
    const n = atLeastOne ? this.#fitting(maxBytes).n : fittingCount(this.#items, maxBytes);
    const carried = this.#items.slice(0, n);
    return { carried, left: this.takeAll().slice(n) };
  }

  /** Everything, to hand back (their `sent` is never called); no drain follows (the session is ending). */
  takeAll(): XmlElement[] {
    const all = this.#items.map((q) => q.el);
    this.#items = [];
    this.#bytes = 0;
    this.#above = false;
    this.#clearGrace();
    return all;
  }
}

/** How many of the oldest `items` fit in `maxBytes` in all (none may be more than it). */
export function fittingCount(items: readonly { readonly bytes: number }[], maxBytes: number): number {
  let n = 0;
  let size = 0;
  while (n < items.length && size + items[n]!.bytes <= maxBytes) size += items[n++]!.bytes;
  return n;
}

import { TokenBucket } from '../util/token-bucket.js';

/** One unit of a client's input: an element to dispatch (or a BOSH restart/terminate), and what it costs. */
export interface InputItem {
  /** Bytes it took on the wire, charged to the byte bucket. */
  readonly bytes: number;
  /** Stanzas it counts for the stanza bucket (0 for framing). */
  readonly stanzas: number;
  /** `ending`: the transport is gone, or its peer ended it, and the pump is being flushed (see InputPump.flush). */
  run(ending: boolean): void;
}

/**
 * RFC 6120 §8.2.3: a get only asks for its answer, and with the transport
 * gone and the session ending there is nowhere to send one; building it
 * could be large (a batch of vCard gets). A session that hibernates
 * (XEP-0198) runs it: its answer waits for the resumption, and skipping it
 * while running the stanzas behind it would make h count them in its place
 * (the client would take the get as handled and send a later message twice).
 */
export function skippedWhenEnding(el: { readonly name: string; attr(name: string): string | undefined }, session: { readonly resumable: boolean }): boolean {
  return el.name === 'iq' && el.attr('type') === 'get' && !session.resumable;
}

/** Inbound shaping (issue 10 item 4): 0 turns a bucket off. */
export interface ShapingOptions {
  readonly bytesPerSecond: number;
  readonly burstBytes: number;
  readonly stanzasPerSecond: number;
}

/** Why the pump stopped with input left: the output backlog is high, or a bucket is empty. */
export type PumpBlock = 'output' | 'rate';

/**
 * Numbers the turns of the event loop for every pump of a transport: one
 * setImmediate per turn for all sessions, instead of one per session.
 */
export class TurnClock {
  #turn = 0;
  #scheduled = false;

  /** The current turn; the next one starts once this turn's I/O and microtasks are done. */
  now(): number {
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => {
        this.#scheduled = false;
        this.#turn++;
      });
    }
    return this.#turn;
  }
}

/** Input a pump holds for the next turns before it asks its transport to stop reading (about one socket read). */
const PAUSE_BYTES = 65536;

/**
 * Items one session may run in one turn of the event loop. One per turn
 * cost 40 % of the message throughput (every pipelined frame of a read took
 * a turn, a setImmediate and a socket write of its own); eight keep a
 * client's in-flight window in one turn while a batch still stops within
 * eight items' output of the high-water mark.
 */
export const ITEMS_PER_TURN = 8;

export interface InputPumpDeps {
  readonly shaping: ShapingOptions;
  readonly turns: TurnClock;
  /** True while the transport's output backlog is above its high-water mark; the pump then waits for kick(). */
  backlogged(): boolean;
  /**
   * The pump is blocked or holds more than PAUSE_BYTES (true), or has caught
   * up (false): a WebSocket pauses or resumes its socket.
   */
  busy?(busy: boolean): void;
  /** The pump has run all its input. */
  idle?(): void;
  /** The pump stopped for `reason` (for metrics). */
  blocked?(reason: PumpBlock): void;
  readonly now?: () => number;
}

/**
 * A session's input, run at most ITEMS_PER_TURN items per turn of the event
 * loop. Replies are often built asynchronously (storage), so whether an
 * element made the output backlog grow is only known in a later turn:
 * bounding the items per turn means a batch of requests in one frame or one
 * BOSH body (issue 10: 3,000 vCard gets in one body) adds at most that many
 * items' output past the high-water mark before the pump stops, and no
 * client gets more than that into a turn. Items within the budget run at
 * once, so a client sending a few stanzas at a time pays nothing. While the
 * backlog is high or a bucket is empty the input waits, in order; nothing is
 * dropped.
 */
export class InputPump {
  readonly #queue: InputItem[] = [];
  #head = 0;
  #bytes = 0;
  #turn = -1;
  /** Items run in #turn. */
  #ranInTurn = 0;
  #blocked: PumpBlock | undefined;
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #busy = false;
  #disposed = false;
  readonly #byteBucket: TokenBucket | undefined;
  readonly #stanzaBucket: TokenBucket | undefined;

  constructor(private readonly deps: InputPumpDeps) {
    const now = deps.now ?? Date.now;
    const s = deps.shaping;
    if (s.bytesPerSecond > 0) this.#byteBucket = new TokenBucket(s.bytesPerSecond, Math.max(s.burstBytes, 1), now);
    // A burst of one second's worth of stanzas.
    if (s.stanzasPerSecond > 0) this.#stanzaBucket = new TokenBucket(s.stanzasPerSecond, s.stanzasPerSecond, now);
  }

  /** Bytes of input taken and not run yet. */
  get queuedBytes(): number { return this.#bytes; }
  get queuedItems(): number { return this.#queue.length - this.#head; }
  /** Why input is waiting: the output backlog, a bucket, or nothing (it runs on next turn, or is done). */
  get blockedBy(): PumpBlock | undefined {
    if (this.#blocked) return this.#blocked;
    return this.#timer ? 'rate' : undefined;
  }

  push(item: InputItem): void {
    if (this.#disposed) return;
    this.#queue.push(item);
    this.#bytes += item.bytes;
    this.#run();
  }

  /** The output backlog went below its low-water mark: go on. */
  kick(): void {
    if (this.#blocked !== 'output') return;
    this.#blocked = undefined;
    this.#run();
  }

  /**
   * The transport is gone, or its peer ended it and reads nothing more (a
   * BOSH terminate): what the peer sent and the pump still holds runs
   * now, in order, without waiting for buckets or room (the session hands
   * its answers over), then the pump is disposed. The peer sent it and
   * may count it as sent; dropping a message would lose it. Items skip
   * IQ gets (skippedWhenEnding). It is bounded: a WebSocket stops reading
   * past PAUSE_BYTES, BOSH refuses more than its input bound (a terminate,
   * the last body it takes, adds at most one body to it).
   */
  flush(): void {
    this.runHeld();
    this.dispose();
  }

  /**
   * The server is closing the stream (RFC 6120 §4.4: it goes on processing what the peer sent):
   * what the pump holds runs now, in order, as flush() runs it (`ending`), and the pump goes on
   * taking what the peer sends until it closes too. Bounded as flush() is.
   */
  runHeld(): void {
    while (!this.#disposed && this.#head < this.#queue.length) {
      const item = this.#queue[this.#head]!;
      this.#take();
      item.run(true);
    }
  }

  /** The session or transport is gone: forget the input and every timer. */
  dispose(): void {
    this.#disposed = true;
    this.#queue.length = 0;
    this.#head = 0;
    this.#bytes = 0;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
  }

  #run(): void {
    while (!this.#disposed && this.#head < this.#queue.length) {
      if (this.#timer || this.#blocked === 'output') return this.#setBusy(true);
      if (this.#immediate) return this.#bytes > PAUSE_BYTES ? this.#setBusy(true) : undefined;
      if (this.deps.backlogged()) return this.#block('output');
      const turn = this.deps.turns.now();
      if (turn !== this.#turn) {
        this.#turn = turn;
        this.#ranInTurn = 0;
      }
      if (this.#ranInTurn >= ITEMS_PER_TURN) {
        this.#immediate = setImmediate(() => { this.#immediate = undefined; this.#run(); });
        if (this.#bytes > PAUSE_BYTES) this.#setBusy(true);
        return;
      }
      const item = this.#queue[this.#head]!;
      const wait = Math.max(this.#byteBucket?.waitFor(item.bytes) ?? 0, this.#stanzaBucket?.waitFor(item.stanzas) ?? 0);
      if (wait > 0) {
        this.#timer = setTimeout(() => { this.#timer = undefined; this.#run(); }, wait);
        return this.#block('rate');
      }
      this.#byteBucket?.take(item.bytes);
      if (item.stanzas > 0) this.#stanzaBucket?.take(item.stanzas);
      this.#take();
      this.#ranInTurn++;
      item.run(false);
    }
    if (this.#disposed) return;
    this.#setBusy(false);
    this.deps.idle?.();
  }

  #take(): void {
    const item = this.#queue[this.#head]!;
    this.#queue[this.#head++] = undefined as unknown as InputItem;
    this.#bytes -= item.bytes;
    if (this.#head === this.#queue.length || this.#head > 1024) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
  }

  #block(reason: PumpBlock): void {
    if (reason === 'output') this.#blocked = 'output';
    this.deps.blocked?.(reason);
    this.#setBusy(true);
  }

  #setBusy(busy: boolean): void {
    if (this.#busy === busy) return;
    this.#busy = busy;
    this.deps.busy?.(busy);
  }
}

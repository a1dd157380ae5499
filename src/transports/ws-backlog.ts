import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';

export interface WsBacklogDeps {
  /** High-water mark in bytes: above it the connection's input waits, and new frames wait here. */
  readonly highWater: number;
  /** Seconds above twice the high-water mark before the peer counts as a slow consumer. */
  readonly graceSeconds: number;
  /** The backlog went below the low-water mark after being above the high-water mark. */
  drained(): void;
  /** Above twice the high-water mark for longer than the grace. */
  slowConsumer(): void;
  /** Every backlog size seen after a write, for the transport's peak figure. */
  observed(bytes: number): void;
}

interface HeldFrame<T> {
  readonly item: T;
  readonly text: string;
  readonly bytes: number;
  readonly write: (text: string) => void;
}

/**
 * The output side of one WebSocket's flow control (issue 10). ws hands
 * every frame to the TCP socket, whose buffer grows without limit when the
 * peer stops reading; its bufferedAmount is the only signal. Above the
 * high-water mark further frames wait here instead (still counted), so they
 * can go back to the session when the connection is dropped: a frame in the
 * socket's buffer is lost with the socket, one here is handed over. Frames
 * go out again on the socket's 'drain', which also fires after corked
 * writes (see WsConn#cork).
 */
export class WsBacklog<T> {
  #held: HeldFrame<T>[] = [];
  #heldBytes = 0;
  #above = false;
  #grace: NodeJS.Timeout | undefined;

  constructor(private readonly ws: WebSocket, private readonly deps: WsBacklogDeps) {
    socketOf(ws)?.on('drain', () => this.#onDrain());
  }

  /** Bytes written and not yet taken by the kernel, plus the frames waiting here. */
  get bytes(): number { return this.ws.bufferedAmount + this.#heldBytes; }

  /** True while above the high-water mark (the input side waits). */
  get high(): boolean {
    this.#check();
    return this.#above;
  }

  /** Writes `text` now, or keeps it while the backlog is high; `write` does the actual ws.send. */
  write(item: T, text: string, write: (text: string) => void): void {
    if (this.#held.length === 0 && this.ws.bufferedAmount <= this.deps.highWater) write(text);
    else this.#hold(item, text, write);
    this.#check();
  }

  /** The connection is gone: the frames that never reached the socket, for hand-over. */
  takeHeld(): T[] {
    this.#clearGrace();
    const held = this.#held.map((h) => h.item);
    this.#held = [];
    this.#heldBytes = 0;
    return held;
  }

  #hold(item: T, text: string, write: (text: string) => void): void {
    const bytes = Buffer.byteLength(text);
    this.#held.push({ item, text, bytes, write });
    this.#heldBytes += bytes;
  }

  #check(): void {
    const bytes = this.bytes;
    this.deps.observed(bytes);
    if (bytes > this.deps.highWater) this.#above = true;
    if (bytes > 2 * this.deps.highWater && this.#grace === undefined) {
      this.#grace = setTimeout(() => this.#onGrace(), this.deps.graceSeconds * 1000);
      this.#grace.unref();
    }
  }

  #onGrace(): void {
    this.#grace = undefined;
    if (this.bytes > 2 * this.deps.highWater) this.deps.slowConsumer();
  }

  #onDrain(): void {
    let n = 0;
    while (n < this.#held.length && this.ws.bufferedAmount <= this.deps.highWater && this.ws.readyState === this.ws.OPEN) {
      const h = this.#held[n++]!;
      this.#heldBytes -= h.bytes;
      // The caller's write, as for a frame written at once (it counts the bytes sent, corks the socket).
      h.write(h.text);
    }
    if (n > 0) this.#held.splice(0, n);
    // Hysteresis: input resumes well below the mark, not on every byte around it.
    if (this.#above && this.bytes <= this.deps.highWater / 2) {
      this.#above = false;
      this.#clearGrace();
      this.deps.drained();
    }
  }

  #clearGrace(): void {
    if (this.#grace) clearTimeout(this.#grace);
    this.#grace = undefined;
  }
}

/** ws exposes no drain event of its own, hence its `_socket` (as for cork). */
export function socketOf(ws: WebSocket): Socket | undefined {
  return (ws as unknown as { _socket?: Socket })._socket;
}

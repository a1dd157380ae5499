import type { Log } from '../../xmpp/log.js';
import type { FlowControlEvent } from '../../xmpp/metrics-port.js';
import type { ShapingOptions, TurnClock } from '../input-pump.js';
import type { BoshRequest } from './body.js';

/** One HTTP request waiting for its answer; the route implements it over a fastify reply. */
export interface HttpReply {
  /** Sends the response; later calls, and calls after the client went away, do nothing. */
  send(status: number, contentType: string, body: string): void;
  /** Called once if the client closes the connection before we answer. */
  onGone(fn: () => void): void;
}

/** What a BoshConn needs from its owner (the transport's registry); `C` is BoshConn (generic, so this file imports no conn.ts). */
export interface BoshHost<C> {
  readonly log: Log;
  /** Forget the session: it has ended. */
  removed(conn: C): void;
  /** A session timer was armed (+1) or is gone (-1): the transport counts them to prove none leaks. */
  timers(delta: 1 | -1): void;
  internalError(): void;
  /** Flow control (issue 10): the byte bounds and the inbound shaping of every session. */
  readonly flow: BoshFlow;
  flowControl(event: FlowControlEvent): void;
  /** A session's queue now holds `bytes` (for BoshStats.peakQueuedBytes). */
  observed(bytes: number): void;
  /** Shared by the sessions' input pumps. */
  readonly turns: TurnClock;
}

export interface BoshFlow {
  /** Most payload bytes in one response (one payload always fits). */
  readonly maxResponseBytes: number;
  /** Payload bytes waiting for a request above which the session's input waits. */
  readonly maxQueuedBytes: number;
  /** Unprocessed input bytes one session may have; a request beyond it is overactivity (policy-violation). */
  readonly maxInputBytes: number;
  readonly shaping: ShapingOptions;
}

/** A processed request waiting for its response (XEP-0124 §8). */
export interface Held {
  readonly rid: number;
  reply: HttpReply;
  readonly deadline: number;
}

/** A request ahead of a gap in the rids (XEP-0124 §14.2), not processed yet. */
export interface Pending {
  readonly request: BoshRequest;
  reply: HttpReply;
  readonly deadline: number;
}

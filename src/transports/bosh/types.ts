import type { Readable } from 'node:stream';
import type { Log } from '../../xmpp/log.js';
import type { BoshMetrics, FlowControlEvent } from '../../xmpp/metrics-port.js';
import type { ShapingOptions, TurnClock } from '../input-pump.js';
import type { BoshRequest } from './body.js';

/** One HTTP request waiting for its answer; the route implements it over a fastify reply. */
export interface HttpReply {
  /** Sends the response; later calls, and calls after the client went away, do nothing. */
  send(status: number, contentType: string, body: string): void;
  /**
   * Sends the response with the body `body` yields as it comes (a cluster peer's answer, relayed
   * as read: bosh-forward.ts); otherwise as send. Until it has ended, abort still drops the connection.
   */
  stream(status: number, contentType: string, body: Readable): void;
  /** Called once if the client closes the connection before we answer. */
  onGone(fn: () => void): void;
  /** Drops the connection unanswered, as a network failure would (the client sends the rid again, XEP-0124 §14.3). */
  abort(): void;
}

/** What a BoshConn needs from its owner (the transport's registry); `C` is BoshConn (generic, so this file imports no conn.ts). */
export interface BoshHost<C> {
  readonly log: Log;
  /** Forget the session: it has ended. */
  removed(conn: C): void;
  /** The session's stream authenticated (Conn.loggedIn): for the per-address limits. */
  loggedIn(conn: C): void;
  /** A session timer was armed (+1) or is gone (-1): the transport counts them to prove none leaks. */
  timers(delta: 1 | -1): void;
  internalError(): void;
  /** Flow control (issue 10): the byte bounds and the inbound shaping of every session. */
  readonly flow: BoshFlow;
  flowControl(event: FlowControlEvent): void;
  readonly metrics: BoshMetrics;
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
  /** Seconds the queue may stay above twice maxQueuedBytes before the session is dropped as a slow consumer (WS_SLOW_CONSUMER_GRACE). */
  readonly slowConsumerGrace: number;
  /** Unprocessed input bytes one session may have; a request beyond it is overactivity (policy-violation). */
  readonly maxInputBytes: number;
  readonly shaping: ShapingOptions;
}

/** A processed request waiting for its response (XEP-0124 §8). */
export interface Held {
  readonly rid: number;
  reply: HttpReply;
  readonly deadline: number;
  /** When it was held (ms since the epoch), for xmpp_bosh_hold_seconds. */
  readonly since: number;
}

/** A request ahead of a gap in the rids (XEP-0124 §14.2), not processed yet. */
export interface Pending {
  readonly request: BoshRequest;
  reply: HttpReply;
  readonly deadline: number;
}

/** Where a request came from, as the HTTP layer (and its trusted proxies) tells it. */
export interface ClientInfo {
  readonly ip: string;
  readonly secure: boolean;
}

/**
 * Names the forwarded request of a cluster peer (BoshForwarder.forward); its
 * value proves the sender is one (BoshForwarder.fromPeer). Such a request is
 * never forwarded again, so a request makes at most one hop.
 */
export const HOP_HEADER = 'x-xwg-bosh-hop';

/**
 * Names the node a forwarded request is meant for (the owner's id in Redis). Another node that gets
 * it answers MISROUTED_STATUS unprocessed: the owner's advertised URL reaches the wrong process (the
 * default 127.0.0.1 on several machines), and a sid it does not hold would read as ended.
 */
export const HOP_NODE_HEADER = 'x-xwg-bosh-node';

/** RFC 9110 §15.5.20 Misdirected Request: the answer to a forwarded request meant for another node. */
export const MISROUTED_STATUS = 421;

/** The live node that holds a sid: its id and its internal base URL. */
export interface BoshOwner {
  readonly node: string;
  readonly url: string;
}

/**
 * BOSH without sticky sessions (issue 14 item 4): what the transport needs
 * from a cluster when a request names a sid this process does not hold.
 * Absent in a single process, which then keeps exactly the path it always
 * had (src/cluster/bosh-forward.ts implements it over Redis and HTTP).
 */
export interface BoshForwarder {
  /** A session was created here: other nodes may now forward its requests. Resolves once they can. */
  register(sid: string): Promise<void>;
  /** The session ended here. */
  unregister(sid: string): void;
  /** This node's id: a forwarded request naming another (HOP_NODE_HEADER) was misrouted. */
  readonly node: string;
  /** The live node that holds `sid`; undefined when none does. */
  ownerOf(sid: string): Promise<BoshOwner | undefined>;
  /**
   * Sends `raw` to `owner`'s BOSH endpoint (`path` under its URL) as `client`'s request
   * and its answer, status and content-type included, to `reply`. Resolves
   * false when the owner could not be reached (nothing was sent to `reply`).
   * A request the owner may have processed whose answer was lost on the way
   * resolves true with `reply` aborted: the client sends the rid again (§14.3).
   */
  forward(owner: BoshOwner, path: string, raw: Uint8Array, client: ClientInfo, reply: HttpReply): Promise<boolean>;
  /** Whether HOP_HEADER's value `token` comes from a node of this cluster. */
  fromPeer(token: string): boolean;
}

/**
 * Between cluster nodes only: the content type of the owner's answer to a forwarded request that
 * must get no response at all (XEP-0124 §19.1: a secure session's request over plain HTTP). The
 * forwarding node closes the client's connection instead of relaying it.
 */
export const CLOSE_CONNECTION_TYPE = 'application/x-xmpp-web-gateway-close';

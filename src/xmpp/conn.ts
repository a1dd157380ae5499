import type { XmlElement } from '../xml/index.js';
import type { StreamError, StreamErrorCondition } from './errors.js';

/** What the server says when it opens (or re-opens) a stream. */
export interface StreamHeader {
  readonly id: string;
  readonly from: string;
  /** RFC 6120 §4.7.2: the bare JID of the client's initial header `from`, when it gave one. */
  readonly to?: string;
  readonly version: '1.0';
  readonly lang: string;
}

/**
 * The transport under a session, and all the core knows of it (the seed's
 * `conn`). WebSocket and BOSH each implement it; nothing in `xmpp/` may ask
 * which one it is, beyond `transport` for logs and metrics.
 */
export interface Conn {
  readonly transport: 'websocket' | 'bosh';
  /** Protected by TLS end to end as far as we can tell (directly or via a trusted proxy). */
  readonly secure: boolean;
  /** The client's address (from a trusted proxy's X-Forwarded-For when there is one). */
  readonly ip: string;
  /** Frame the server's stream header (RFC 7395 <open/>, or BOSH's session attributes). */
  open(header: StreamHeader): void;
  /**
   * Write one top-level element. `sent`, when given, is called once the element has been handed
   * to the peer (a WebSocket frame written to the socket, a BOSH response that carries it), not
   * while it waits in the transport's backlog or queue; never for one given back (undelivered).
   * XEP-0198's ack timer starts then: an <r/> that waits for a BOSH request cannot be answered.
   */
  send(el: XmlElement, sent?: () => void): void;
  /**
   * Bytes this transport has taken and not yet handed to the peer (a
   * WebSocket's bufferedAmount; a BOSH session's queued payloads). Flow
   * control reads it: work that produces output waits while it is high.
   */
  readonly bufferedBytes: number;
  /**
   * True while input the peer sent waits in the transport (inbound shaping, a high output backlog):
   * an answer the server waits for (XEP-0198 <a/>) may be in it, so waits on the peer go on. Also
   * while the peer cannot read yet for a time the transport granted (a BOSH pause, XEP-0124 §10).
   */
  readonly inputHeld?: boolean;
  /** The core has room for the peer's input again (ConnEvents.inputBacklogged went false): read on. */
  inputRoom?(): void;
  /**
   * SASL has succeeded on this transport's stream (ConnEvents.authenticated is now true): the per-address
   * limits, which count unauthenticated streams, learn it now rather than when the next session is admitted.
   */
  loggedIn?(): void;
  /**
   * Write an optional stream error, then the closing framing, then end the
   * transport. The error is typed, not an element: each transport frames it
   * its own way (RFC 7395 writes `streamErrorElement(error)`; XEP-0124 §17.2
   * maps some conditions to its own terminal conditions) without re-parsing XML.
   */
  close(error?: StreamError): void;
  /**
   * The node is leaving (a rolling restart, CLUSTER=redis): end the
   * transport as a network cut would, with no stream error and no closing
   * framing, so the client reconnects (to another node) and resumes there
   * (XEP-0198 §5). The session is told its transport was lost, so a
   * resumable one hibernates instead of ending.
   */
  drop(): void;
  /**
   * Deliver this transport's events to `events` from now on. Stream
   * resumption (XEP-0198 §5) moves a new transport under the old session,
   * and detaches the old transport from it.
   */
  attach(events: ConnEvents): void;
}

/** Calls from a transport into its session, and the little a transport may read of it. */
export interface ConnEvents {
  /** True until the stream is opened (again). */
  readonly notopen: boolean;
  /** True once the session is gone; late transport events are then ignored. */
  readonly destroyed: boolean;
  /** For log lines. */
  readonly logId: string;
  /** SASL has succeeded (per-address limits count unauthenticated streams; smaller stanzas are allowed before). */
  readonly authenticated: boolean;
  /**
   * XEP-0198: a lost transport would hibernate the session, so answers to what the peer sent
   * still reach it after a resumption (an IQ get held when the transport ends is then run, not skipped).
   */
  readonly resumable: boolean;
  /**
   * The core still has this much of the peer's input queued (its handlers wait, e.g. on a slow
   * store): the transport stops feeding it, as for its own output backlog, until Conn.inputRoom().
   */
  readonly inputBacklogged: boolean;
  /** The peer opened (or re-opened after SASL) the stream; attrs of its <open/> or BOSH body. */
  streamOpened(attrs: Readonly<Record<string, string>>): void;
  /** One complete top-level element arrived. */
  element(el: XmlElement): void;
  /** The peer closed the stream cleanly (<close/>, BOSH terminate). */
  streamClosed(): void;
  /** The transport died without a clean close (socket error, dead peer, BOSH inactivity). */
  transportLost(reason: string): void;
  /** Elements this transport took and could not deliver (its queue at the end, writes after the peer went). */
  undelivered(elements: XmlElement[]): void;
  /**
   * The transport's output backlog (bufferedBytes) went below its low-water mark after being above
   * it; BOSH also when a response took its last queued payload (a WebSocket's kernel takes its
   * writes with no such signal).
   */
  drained(): void;
  /** The transport could not parse what the peer sent. */
  streamError(condition: StreamErrorCondition, text?: string): void;
}

/** Where a transport's events go once it no longer belongs to a session. */
export const DETACHED: ConnEvents = {
  notopen: false, destroyed: true, logId: 'detached', authenticated: false, resumable: false, inputBacklogged: false,
  streamOpened() {}, element() {}, streamClosed() {}, transportLost() {}, undelivered() {}, drained() {}, streamError() {},
};

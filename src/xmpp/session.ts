import type { XmlElement } from '../xml/index.js';
import type { Jid } from '../jid/index.js';
import type { Conn, ConnEvents } from './conn.js';
import type { StreamError, StreamErrorCondition } from './errors.js';
import { randomId } from '../util/random.js';

/** Prosody's close(reason): a condition name, `{condition, text}`, or a stanza sent before closing. */
export type CloseReason = StreamErrorCondition | StreamError | XmlElement | undefined;

/** What a session asks of the core that owns it (the stream handler). */
export interface SessionOwner {
  dispatchOpen(session: Session, attrs: Readonly<Record<string, string>>): void;
  dispatchElement(session: Session, el: XmlElement): void;
  /** The peer closed the stream: after what it sent before (its last acks), in arrival order. */
  dispatchClose(session: Session): void;
  /** Outgoing stanza filters (stream management, CSI). True = taken over, do not write. */
  filterOut(session: Session, stanza: XmlElement): boolean;
  closed(session: Session, reason: StreamError | undefined, clean: boolean): void;
  lost(session: Session, reason: string): void;
  /** The transport could not deliver `elements` (see ConnEvents.undelivered). */
  undelivered(session: Session, elements: XmlElement[]): void;
  /** The transport's output backlog drained (see ConnEvents.drained). */
  drained(session: Session): void;
  /** Whether a lost transport would hibernate `session` (stream management) rather than end it. */
  mayHibernate(session: Session): boolean;
  /** Whether the core has so much of the session's input queued that the transport should stop feeding it. */
  inputBacklogged(session: Session): boolean;
}

/** Marker for client stanzas: the three kinds of RFC 6120 §8 in jabber:client. */
export function isStanza(el: XmlElement): boolean {
  const n = el.name;
  return n === 'message' || n === 'presence' || n === 'iq';
}

/**
 * A client session, shaped as the seed describes Prosody's session object.
 * The field names are the seed's (`full_jid`, `notopen`, …) on purpose.
 * The session knows nothing of its transport beyond the `Conn` interface.
 */
export class Session implements ConnEvents {
  /** 'c2s_unauthed' until SASL succeeds, then 'c2s'. */
  type: 'c2s_unauthed' | 'c2s' = 'c2s_unauthed';
  /** The transport; null while a resumable session hibernates. */
  conn: Conn | null;
  /** True until the client opens the stream, and again after every restart. */
  notopen = true;
  secure: boolean;
  ip: string;
  username: string | undefined;
  /** Authenticated with SASL ANONYMOUS: a throw-away account that only exists while the session does. */
  anonymous = false;
  host: string | undefined;
  resource: string | undefined;
  full_jid: string | undefined;
  /** The bound JID as a value object, set with full_jid. */
  jid: Jid | undefined;
  priority = 0;
  /** The last non-directed available presence; undefined when unavailable. */
  presence: XmlElement | undefined;
  /** True once the resource requested the roster. */
  interested: boolean | undefined;
  /** XEP-0280 carbons enabled; changed through SessionManager.setCarbons, which counts them. */
  carbons = false;
  /**
   * XEP-0191 §3.3: the resource requested the blocklist, so it gets blocklist pushes. A field of
   * the session, not of the blocking feature, so a cluster's remote stubs carry it (directory entry).
   */
  blocklistRequested = false;
  /**
   * RFC 6121 §4.6.3: the JIDs (full, as addressed) this session sent directed available presence
   * to, oldest first, owed unavailable when it ends; undefined when none. Prosody's `directed`.
   * Kept by presence.ts; a field of the session, not of the feature, so a cluster's directory
   * entry and stream-management snapshot carry it: a survivor ends a dead node's session with
   * it, and a session resumed on another node keeps it.
   */
  directed: Map<string, Jid> | undefined;
  /** The user's roster, loaded when the resource is bound. */
  roster: unknown;
  /** The `from` of the client's last stream header (RFC 6120 §4.7.1), if it sent one (SASL checks an authzid against it). */
  streamFrom: string | undefined;
  /** Current stream id (RFC 6120 §4.7.3), new on every (re)start. */
  streamId = '';
  lang = 'en';
  readonly startedAt = Date.now();
  /** The transport the session is on (or hibernated from): the one it started on, then each resumption's. For logs and metrics. */
  transport: Conn['transport'];
  /** Unique for the life of the process; for logs only. */
  readonly logId = randomId(6);
  stanzasIn = 0;
  stanzasOut = 0;
  destroyed = false;
  /**
   * XEP-0198 §5: how many resumptions moved a new transport under this session. Input that
   * arrived from a transport before a resumption replaced it, and waited behind the session's
   * queue meanwhile, is dropped (core.ts): `<resumed h/>` did not count it, so the client sends it again.
   */
  resumptions = 0;
  /**
   * On a stream retired by a resumption (the carrier of `<resume/>`): the session its transport
   * went to, and that session's `resumptions` then. What the transport sent behind `<resume/>`
   * (a stanza, its close, its loss) goes there while no later resumption replaced it.
   */
  resumedInto: { readonly session: Session; readonly resumptions: number } | undefined;
  /** Stanzas the transport could not deliver, handed over when the session is gone (see hand-over.ts). */
  undeliveredStanzas: import('./undelivered.js').Undelivered[] | undefined;
  #closing = false;

  constructor(conn: Conn, private readonly owner: SessionOwner) {
    this.conn = conn;
    this.secure = conn.secure;
    this.ip = conn.ip;
    this.transport = conn.transport;
  }

  /** SASL has succeeded (ConnEvents). */
  get authenticated(): boolean { return this.type === 'c2s'; }
  /** A connected resource: bound (seed). */
  get connected(): boolean { return this.full_jid !== undefined; }
  /** An available resource: has sent initial presence (seed). */
  get available(): boolean { return this.presence !== undefined; }
  /** An interested resource: has requested the roster (seed). */
  get isInterested(): boolean { return this.interested === true; }

  /** Sends a stanza or nonza to the client, through the outgoing filters for stanzas. */
  send(el: XmlElement): void {
    if (this.destroyed) return;
    if (isStanza(el)) {
      this.stanzasOut++;
      if (this.owner.filterOut(this, el)) return;
    }
    this.conn?.send(el);
  }

  /** Writes straight to the transport, bypassing filters (for SM resends and nonzas); `sent` as for Conn.send. */
  write(el: XmlElement, sent?: () => void): void {
    this.conn?.send(el, sent);
  }

  /** Ends the stream for `reason` and destroys the session. Idempotent. */
  close(reason?: CloseReason): void {
    if (this.#closing) return;
    this.#closing = true;
    let error: StreamError | undefined;
    if (typeof reason === 'string') error = { condition: reason };
    else if (reason && 'condition' in reason) error = reason;
    else if (reason) this.conn?.send(reason);
    this.owner.closed(this, error, error === undefined);
  }

  get closing(): boolean { return this.#closing; }

  /** XEP-0198: a lost transport would hibernate this session, whose answers then wait for a resumption (ConnEvents). */
  get resumable(): boolean { return this.owner.mayHibernate(this); }

  /** ConnEvents: the core's queue of this session's input is high; the transport waits for Conn.inputRoom(). */
  get inputBacklogged(): boolean { return this.owner.inputBacklogged(this); }

  // ConnEvents: calls from the transport.
  streamOpened(attrs: Readonly<Record<string, string>>): void { this.owner.dispatchOpen(this, attrs); }
  element(el: XmlElement): void { this.owner.dispatchElement(this, el); }
  streamClosed(): void { this.owner.dispatchClose(this); }
  transportLost(reason: string): void { this.owner.lost(this, reason); }
  undelivered(elements: XmlElement[]): void { this.owner.undelivered(this, elements); }
  drained(): void { this.owner.drained(this); }
  streamError(condition: StreamErrorCondition, text?: string): void { this.close(text ? { condition, text } : condition); }
}

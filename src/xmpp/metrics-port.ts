import type { StreamErrorCondition } from './errors.js';

export type Transport = 'websocket' | 'bosh';
export type StanzaKind = 'message' | 'presence' | 'iq';

/**
 * Why a session ended (xmpp_sessions_ended_total): a bounded set, never the stream error's text.
 * 'resumed': the new stream that carried a XEP-0198 <resume/>, whose transport went to the resumed session.
 */
export type SessionEndReason = 'closed' | 'stream-error' | 'conflict' | 'timeout' | 'resume-timeout' | 'shutdown' | 'kicked' | 'dropped' | 'resumed' | 'released';

/**
 * XEP-0198 §5 resumption outcomes; a failure is told apart by why the smid did not resume
 * ('handled-count-too-high': the client's h acknowledged more than was sent, XEP-0198 §4).
 */
export type ResumeOutcome = 'resumed' | 'unknown-smid' | 'wrong-user' | 'timed-out' | 'replaced' | 'handled-count-too-high';

/** Where an ended session's unacknowledged stanzas went (hand-over.ts reroute). */
export type HandOverTarget = 'offline' | 'resource' | 'bounced';

/** Which server limit refused something a client sent or asked for (xmpp_limit_refusals_total). */
export type Limit = 'size' | 'depth' | 'rate' | 'per-ip' | 'resources' | 'roster' | 'blocklist' | 'offline' | 'pep' | 'other';

/** The counters the core bumps; metrics/ implements them on prom-client. */
export interface CoreMetrics {
  /** A stanza received, on the transport that carried it (the session's current one). */
  stanzaIn(kind: StanzaKind, transport: Transport): void;
  /** A stanza the server sent to a client session (Session.send), before the outgoing filters. */
  stanzaOut(kind: StanzaKind, transport: Transport): void;
  /** Bytes read from a client: a WebSocket frame's payload, a BOSH request body. */
  bytesIn(transport: Transport, bytes: number): void;
  /** Bytes written to a client: a WebSocket frame, a BOSH response body. */
  bytesOut(transport: Transport, bytes: number): void;
  streamError(condition: StreamErrorCondition): void;
  /** A SASL outcome; a failure also names its RFC 6120 §6.5 condition. Labels are bounded: the caller maps unknown mechanisms to 'other'. */
  sasl(mechanism: string, result: 'success' | 'failure', condition?: string): void;
  /** A token (JWT) login's outcome: 'ok', or the bounded reason it was refused (src/sasl/jwt.ts JwtFailureReason, or 'storage'). */
  tokenLogin(result: 'success' | 'failure', reason: string): void;
  sessionStarted(transport: Transport): void;
  sessionEnded(transport: Transport, seconds: number, reason: SessionEndReason): void;
  internalError(): void;
  /** A client stanza's `from` named its own account with another resource and was stamped (core.ts stampFrom). */
  fromRestamped(): void;
  /** A new session refused before it started: by its web origin or a per-address limit (label values bounded). */
  refused(reason: 'origin' | 'connections-per-ip' | 'unauthenticated-per-ip' | 'connection-rate'): void;
  /** XEP-0198 life-cycle events. */
  sm(event: 'enabled' | 'hibernated' | 'resumed' | 'resume-failed' | 'timed-out', count?: number): void;
  /** XEP-0198 §3: stream management enabled on this transport. */
  smEnabled(transport: Transport): void;
  /** XEP-0198 §5: a resumption's outcome; `from` is the transport the session had before ('none': not held here). */
  smResume(outcome: ResumeOutcome, from: Transport | 'none', to: Transport): void;
  /** Seconds a session hibernated before it was resumed. */
  smHibernation(seconds: number): void;
  /** A hibernating session was not resumed within its resume timeout. */
  smResumeTimeout(): void;
  /** Stanzas of an ended session routed elsewhere. */
  smHandedOver(to: HandOverTarget, count: number): void;
  /** Unacknowledged stanzas when an <a/> arrives (XEP-0198 §4). */
  smQueueDepth(unacked: number): void;
  /** XEP-0160: a message stored, delivered from storage (count), or refused over the quota. */
  offline(event: 'stored' | 'delivered' | 'refused-quota', count?: number): void;
  /** A configured limit refused what a client sent or asked for. */
  limitRefused(limit: Limit): void;
  /** Flow control (issue 10): a session's input paused for its output backlog or its rate, or a slow consumer dropped. */
  flowControl(transport: string, event: FlowControlEvent): void;
  /** XEP-0484 FAST tokens: issued, used, or refused and why (a replay of a rotated token is 'replayed'). */
  fast(event: FastEvent): void;
}

export type FastEvent = 'issued' | 'used' | 'unknown' | 'replayed' | 'wrong-agent' | 'expired' | 'wrong-mechanism';

export type FlowControlEvent = 'paused-output' | 'paused-rate' | 'slow-consumer';

/** Why a BOSH session ended (XEP-0124 §13, §10, §14.2, §17.2), or a request named no session (bad-sid). */
export type BoshEndReason = 'terminate' | 'inactivity' | 'rid-window' | 'bad-sid' | 'shutdown' | 'error' | 'slow-consumer';

/** What the BOSH transport reports (XEP-0124); the held-requests gauge is read at scrape time. */
export interface BoshMetrics {
  request(): void;
  /** A held request was answered after waiting `seconds` (§8 long poll). */
  held(seconds: number): void;
  ended(reason: BoshEndReason): void;
}

const nothing = (): void => {};

/** For unit tests of the core that do not look at metrics. */
export const NO_METRICS: CoreMetrics = {
  stanzaIn: nothing, stanzaOut: nothing, bytesIn: nothing, bytesOut: nothing, streamError: nothing, sasl: nothing, tokenLogin: nothing,
  sessionStarted: nothing, sessionEnded: nothing, internalError: nothing, fromRestamped: nothing, refused: nothing, sm: nothing,
  smEnabled: nothing, smResume: nothing, smHibernation: nothing, smResumeTimeout: nothing, smHandedOver: nothing, smQueueDepth: nothing,
  offline: nothing, limitRefused: nothing, flowControl: nothing, fast: nothing,
};

export const NO_BOSH_METRICS: BoshMetrics = { request: nothing, held: nothing, ended: nothing };

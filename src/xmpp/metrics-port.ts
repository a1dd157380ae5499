import type { StreamErrorCondition } from './errors.js';

/** The counters the core bumps; metrics/ implements them on prom-client. */
export interface CoreMetrics {
  stanzaIn(kind: 'message' | 'presence' | 'iq'): void;
  streamError(condition: StreamErrorCondition): void;
  /** A SASL outcome; a failure also names its RFC 6120 §6.5 condition. Labels are bounded: the caller maps unknown mechanisms to 'other'. */
  sasl(mechanism: string, result: 'success' | 'failure', condition?: string): void;
  /** A token (JWT) login's outcome: 'ok', or the bounded reason it was refused (src/sasl/jwt.ts JwtFailureReason, or 'storage'). */
  tokenLogin(result: 'success' | 'failure', reason: string): void;
  sessionStarted(transport: string): void;
  sessionEnded(transport: string, seconds: number): void;
  internalError(): void;
  /** A client stanza's `from` named its own account with another resource and was stamped (core.ts stampFrom). */
  fromRestamped(): void;
  /** A new session refused before it started: by its web origin or a per-address limit (label values bounded). */
  refused(reason: 'origin' | 'connections-per-ip' | 'unauthenticated-per-ip' | 'connection-rate'): void;
  /** XEP-0198 life-cycle events. */
  sm(event: 'enabled' | 'hibernated' | 'resumed' | 'resume-failed' | 'timed-out', count?: number): void;
  /** Flow control (issue 10): a session's input paused for its output backlog or its rate, or a slow consumer dropped. */
  flowControl(transport: string, event: FlowControlEvent): void;
  /** XEP-0484 FAST tokens: issued, used, or refused and why (a replay of a rotated token is 'replayed'). */
  fast(event: FastEvent): void;
}

export type FastEvent = 'issued' | 'used' | 'unknown' | 'replayed' | 'wrong-agent' | 'expired' | 'wrong-mechanism';

export type FlowControlEvent = 'paused-output' | 'paused-rate' | 'slow-consumer';

/** For unit tests of the core that do not look at metrics. */
export const NO_METRICS: CoreMetrics = {
  stanzaIn() {}, streamError() {}, sasl() {}, tokenLogin() {}, sessionStarted() {}, sessionEnded() {}, internalError() {}, fromRestamped() {}, refused() {}, sm() {}, flowControl() {}, fast() {},
};

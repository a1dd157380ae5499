import type { StreamErrorCondition } from './errors.js';

/** The counters the core bumps; metrics/ implements them on prom-client. */
export interface CoreMetrics {
  stanzaIn(kind: 'message' | 'presence' | 'iq'): void;
  streamError(condition: StreamErrorCondition): void;
  sasl(mechanism: string, result: 'success' | 'failure'): void;
  sessionStarted(transport: string): void;
  sessionEnded(transport: string, seconds: number): void;
  internalError(): void;
  /** A client stanza's `from` named its own account with another resource and was stamped (core.ts stampFrom). */
  fromRestamped(): void;
  /** XEP-0198 life-cycle events. */
  sm(event: 'enabled' | 'hibernated' | 'resumed' | 'resume-failed' | 'timed-out', count?: number): void;
}

/** For unit tests of the core that do not look at metrics. */
export const NO_METRICS: CoreMetrics = {
  stanzaIn() {}, streamError() {}, sasl() {}, sessionStarted() {}, sessionEnded() {}, internalError() {}, fromRestamped() {}, sm() {},
};

import type { Conn, ConnEvents } from './conn.js';
import type { BoshMetrics, CoreMetrics } from './metrics-port.js';

/**
 * All a transport may reach of the server: a way to start a session for a
 * new connection, and the metrics it reports flow control and refusals to.
 * Never the core, its context or storage (issue 12: transports are adapters
 * and know no rosters, auth or routing). app.ts builds it from the core.
 */
export interface TransportHost {
  /** A transport accepted a connection: make its session, which receives the transport's events. */
  connect(conn: Conn): ConnEvents;
  readonly metrics: CoreMetrics;
  /** XEP-0124 requests, long polls and session ends (the BOSH transport only). */
  readonly boshMetrics: BoshMetrics;
}

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { BoshEndReason, BoshMetrics } from '../xmpp/metrics-port.js';
import { bound, hotCounter } from './families.js';

const REASONS: readonly BoshEndReason[] = ['terminate', 'inactivity', 'rid-window', 'bad-sid', 'shutdown', 'error', 'slow-consumer'];

/** XEP-0124 BOSH: requests, long-poll waits and session ends. */
export function boshMetrics(registry: Registry): BoshMetrics {
  const registers = [registry];
  const requests = new Counter({ name: 'xmpp_bosh_requests_total', help: 'BOSH HTTP requests (POST bodies) received', registers });
  const hold = new Histogram({
    name: 'xmpp_bosh_hold_seconds', help: 'How long a held BOSH request waited for its answer (XEP-0124 §8 long poll)', registers,
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 20, 30, 60, 120],
  });
  const ended = bound(hotCounter({
    name: 'xmpp_bosh_sessions_ended_total', labelNames: ['reason'], registers,
    help: 'BOSH sessions ended, by reason (terminate, inactivity, rid-window, shutdown, error, slow-consumer); bad-sid counts requests naming no session',
  }), REASONS);
  return {
    request: () => requests.inc(),
    held: (seconds) => hold.observe(seconds),
    ended: (reason) => ended[reason].inc(),
  };
}

/** xmpp_bosh_held_requests, read from the transport at scrape time: nothing to keep in step per request. */
export function registerBoshHeld(registry: Registry, held: () => number): void {
  new Gauge({
    name: 'xmpp_bosh_held_requests', help: 'BOSH requests held open, waiting for something to answer (XEP-0124 §8)', registers: [registry],
    collect() { this.set(held()); },
  });
}

/**
 * The cluster's Prometheus metrics, on the server's registry and computed
 * at scrape time from the delivery's counters (nothing on the hot path).
 */
import { Counter, type Registry } from 'prom-client';
import type { Cluster } from './index.js';

export function registerClusterMetrics(registry: Registry, cluster: Cluster): void {
  new Counter({
    name: 'xmpp_cluster_delivery_total',
    help: "Cross-node inbox entries: sent, refused (by reason: node-down, inbox-full, redis; the sender routed them itself), handled, retried, undeliverable (routed without their session), lost (logged at error)",
    labelNames: ['event', 'reason'],
    registers: [registry],
    collect() {
      const s = cluster.delivery.stats();
      this.reset();
      for (const event of ['sent', 'handled', 'retried', 'undeliverable', 'lost'] as const) this.inc({ event, reason: '' }, s[event]);
      for (const [reason, n] of Object.entries(s.refused)) this.inc({ event: 'refused', reason }, n);
    },
  });
}

import Fastify, { type FastifyInstance } from 'fastify';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/index.js';
import type { Log } from '../xmpp/log.js';
import { loadBuildInfo, registerBuildInfo, type BuildInfo } from '../metrics/build-info.js';
import { createPeerFilter, registerMetricsRoute, type PeerFilter } from './metrics-access.js';
import { createReadiness, type NotReadyReason } from './readiness.js';

// A store slower than this to answer SELECT 1 counts as down (a probe's own timeout is a few seconds).
export const READY_STORAGE_TIMEOUT_MS = 2000;

export interface Monitoring {
  /** METRICS_PORT: the listener of /metrics alone, not yet listening (main.ts listens on METRICS_HOST). */
  readonly metricsHttp: FastifyInstance | undefined;
  /** METRICS_ALLOW for /metrics on the main port; undefined when METRICS_PORT serves it. */
  readonly metricsAllowed: PeerFilter | undefined;
  /** What /readyz adds to "started and not stopping": the store, the event loop and, in a cluster, Redis. */
  health(): Promise<NotReadyReason | undefined>;
  close(): Promise<void>;
}

export interface MonitoringDeps {
  readonly config: Pick<Config, 'metricsAllow' | 'metricsPort' | 'readyMaxEventLoopDelay'>;
  readonly registry: Registry;
  /** Storage.ping. */
  readonly ping: () => Promise<void>;
  /** CLUSTER=redis: Cluster.ready (Redis reachable, this node a member); absent without a cluster. */
  readonly clusterReady?: () => boolean;
  readonly log: Log;
  /** Default: dist/build-info.json (loadBuildInfo). */
  readonly buildInfo?: BuildInfo;
}

/**
 * What an operator watches (issue 17 items 2 and 7): xmpp_build_info, who may
 * scrape /metrics and where, and the readiness checks.
 */
export function createMonitoring(deps: MonitoringDeps): Monitoring {
  const { config, registry, log } = deps;
  registerBuildInfo(registry, deps.buildInfo ?? loadBuildInfo());
  const allowed = createPeerFilter(config.metricsAllow);
  const metricsHttp = config.metricsPort === 0 ? undefined : createMetricsListener(registry, allowed);
  // A scrape runs the health check too: each worker's xmpp_ready is current, not as of its last probe.
  const gauges = readinessMetrics(registry, () => health());
  const readiness = createReadiness({
    ping: deps.ping, clusterReady: deps.clusterReady, maxEventLoopDelayMs: config.readyMaxEventLoopDelay, pingTimeoutMs: READY_STORAGE_TIMEOUT_MS,
    onChange: (reason) => {
      gauges.changed();
      if (reason) log.warn({ event: 'not-ready', reason }, 'not ready');
      else log.info({ event: 'ready' }, 'ready again');
    },
  });
  const health = (): Promise<NotReadyReason | undefined> => readiness.check().then((reason) => {
    gauges.ready(reason === undefined);
    return reason;
  });
  return {
    metricsHttp,
    metricsAllowed: metricsHttp ? undefined : allowed,
    health,
    async close() {
      readiness.stop();
      await metricsHttp?.close();
    },
  };
}

/** xmpp_ready and xmpp_readiness_changes_total: what the last health check said, and how often it flipped (alerts on flapping). */
function readinessMetrics(registry: Registry, check: () => Promise<unknown>): { ready(yes: boolean): void; changed(): void } {
  const ready = new Gauge({
    name: 'xmpp_ready', help: '1 when the /readyz health check (storage, event loop, Redis in a cluster), run at each probe and scrape, says ready, else 0', registers: [registry],
    // WORKERS > 1 (metrics/workers.ts): ready only if every worker is.
    aggregator: 'min',
    async collect() { await check(); },
  });
  const changes = new Counter({ name: 'xmpp_readiness_changes_total', help: 'Times the /readyz health check changed its answer', registers: [registry] });
  return { ready: (yes) => ready.set(yes ? 1 : 0), changed: () => changes.inc() };
}

/** /metrics on a listener of its own, so the ingress that routes PORT never reaches it. Nothing else is served there. */
function createMetricsListener(registry: Registry, allowed: PeerFilter): FastifyInstance {
  const metricsHttp = Fastify({ logger: false });
  registerMetricsRoute(metricsHttp, registry, allowed);
  return metricsHttp;
}

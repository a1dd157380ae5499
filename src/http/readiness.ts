import { performance } from 'node:perf_hooks';

/** Why /readyz says no, beyond starting and stopping ('redis': CLUSTER=redis, Redis unreachable or the node out of the cluster). */
export type NotReadyReason = 'storage' | 'event-loop-lag' | 'redis';

export interface ReadinessDeps {
  /** The store's trivial query (Storage.ping). */
  readonly ping: () => Promise<void>;
  /** READY_MAX_EVENT_LOOP_DELAY in ms; 0 disables the lag check. */
  readonly maxEventLoopDelayMs: number;
  /** How long the store may take to answer before it counts as down. */
  readonly pingTimeoutMs: number;
  /** CLUSTER=redis: whether Redis answers and this node is a member (Cluster.ready); absent without a cluster. */
  readonly clusterReady?: () => boolean;
  /** Called when the answer changes (a log line: readiness flapping is worth seeing). */
  readonly onChange?: (reason: NotReadyReason | undefined) => void;
}

export interface Readiness {
  /** undefined when ready, else why not. Concurrent calls share one check (one query however many probes). */
  check(): Promise<NotReadyReason | undefined>;
  /** Stops the event-loop delay sampler. */
  stop(): void;
}

/**
 * The health that /readyz adds to "listening and not shutting down" (issue 17
 * item 7): the store answers a trivial query in time, and the event loop has
 * not lagged past READY_MAX_EVENT_LOOP_DELAY since the previous check
 * (lagSampler; @fastify/under-pressure would also answer 503 on every route,
 * WebSocket upgrades and BOSH included). A lagging node is taken out of the load balancer's
 * rotation for new sessions, not killed: liveness stays on /healthz.
 */
export function createReadiness(deps: ReadinessDeps): Readiness {
  const lag = deps.maxEventLoopDelayMs > 0 ? lagSampler() : undefined;
  let running: Promise<NotReadyReason | undefined> | undefined;
  let last: NotReadyReason | undefined;
  const noted = (reason: NotReadyReason | undefined) => {
    if (reason !== last) deps.onChange?.(reason);
    last = reason;
    return reason;
  };

  async function run(): Promise<NotReadyReason | undefined> {
    // The worst delay since the last check; each check opens a new window.
    if (lag && lag.takeWorst() > deps.maxEventLoopDelayMs) return 'event-loop-lag';
    if (deps.clusterReady && !deps.clusterReady()) return 'redis';
    return (await answersWithin(deps.ping, deps.pingTimeoutMs)) ? undefined : 'storage';
  }

  return {
    check() {
      running ??= run().then(noted).finally(() => { running = undefined; });
      return running;
    },
    stop: () => lag?.stop(),
  };
}

async function answersWithin(ping: () => Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => { timer = setTimeout(resolve, ms, false).unref(); });
  try {
    return await Promise.race([ping().then(() => true, () => false), late]);
  } finally {
    clearTimeout(timer);
  }
}

const SAMPLE_MS = 100;

/**
 * The event loop's worst stall since the last takeWorst(), measured by how late
 * a 100 ms interval fires. Written by hand because Node 20's
 * monitorEventLoopDelay did not record a 500 ms synchronous stall at all in
 * our test (its timer measures from the loop's cached time).
 */
function lagSampler(): { takeWorst(): number; stop(): void } {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - SAMPLE_MS);
    last = now;
  }, SAMPLE_MS).unref();
  return {
    takeWorst() {
      // A stall still going on (the interval overdue) counts too, and only here:
      // the overdue interval then measures from now, or it would count it again.
      const now = performance.now();
      const ongoing = now - last - SAMPLE_MS;
      if (ongoing > 0) last = now - SAMPLE_MS;
      const current = Math.max(worst, ongoing);
      worst = 0;
      return current;
    },
    stop: () => clearInterval(timer),
  };
}

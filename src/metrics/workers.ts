/**
 * WORKERS=N: one /metrics for the whole process, not one per worker. The
 * workers share the listening port (and METRICS_PORT), so a scrape reaches
 * whichever worker accepts it; each answering with its own registry, every
 * series jumped between the workers' values from one scrape to the next
 * (counters seemed to reset, gauges to flap). Instead the worker that is
 * asked has the primary gather every worker's registry with prom-client's
 * AggregatorRegistry (over node:cluster's IPC, prom-client's own protocol)
 * and answers with the sum: counters, histograms and session gauges add up;
 * the few gauges where a sum means nothing say how they combine
 * (`aggregator`: xmpp_ready the minimum, xmpp_build_info the maximum).
 * The question and its answer go over ../worker-ipc.ts, as /readyz's do.
 * Outside a worker this is the registry's own text.
 */
import cluster from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { answerWorkers, askPrimary } from '../worker-ipc.js';

const KIND = 'metrics';
/** Longer than prom-client's own wait for the workers' answers (5 s), so its error is the one seen. */
const ANSWER_TIMEOUT_MS = 8000;

const sources = new WeakMap<Registry, () => Promise<string>>();

/** The text GET /metrics answers: this process's registry, or in a worker of WORKERS > 1 every worker's, summed. */
export function metricsText(registry: Registry): () => Promise<string> {
  let source = sources.get(registry);
  if (!source) sources.set(registry, (source = cluster.isWorker && process.send ? fromPrimary(registry) : () => registry.metrics()));
  return source;
}

function fromPrimary(registry: Registry): () => Promise<string> {
  // prom-client's listener in this worker (installed by constructing an AggregatorRegistry, at start, so
  // the primary hears from every worker) answers the primary with this registry's metrics.
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry();
  const ask = askPrimary<string>(KIND, ANSWER_TIMEOUT_MS);
  return () => ask().catch((err: unknown) => {
    throw new Error(`the workers' metrics could not be gathered: ${err instanceof Error ? err.message : String(err)}`);
  });
}

/** In the primary of WORKERS > 1: answers a worker's request with every worker's metrics, aggregated. */
export function serveWorkerMetrics(): void {
  const aggregator = new AggregatorRegistry();
  answerWorkers(KIND, () => aggregator.clusterMetrics());
}

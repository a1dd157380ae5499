/**
 * WORKERS=N: N processes serve one listening port, as node:cluster does
 * (each worker accepts on the shared socket, or with WORKERS_SCHEDULING=
 * round-robin the primary accepts and hands connections in turn), each a node of
 * the Redis cluster named `<NODE_ID>-w<i>`. The primary serves nothing: it
 * forks, restarts a worker that dies (same name, so the new one reads what
 * was addressed to the old one), passes SIGTERM/SIGINT on and exits once
 * every worker has (through `exit`: only main.ts ends the process).
 *
 * The signal goes to one worker at a time: each leaves as in a rolling
 * restart (roll.ts), its clients resuming on the workers still running (or
 * on other machines), and the last one, alone in the cluster, ends its
 * sessions and stores their queues offline as a single process does, so a
 * stopped machine strands nothing in Redis.
 */
import cluster from 'node:cluster';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { serveWorkerMetrics } from './metrics/workers.js';
import { serveMachineReadiness, type WorkerSlot } from './http/workers-readiness.js';
import { relayAdmissionCounts } from './workers-admission.js';

/** Smallest pause before a crashed worker is started again (a crash loop must not spin). */
const RESTART_DELAY_MS = 1000;

export interface WorkerPlan {
  readonly workers: number;
  readonly nodeId: string;
  /** Who accepts connections on the shared port: the workers themselves, or the primary handing them round-robin. */
  readonly workersScheduling: 'none' | 'round-robin';
}

/** The worker's NODE_ID: the configured one (or the host name) with the worker's index. */
export function workerNodeId(base: string, index: number): string {
  return `${base === '' ? hostname() : base}-w${index}`;
}

/** True in the primary of a WORKERS > 1 run: it forks and supervises, and must not serve. */
export function isSupervisor(plan: WorkerPlan): boolean {
  return plan.workers > 1 && cluster.isPrimary;
}

/** What the primary logs (main.ts gives it the pino logger's warn: one JSON line, like every other log line). */
export type SupervisorLog = (fields: Record<string, unknown>, message: string) => void;

/** Runs the primary: forks the workers and supervises them until they have all exited after a signal. */
export function supervise(plan: WorkerPlan, log: SupervisorLog, exit: (code: number) => void): void {
  let stopping = false;
  let exitCode = 0;
  const byWorker = new Map<number, number>();
  const fork = (index: number): void => {
    const worker = cluster.fork({ NODE_ID: workerNodeId(plan.nodeId, index), WORKERS: '1', WORKER_INDEX: String(index) });
    byWorker.set(worker.id, index);
  };
  cluster.on('exit', (worker, code, signal) => {
    const index = byWorker.get(worker.id)!;
    byWorker.delete(worker.id);
    if (stopping) {
      if (code !== 0) exitCode = 1;
      if (byWorker.size === 0) exit(exitCode);
      else signalNext();
      return;
    }
    log({ event: 'worker-restarted', worker: index, node: workerNodeId(plan.nodeId, index), code, signal }, `worker ${index} exited (${signal ?? `code ${code}`}); starting it again`);
    setTimeout(() => { if (!stopping) fork(index); }, RESTART_DELAY_MS).unref();
  });
  let stopSignal: NodeJS.Signals = 'SIGTERM';
  let forced = false;
  const signalNext = (): void => {
    for (const id of byWorker.keys()) {
      const worker = cluster.workers?.[id];
      if (!worker) continue;
      worker.process.kill(stopSignal);
      // Forced: one that was still starting (signal handlers not yet set: the signal ends it) may have missed the message.
      if (forced && worker.isConnected()) worker.send(FORCED_STOP);
      return;
    }
  };
  let stoppingSince = 0;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      // The same signal delivered twice (`npm start`: the terminal's Ctrl-C and npm's forwarding), not a second.
      if (performance.now() - stoppingSince < SAME_SIGNAL_MS) return;
      // The second signal (the second Ctrl-C): every worker ends at once (main.ts), saying what it left.
      forced = true;
      log({ event: 'shutdown-forced', signal }, `${signal} during the shutdown: every worker exits at once`);
      for (const id of byWorker.keys()) cluster.workers?.[id]?.send(FORCED_STOP);
      return;
    }
    stopping = true;
    stoppingSince = performance.now();
    stopSignal = signal;
    if (byWorker.size === 0) exit(0);
    else signalNext();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Set before the first fork (node:cluster reads it then). Node's default on Linux is round-robin: the
  // primary accepts each connection and passes its handle to a worker over IPC, which acknowledges it; that
  // cost 3.7 % of the gateway's CPU in the primary and 4 to 5 % in each worker during the bench's logins
  // (bench/RESULTS.md, "Cluster", s22-login). With SCHED_NONE the workers accept on the one socket.
  cluster.schedulingPolicy = plan.workersScheduling === 'none' ? cluster.SCHED_NONE : cluster.SCHED_RR;
  // A scrape reaches one worker: it asks here for every worker's metrics, summed (metrics/workers.ts).
  serveWorkerMetrics();
  // So does a probe: /readyz is ready only if every worker is (http/workers-readiness.ts).
  serveMachineReadiness(() => slots(plan, byWorker));
  // And a per-address session limit counts every worker's sessions (workers-admission.ts).
  relayAdmissionCounts();
  for (let i = 0; i < plan.workers; i++) fork(i);
}

/** The primary's word to its workers on a second signal (a signal would not do: see onForcedStop). */
const FORCED_STOP = { type: 'xwg:forced-stop' } as const;
/**
 * A second SIGTERM/SIGINT sooner than this after the first is the same one delivered twice, not an operator's
 * second: under `npm start` a terminal's Ctrl-C reaches the whole process group and npm forwards it as well
 * (@npmcli/run-script's signal manager). main.ts judges a single process's signals the same way.
 */
export const SAME_SIGNAL_MS = 500;

/** True in a worker of WORKERS > 1. */
export function isWorker(): boolean {
  return cluster.isWorker;
}

/**
 * In a worker: `force` runs when the primary got a second SIGTERM/SIGINT. A worker cannot tell that from its
 * own signals: the primary signals it, and a terminal's Ctrl-C signals the whole process group as well.
 */
export function onForcedStop(force: (signal: string) => void): void {
  if (!cluster.isWorker) return;
  process.on('message', (message: unknown) => {
    if ((message as { type?: unknown } | null)?.type === FORCED_STOP.type) force('forced by the primary');
  });
}

/** Each worker index with its process, if it has one now (not between an exit and its restart). */
function slots(plan: WorkerPlan, byWorker: ReadonlyMap<number, number>): WorkerSlot[] {
  const live = new Map([...byWorker].map(([id, index]) => [index, cluster.workers?.[id]]));
  return Array.from({ length: plan.workers }, (_, index) => ({ index, node: workerNodeId(plan.nodeId, index), worker: live.get(index) }));
}

/** What a worker's own listener serves: the app's HTTP routes (Fastify's `routing`). */
export interface Routable {
  routing(req: IncomingMessage, res: ServerResponse): void;
}

/**
 * In a worker of WORKERS > 1, the shared port reaches whichever worker
 * accepts first (or the primary's choice), not necessarily this one: a BOSH request another node forwards here
 * (src/cluster/bosh-forward.ts) needs an address of this worker's own. It
 * gets a listener of its own on 127.0.0.1 (`exclusive`: not shared through
 * the primary), serving the same routes; returns its base URL to
 * advertise, or undefined outside a worker or when CLUSTER_ADVERTISE_URL
 * is set (the operator's address wins).
 */
export async function listenOwnAddress(app: Routable, configuredUrl: string): Promise<{ url: string; close(): void } | undefined> {
  if (!cluster.isWorker || configuredUrl !== '') return undefined;
  const server = createServer((req, res) => app.routing(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => { server.close(); server.closeAllConnections(); } };
}

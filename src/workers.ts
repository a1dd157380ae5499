/**
 * WORKERS=N: N processes serve one listening port, as node:cluster does
 * (the primary accepts and hands connections round-robin), each a node of
 * the Redis cluster named `<NODE_ID>-w<i>`. The primary serves nothing: it
 * forks, restarts a worker that dies (same name, so the new one reads what
 * was addressed to the old one), passes SIGTERM/SIGINT on and exits once
 * every worker has (through `exit`: only main.ts ends the process): each
 * shuts down as a single process does.
 */
import cluster from 'node:cluster';
import { hostname } from 'node:os';

/** Smallest pause before a crashed worker is started again (a crash loop must not spin). */
const RESTART_DELAY_MS = 1000;

export interface WorkerPlan {
  readonly workers: number;
  readonly nodeId: string;
}

/** The worker's NODE_ID: the configured one (or the host name) with the worker's index. */
export function workerNodeId(base: string, index: number): string {
  return `${base === '' ? hostname() : base}-w${index}`;
}

/** True in the primary of a WORKERS > 1 run: it forks and supervises, and must not serve. */
export function isSupervisor(plan: WorkerPlan): boolean {
  return plan.workers > 1 && cluster.isPrimary;
}

/** Runs the primary: forks the workers and supervises them until they have all exited after a signal. */
export function supervise(plan: WorkerPlan, log: (line: string) => void, exit: (code: number) => void): void {
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
      return;
    }
    log(`worker ${index} exited (${signal ?? `code ${code}`}); starting it again`);
    setTimeout(() => { if (!stopping) fork(index); }, RESTART_DELAY_MS).unref();
  });
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    if (byWorker.size === 0) exit(0);
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  for (let i = 0; i < plan.workers; i++) fork(i);
}

/**
 * WORKERS=N: /readyz for the machine, not for whichever worker accepted the
 * probe. The workers share the port, so each probe reaches one of them; each
 * answering with its own readiness, a worker that lost Redis, was still
 * starting or was draining made the probes 200 or 503 at random, and a worker
 * that no longer accepted (hung, or draining with its listener closed) left
 * them all 200. Instead the worker asked has the primary gather every
 * worker's own answer (../worker-ipc.ts, as /metrics does) and answers 200
 * only if every worker is ready, listing each. A worker that does not answer
 * within WORKER_ANSWER_MS, or is not running (between a crash and its
 * restart), counts as not ready. Probes that arrive during a gathering share
 * it, in the worker and in the primary: one question per worker however many
 * probes come at once. /healthz stays each process's own.
 * Outside a worker /readyz is the process's own answer.
 */
import cluster, { type Worker } from 'node:cluster';
import { answerPrimary, answerWorkers, askPrimary, askWorkers } from '../worker-ipc.js';
import { READY_STORAGE_TIMEOUT_MS } from './monitoring.js';
import type { NotReadyReason } from './readiness.js';

/** Why a worker is not ready as the primary saw it: its own reason, or no answer from it, or no process. */
export type WorkerNotReadyReason = NotReadyReason | 'no-answer' | 'not-running';

/** /readyz's body for one process: `reason` is absent while starting or stopping. */
export interface ProcessReadiness {
  readonly status: 'ready' | 'not ready';
  readonly reason?: WorkerNotReadyReason;
}

/** One worker in /readyz's body with WORKERS > 1: its index, its NODE_ID and its own answer. */
export interface WorkerReadiness extends ProcessReadiness {
  readonly worker: number;
  readonly node: string;
}

/** /readyz's body: with WORKERS > 1, the machine's status and each worker's. */
export interface MachineReadiness extends ProcessReadiness {
  readonly workers?: readonly WorkerReadiness[];
}

/** A worker of the primary: its index, its NODE_ID, and its process unless it is between an exit and its restart. */
export interface WorkerSlot {
  readonly index: number;
  readonly node: string;
  readonly worker: Worker | undefined;
}

const GATHER = 'readiness';
const OWN = 'own-readiness';
// The primary waits this long for each worker: past the time the store has to answer, so a slow store is
// answered as 'storage', not as 'no-answer'.
const WORKER_ANSWER_MS = READY_STORAGE_TIMEOUT_MS + 500;
/** The longest /readyz takes with WORKERS > 1: the asked worker's wait for the primary's gathering. */
const READYZ_WORKERS_MAX_MS = WORKER_ANSWER_MS + 300;

/**
 * What GET /readyz answers: `own()`, or in a worker of WORKERS > 1 every worker's gathered by the primary
 * (this worker answers the primary with `own()`). Resolves, never rejects.
 */
export function machineReadiness(own: () => Promise<ProcessReadiness>): () => Promise<MachineReadiness> {
  if (!cluster.isWorker || !process.send) return own;
  answerPrimary(OWN, own);
  const ask = askPrimary<MachineReadiness>(GATHER, READYZ_WORKERS_MAX_MS);
  // Probes that arrive while one is being answered share its answer (as the process's own check is shared).
  let asking: Promise<MachineReadiness> | undefined;
  return () => {
    asking ??= ask().catch((): MachineReadiness => ({ status: 'not ready', reason: 'no-answer' })).finally(() => { asking = undefined; });
    return asking;
  };
}

/** In the primary of WORKERS > 1: answers a worker's /readyz with every worker's readiness. */
export function serveMachineReadiness(slots: () => readonly WorkerSlot[]): void {
  const ask = askWorkers<ProcessReadiness>(OWN, WORKER_ANSWER_MS);
  const ownOf = async (worker: Worker | undefined): Promise<ProcessReadiness> => {
    if (!worker) return { status: 'not ready', reason: 'not-running' };
    return (await ask(worker)) ?? { status: 'not ready', reason: 'no-answer' };
  };
  const gather = async (): Promise<MachineReadiness> => {
    const workers = await Promise.all(slots().map(async (slot): Promise<WorkerReadiness> => {
      const { status, reason } = await ownOf(slot.worker);
      return { worker: slot.index, node: slot.node, status, ...(reason === undefined ? {} : { reason }) };
    }));
    return { status: workers.every((w) => w.status === 'ready') ? 'ready' : 'not ready', workers };
  };
  // Every worker's probes while a gathering runs share it: one question per worker, not one per probe and worker.
  let gathering: Promise<MachineReadiness> | undefined;
  answerWorkers(GATHER, () => {
    gathering ??= gather().finally(() => { gathering = undefined; });
    return gathering;
  });
}

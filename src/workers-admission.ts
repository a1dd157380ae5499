/**
 * WORKERS=N: the per-address session counts (MAX_CONNECTIONS_PER_IP) for the whole machine. Each worker admits
 * on its own, synchronously, as before; it also reports its open count of an address to the primary whenever it
 * changes, and the primary relays it to the other workers, which add it to their own. Without this, N workers
 * let one address open N times the limit. A worker that exits counts nothing any more; one that starts asks
 * for what the others have open. Several workers admitting the same address within the time a message takes
 * (well under a millisecond between processes) may still let it past the limit by those few.
 */
import cluster from 'node:cluster';
import type { AdmissionShare } from './transports/admission.js';

const COUNT = 'xwg:admission-count';
const HELLO = 'xwg:admission-hello';

interface Count { readonly type: typeof COUNT; readonly key: string; readonly open: number; readonly worker?: number }
const isCount = (m: unknown): m is Count => (m as Partial<Count> | null)?.type === COUNT && typeof (m as Count).key === 'string';
const isHello = (m: unknown): boolean => (m as { type?: unknown } | null)?.type === HELLO;

/** In a worker of WORKERS > 1: the share Admission reports to and reads from; undefined elsewhere. */
export function workerAdmissionShare(): AdmissionShare | undefined {
  if (!cluster.isWorker) return undefined;
  /** Address key → the other workers' open counts, by worker id. */
  const others = new Map<string, Map<number, number>>();
  process.on('message', (m: unknown) => {
    if (!isCount(m) || m.worker === undefined) return;
    let counts = others.get(m.key);
    if (m.open > 0) {
      if (!counts) others.set(m.key, (counts = new Map()));
      counts.set(m.worker, m.open);
    } else if (counts) {
      counts.delete(m.worker);
      if (counts.size === 0) others.delete(m.key);
    }
  });
  const send = (m: unknown): void => { if (process.connected) process.send!(m); };
  send({ type: HELLO });
  return {
    report: (key, open) => send({ type: COUNT, key, open } satisfies Count),
    elsewhere(key) {
      let sum = 0;
      for (const n of others.get(key)?.values() ?? []) sum += n;
      return sum;
    },
  };
}

/** In the primary: relays each worker's counts to the others, the current ones to a worker starting, and zeros for one that exited. */
export function relayAdmissionCounts(): void {
  /** Worker id → its non-zero counts by address key. */
  const byWorker = new Map<number, Map<string, number>>();
  const toOthers = (from: number, key: string, open: number): void => {
    for (const w of Object.values(cluster.workers ?? {})) {
      if (w && w.id !== from && w.isConnected()) w.send({ type: COUNT, key, open, worker: from } satisfies Count);
    }
  };
  cluster.on('message', (worker, m: unknown) => {
    if (isHello(m)) {
      for (const [id, counts] of byWorker) {
        if (id === worker.id) continue;
        for (const [key, open] of counts) if (worker.isConnected()) worker.send({ type: COUNT, key, open, worker: id } satisfies Count);
      }
      return;
    }
    if (!isCount(m)) return;
    let counts = byWorker.get(worker.id);
    if (m.open > 0) {
      if (!counts) byWorker.set(worker.id, (counts = new Map()));
      counts.set(m.key, m.open);
    } else {
      counts?.delete(m.key);
    }
    toOthers(worker.id, m.key, m.open);
  });
  cluster.on('exit', (worker) => {
    const counts = byWorker.get(worker.id);
    byWorker.delete(worker.id);
    for (const key of counts?.keys() ?? []) toOthers(worker.id, key, 0);
  });
}

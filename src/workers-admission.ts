/**
 * WORKERS=N: the per-address session counts (MAX_CONNECTIONS_PER_IP, BOSH_MAX_SESSIONS_PER_IP,
 * MAX_UNAUTHENTICATED_PER_IP) for the whole machine. Each worker admits on its own, synchronously, as before; it
 * also reports its counts of an address to the primary whenever they change (a session opens, ends or
 * authenticates), and the primary relays them to the other workers, which add them to their own. Without this,
 * N workers let one address open N times the limit. A worker that exits counts nothing any more; one that starts
 * asks for what the others have open. Several workers admitting the same address within the time a message takes
 * (well under a millisecond between processes) may still let it past the limit by those few.
 *
 * The new-session rate (NEW_CONNECTIONS_PER_IP_PER_SECOND, NEW_CONNECTIONS_BURST_PER_IP) likewise: each worker
 * keeps the whole token bucket of an address, and the tokens it takes go to the others (batched per turn of its
 * event loop), which take them from theirs (docs/ARCHITECTURE.md says why not rate/N per worker).
 */
import cluster from 'node:cluster';
import { NO_SESSIONS, type AddressCounts, type AdmissionShare } from './transports/admission.js';

const COUNT = 'xwg:admission-count';
const HELLO = 'xwg:admission-hello';
const TAKEN = 'xwg:admission-taken';

interface Count extends AddressCounts { readonly type: typeof COUNT; readonly key: string; readonly worker?: number }
const isCount = (m: unknown): m is Count => (m as Partial<Count> | null)?.type === COUNT && typeof (m as Count).key === 'string';
const countsOf = (m: Count): AddressCounts => ({ open: m.open, bosh: m.bosh, unauthenticated: m.unauthenticated });
const isHello = (m: unknown): boolean => (m as { type?: unknown } | null)?.type === HELLO;
/** Tokens of the new-session rate a worker took, by address key, in one turn of its event loop. */
interface Taken { readonly type: typeof TAKEN; readonly takes: ReadonlyArray<readonly [string, number]> }
const isTaken = (m: unknown): m is Taken => (m as Partial<Taken> | null)?.type === TAKEN && Array.isArray((m as Taken).takes);

/** In a worker of WORKERS > 1: the share Admission reports to and reads from; undefined elsewhere. */
export function workerAdmissionShare(): AdmissionShare | undefined {
  if (!cluster.isWorker) return undefined;
  /** Address key → the other workers' open counts, by worker id. */
  const others = new Map<string, Map<number, AddressCounts>>();
  process.on('message', (m: unknown) => {
    if (!isCount(m) || m.worker === undefined) return;
    let counts = others.get(m.key);
    if (m.open > 0) {
      if (!counts) others.set(m.key, (counts = new Map()));
      counts.set(m.worker, countsOf(m));
    } else if (counts) {
      counts.delete(m.worker);
      if (counts.size === 0) others.delete(m.key);
    }
  });
  const send = (m: unknown): void => { if (process.connected) process.send!(m); };
  send({ type: HELLO });
  // The tokens taken in one turn go in one message (a burst of requests in one turn, one message).
  const taken = new Map<string, number>();
  const flush = (): void => {
    send({ type: TAKEN, takes: [...taken] } satisfies Taken);
    taken.clear();
  };
  return {
    report: (key, c) => send({ type: COUNT, key, ...c } satisfies Count),
    took(key) {
      if (taken.size === 0) setImmediate(flush);
      taken.set(key, (taken.get(key) ?? 0) + 1);
    },
    onTaken(debit) {
      process.on('message', (m: unknown) => {
        if (!isTaken(m)) return;
        for (const [key, n] of m.takes) if (typeof key === 'string' && typeof n === 'number') debit(key, n);
      });
    },
    elsewhere(key) {
      const those = others.get(key);
      if (those === undefined) return NO_SESSIONS;
      let open = 0;
      let bosh = 0;
      let unauthenticated = 0;
      for (const c of those.values()) {
        open += c.open;
        bosh += c.bosh;
        unauthenticated += c.unauthenticated;
      }
      return { open, bosh, unauthenticated };
    },
  };
}

/** In the primary: relays each worker's counts to the others, the current ones to a worker starting, and zeros for one that exited. */
export function relayAdmissionCounts(): void {
  /** Worker id → its non-zero counts by address key. */
  const byWorker = new Map<number, Map<string, AddressCounts>>();
  const toOthers = (from: number, key: string, c: AddressCounts): void => {
    for (const w of Object.values(cluster.workers ?? {})) {
      if (w && w.id !== from && w.isConnected()) w.send({ type: COUNT, key, ...c, worker: from } satisfies Count);
    }
  };
  cluster.on('message', (worker, m: unknown) => {
    if (isTaken(m)) {
      for (const w of Object.values(cluster.workers ?? {})) if (w && w.id !== worker.id && w.isConnected()) w.send(m);
      return;
    }
    if (isHello(m)) {
      for (const [id, counts] of byWorker) {
        if (id === worker.id) continue;
        for (const [key, c] of counts) if (worker.isConnected()) worker.send({ type: COUNT, key, ...c, worker: id } satisfies Count);
      }
      return;
    }
    if (!isCount(m)) return;
    let counts = byWorker.get(worker.id);
    if (m.open > 0) {
      if (!counts) byWorker.set(worker.id, (counts = new Map()));
      counts.set(m.key, countsOf(m));
    } else {
      counts?.delete(m.key);
    }
    toOthers(worker.id, m.key, countsOf(m));
  });
  cluster.on('exit', (worker) => {
    const counts = byWorker.get(worker.id);
    byWorker.delete(worker.id);
    for (const key of counts?.keys() ?? []) toOthers(worker.id, key, NO_SESSIONS);
  });
}

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
 * keeps the whole token bucket of an address, and the tokens it takes go to the others, which take them from
 * theirs (docs/ARCHITECTURE.md says why not rate/N per worker).
 *
 * What changed within FLUSH_MS in a worker goes in one message (each address's counts read once, when it is sent,
 * with the tokens taken), and the primary relays it as one: logins from one address (a NAT, a proxy, the
 * benchmark, whose clients are all 127.0.0.1) cost a message per FLUSH_MS, not one per session opened, ended or
 * authenticated, each recounting the address's sessions. The other workers learn of a change that much later, so
 * a burst across workers within it may pass a limit by the sessions it admits meanwhile, as within one IPC hop.
 */
import cluster from 'node:cluster';
import { NO_SESSIONS, type AddressCounts, type AdmissionShare } from './transports/admission.js';

const CHANGES = 'xwg:admission-changes';
/** How long a worker gathers its changes before it sends them (one message per this, at most). */
const FLUSH_MS = 10;
const HELLO = 'xwg:admission-hello';

/**
 * What one worker's turn changed: its counts by address key (all zero: none open any more) and the tokens of the
 * new-session rate it took by address key. The primary adds `worker` when it relays it.
 */
interface Changes {
  readonly type: typeof CHANGES;
  readonly counts: ReadonlyArray<readonly [string, AddressCounts]>;
  readonly takes: ReadonlyArray<readonly [string, number]>;
  readonly worker?: number;
}
const isChanges = (m: unknown): m is Changes =>
  (m as Partial<Changes> | null)?.type === CHANGES && Array.isArray((m as Changes).counts) && Array.isArray((m as Changes).takes);
const countsOf = (c: AddressCounts): AddressCounts => ({ open: c.open, bosh: c.bosh, unauthenticated: c.unauthenticated });
const isHello = (m: unknown): boolean => (m as { type?: unknown } | null)?.type === HELLO;

/** In a worker of WORKERS > 1: the share Admission reports to and reads from; undefined elsewhere. */
export function workerAdmissionShare(): AdmissionShare | undefined {
  if (!cluster.isWorker) return undefined;
  /** Address key → the other workers' open counts, by worker id. */
  const others = new Map<string, Map<number, AddressCounts>>();
  let debits: ((key: string, n: number) => void) | undefined;
  process.on('message', (m: unknown) => {
    if (!isChanges(m) || m.worker === undefined) return;
    for (const [key, c] of m.counts) {
      if (typeof key !== 'string') continue;
      let counts = others.get(key);
      if (c.open > 0) {
        if (!counts) others.set(key, (counts = new Map()));
        counts.set(m.worker, countsOf(c));
      } else if (counts) {
        counts.delete(m.worker);
        if (counts.size === 0) others.delete(key);
      }
    }
    if (debits) for (const [key, n] of m.takes) if (typeof key === 'string' && typeof n === 'number') debits(key, n);
  });
  const send = (m: unknown): void => { if (process.connected) process.send!(m); };
  send({ type: HELLO });
  // What changed since the last message: sent FLUSH_MS after the first of it.
  const changed = new Map<string, () => AddressCounts>();
  const taken = new Map<string, number>();
  const flush = (): void => {
    const counts = [...changed].map(([key, read]) => [key, read()] as const);
    send({ type: CHANGES, counts, takes: [...taken] } satisfies Changes);
    changed.clear();
    taken.clear();
  };
  const pending = (): void => { if (changed.size === 0 && taken.size === 0) setTimeout(flush, FLUSH_MS).unref(); };
  return {
    report(key, counts) {
      pending();
      changed.set(key, counts);
    },
    took(key) {
      pending();
      taken.set(key, (taken.get(key) ?? 0) + 1);
    },
    onTaken(debit) { debits = debit; },
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

/** In the primary: relays each worker's changes to the others, the current counts to a worker starting, and zeros for one that exited. */
export function relayAdmissionCounts(): void {
  /** Worker id → its non-zero counts by address key. */
  const byWorker = new Map<number, Map<string, AddressCounts>>();
  const toOthers = (from: number, m: Changes): void => {
    const relayed = { type: CHANGES, counts: m.counts, takes: m.takes, worker: from } satisfies Changes;
    for (const w of Object.values(cluster.workers ?? {})) if (w && w.id !== from && w.isConnected()) w.send(relayed);
  };
  cluster.on('message', (worker, m: unknown) => {
    if (isHello(m)) {
      for (const [id, counts] of byWorker) {
        if (id !== worker.id && worker.isConnected()) worker.send({ type: CHANGES, counts: [...counts], takes: [], worker: id } satisfies Changes);
      }
      return;
    }
    if (!isChanges(m)) return;
    let counts = byWorker.get(worker.id);
    for (const [key, c] of m.counts) {
      if (c.open > 0) {
        if (!counts) byWorker.set(worker.id, (counts = new Map()));
        counts.set(key, countsOf(c));
      } else {
        counts?.delete(key);
      }
    }
    toOthers(worker.id, m);
  });
  cluster.on('exit', (worker) => {
    const counts = byWorker.get(worker.id);
    byWorker.delete(worker.id);
    if (counts) toOthers(worker.id, { type: CHANGES, counts: [...counts.keys()].map((key) => [key, NO_SESSIONS] as const), takes: [] });
  });
}

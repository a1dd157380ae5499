import type { Storage } from './storage/index.js';
import type { ModuleContext } from './xmpp/context.js';
import { storable } from './xmpp/features/offline/index.js';
import { PRIORITY } from './xmpp/priorities.js';

/** Longest run of offline writes in one event-loop turn while shutting down (ms). */
const WRITE_SLICE_MS = 10;

/** Where a shutdown stands: what main.ts logs when it ends, or when SHUTDOWN_TIMEOUT cuts it short. */
export interface ShutdownProgress {
  /** Offline writes (XEP-0160) completed since the shutdown began. */
  readonly offlineStored: number;
  /**
   * Messages handed to offline storage since the shutdown began (stream
   * management queues, transport backlogs, messages in flight) whose write
   * has not completed: lost if the process exits now. An upper bound: a
   * message for an account that does not exist (a throw-away anonymous one)
   * is bounced without a write. 0 once the shutdown has finished.
   */
  readonly offlineUnfinished: number;
}

export interface ShutdownLedger {
  /** `storage` with its offline writes counted and, once the shutdown began, spread over event-loop turns. */
  readonly storage: Storage;
  /** Counts the messages routed for storage from `ctx` on (call once the core exists). */
  watch(ctx: ModuleContext): void;
  /** The shutdown begins: count from here, and let timers run between writes. */
  begin(): void;
  /** Every write has finished (the offline flush resolved). */
  end(): void;
  progress(): ShutdownProgress;
}

/**
 * Keeps a SIGTERM shutdown bounded and accounted for. Closing every
 * session hands their unacknowledged messages (XEP-0198 §5) to offline
 * storage, and better-sqlite3 writes synchronously in a chain of promise
 * callbacks: without a break, the whole chain runs in one turn and the
 * SHUTDOWN_TIMEOUT timer in main.ts cannot fire until it is done, however
 * long that takes. Here each write first yields to the event loop once
 * WRITE_SLICE_MS have passed since the last yield, and the ledger counts
 * what was handed over and what is written, so the timeout can say how
 * many accepted messages it is leaving behind.
 */
export function createShutdownLedger(inner: Storage): ShutdownLedger {
  let draining = false;
  let ended = false;
  let routed = 0;
  let inFlightAtBegin = 0;
  let started = 0;
  let settled = 0;
  let settledAtBegin = 0;
  let sliceStart = 0;

  async function turn(): Promise<void> {
    if (performance.now() - sliceStart < WRITE_SLICE_MS) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
    sliceStart = performance.now();
  }

  async function push(...args: Parameters<Storage['offline']['push']>): Promise<boolean> {
    started++;
    try {
      if (draining) await turn();
      return await inner.offline.push(...args);
    } finally {
      settled++;
    }
  }
  // Proxies, not copies: everything but offline.push reaches the store as it is at the time of
  // the call, so nothing that replaces a method later (a test's spy, say) is bypassed.
  const offline = new Proxy(inner.offline, {
    get: (target, prop, receiver) => (prop === 'push' ? push : Reflect.get(target, prop, receiver)),
  });
  const storage = new Proxy(inner, {
    get: (target, prop, receiver) => (prop === 'offline' ? offline : Reflect.get(target, prop, receiver)),
  });

  return {
    storage,
    watch(ctx) {
      // What passes every filter goes to delivery, and at shutdown to offline storage (offline/index.ts).
      // A message its recipient refuses (XEP-0191, RouteEvent.refusedByRecipient) passes the filters but is never stored.
      ctx.hooks.filter('message/bare', ({ stanza, refusedByRecipient }) => {
        if (draining && !refusedByRecipient && storable(stanza)) routed++;
      }, PRIORITY.route.observe);
    },
    begin() {
      draining = true;
      inFlightAtBegin = started - settled;
      settledAtBegin = settled;
      sliceStart = performance.now();
    },
    end() { ended = true; },
    progress() {
      const done = settled - settledAtBegin;
      return { offlineStored: done, offlineUnfinished: ended ? 0 : Math.max(0, routed + inFlightAtBegin - done) };
    },
  };
}

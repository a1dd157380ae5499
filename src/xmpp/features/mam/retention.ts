import type { ArchiveStore } from '../../../storage/ports/archive.js';
import type { Log } from '../../log.js';

/** Messages one delete statement removes at most; the sweep yields to the event loop between statements. */
export const SWEEP_BATCH = 1000;
/** Statements one sweep runs at most: what is left waits for the next sweep. */
const MAX_ROUNDS = 100;
/** Accounts remembered for trimming between sweeps (the rest are trimmed after their next message). */
const MAX_TOUCHED = 100_000;

export interface RetentionOptions {
  /** 0: keep for ever. */
  readonly retentionDays: number;
  /** 0: no limit. */
  readonly maxMessagesPerUser: number;
  readonly sweepIntervalSeconds: number;
}

export interface Retention {
  /** The account got new messages: its size is checked at the next sweep. */
  /** The bare JID of an account written to. */
  touched(bare: string): void;
  /** One sweep now (tests, and the timer); resolves with how many messages it deleted. */
  sweep(): Promise<number>;
  dispose(): void;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * MAM_RETENTION_DAYS and MAM_MAX_MESSAGES_PER_USER, enforced by a
 * periodic sweep in bounded steps (SWEEP_BATCH rows per statement, one
 * statement per event-loop turn, MAX_ROUNDS per sweep), so a large backlog
 * never stalls the server; only accounts that received messages since the
 * last sweep are trimmed. A sweep never overlaps the previous one.
 */
export function createRetention(archive: ArchiveStore, opts: RetentionOptions, log: Log, now: () => number): Retention {
  const touched = new Set<string>();
  let running: Promise<number> | undefined;

  async function run(): Promise<number> {
    let deleted = 0;
    let rounds = 0;
    if (opts.retentionDays > 0) {
      const before = now() - opts.retentionDays * 86_400_000;
      // Archive order is time order: once the oldest rows are not all expired, nothing further is.
      for (let n = SWEEP_BATCH; n === SWEEP_BATCH && rounds < MAX_ROUNDS; rounds++) {
        n = await archive.expire(before, SWEEP_BATCH);
        deleted += n;
        await turn();
      }
    }
    if (opts.maxMessagesPerUser > 0) {
      for (const key of [...touched]) {
        if (rounds++ >= MAX_ROUNDS) break;
        touched.delete(key);
        const at = key.indexOf('@');
        const username = key.slice(0, at);
        const host = key.slice(at + 1);
        const n = await archive.trim(host, username, opts.maxMessagesPerUser, SWEEP_BATCH);
        deleted += n;
        // Not done with this account: it stays for the next sweep.
        if (n === SWEEP_BATCH) touched.add(key);
        await turn();
      }
    }
    return deleted;
  }

  const sweep = (): Promise<number> => {
    running ??= run().finally(() => { running = undefined; });
    return running;
  };
  const timer = setInterval(() => {
    sweep().catch((err: unknown) => log.warn({ err }, 'message archive: the retention sweep failed'));
  }, opts.sweepIntervalSeconds * 1000);
  timer.unref();

  return {
    touched(bare) {
      if (opts.maxMessagesPerUser > 0 && touched.size < MAX_TOUCHED) touched.add(bare);
    },
    sweep,
    dispose: () => clearInterval(timer),
  };
}

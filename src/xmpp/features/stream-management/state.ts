import { SmQueue } from './queue.js';
import { PendingQueue } from './pending.js';
import type { SmOptions, SmState } from './index.js';

/** A new session's SM state (<enable/>); a takeover (takeover.ts) brings the counters it had on another node. */
export function newState(opts: SmOptions, smid: string | undefined, max: number, counterOut = 0, counterIn = 0): SmState {
  return {
    queue: new SmQueue(counterOut), pending: new PendingQueue(opts.pending_max_bytes), ackTimer: undefined,
    counter_in: counterIn, buffer_max: opts.buffer_max, ack_freq: opts.ack_freq,
    peer: undefined, smid, max, hibernation: undefined, hibernatedAt: 0, sinceRequest: 0,
  };
}

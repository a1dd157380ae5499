/** Deliveries (or items looked at) in one event-loop turn before a fan-out yields. */
export const FANOUT_BATCH = 100;

/** A fan-out as a generator: after each step it yields how many deliveries (or items looked at) that was. */
export type Fanout = Generator<number, void, unknown>;

/**
 * Runs a fan-out (a broadcast to a large roster, pushes to many resources)
 * synchronously, exactly as a plain loop would, until FANOUT_BATCH
 * deliveries are done; then the rest goes on after setImmediate (pending
 * I/O and timers, i.e. every other session, first), batch by batch, so one
 * session's roster cannot stall every other session. Returns undefined
 * when it finished without yielding, else a promise: the handler returns it
 * and the core holds the session's later stanzas until it settles, so
 * none overtakes the fan-out (RFC 6120 §10.1).
 */
export function drive(work: Fanout): Promise<void> | undefined {
  let count = 0;
  for (let step = work.next(); step.done !== true; step = work.next()) {
    count += step.value;
    if (count < FANOUT_BATCH) continue;
    return new Promise<void>((resolve) => setImmediate(resolve)).then(() => drive(work));
  }
  return undefined;
}

import type { UserStore } from '../../src/storage/ports/accounts.js';
import { deferred } from './deferred.js';

type ChangesSince = UserStore['changesSince'];

/**
 * Holds the server's reading of the account change log (account-changes.ts
 * polls `users.changesSince` every 500 ms) until `release()`: what a test
 * does meanwhile (a change, then a login) all comes before the server reads
 * the change, however slow the machine, where racing the next poll did not.
 * A reading already under way finishes with what was there before the hold.
 * `users` must be the store object the server was given (withServer's).
 */
export function holdChangeLog(users: { changesSince: ChangesSince }): {
  held: Promise<void>; release(): Promise<void>; open(): Promise<void>;
} {
  const original = users.changesSince;
  let open: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => { open = resolve; });
  const { promise: held, resolve: waiting } = deferred();
  const { promise: settled, resolve: ended } = deferred();
  let read = false;
  const { promise: acted, resolve: next } = deferred();
  users.changesSince = async (cursor) => {
    // The server reads again only once it has acted on the last reading (one poll at a time).
    if (read) next();
    waiting();
    await gate;
    try {
      const changes = await original.call(users, cursor);
      read = true;
      return changes;
    } finally {
      ended();
    }
  };
  return {
    /** Resolves once a reading of the server waits for the hold to end. */
    held,
    /** Lets the held reading go on; resolves once the server has acted on what it read (its next reading began). */
    async release() {
      open();
      await acted;
      users.changesSince = original;
    },
    /** Lets the held reading go on; resolves once it has returned or failed (for a server that reads no more: disposed). */
    async open() {
      users.changesSince = original;
      open();
      await settled;
    },
  };
}

/**
 * Holds what the next call of `obj[method]` that `match`es (its result and arguments) returns, after the
 * call itself ran: a login that read the store (its account, its FAST token) just before a change, and
 * completes only after the server has acted on the change; or a reading of the change log that has the
 * change, acted on only after the server's end. `ran` resolves once the call has run; `release()` lets its
 * result go (and puts the method back). Other calls go through.
 */
export function holdResult<K extends string, O extends Record<K, (...args: never[]) => Promise<unknown>>>(
  obj: O, method: K, match: (result: Awaited<ReturnType<O[K]>>, args: Parameters<O[K]>) => boolean = () => true,
): { ran: Promise<void>; release(): void } {
  const original = obj[method];
  let open: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => { open = resolve; });
  const { promise: ran, resolve: done } = deferred();
  let taken = false;
  obj[method] = (async (...args: Parameters<O[K]>) => {
    const result = await original.apply(obj, args) as Awaited<ReturnType<O[K]>>;
    if (taken || !match(result, args)) return result;
    taken = true;
    done();
    await gate;
    return result;
  }) as O[K];
  return {
    ran,
    release() {
      obj[method] = original;
      open();
    },
  };
}

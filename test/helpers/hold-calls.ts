import { deferred } from './deferred.js';

/**
 * Holds every call of one storage port method (`port[method]`, a method that
 * returns a promise) until `release()`, as a slow store would: the session
 * whose stanza made the call waits for it in its queue, and so does what it
 * sent after that stanza (its stream close too). `entered` resolves once the
 * first call arrived. `port` must be the store object the server was given
 * (withServer's), as for holdChangeLog; the method is put back at release.
 */
export function holdCalls<M extends string>(port: Record<M, unknown>, method: M): { readonly entered: Promise<void>; release(): void } {
  const original = port[method] as (...args: unknown[]) => Promise<unknown>;
  const { promise: gate, resolve: open } = deferred();
  const { promise: entered, resolve: arrived } = deferred();
  port[method] = (async (...args: unknown[]) => {
    arrived();
    await gate;
    return original.apply(port, args);
  });
  return {
    entered,
    release() {
      port[method] = original;
      open();
    },
  };
}

/**
 * Typed events with priorities, after Prosody's module events: handlers run
 * from the highest priority down; a handler that returns `true` has handled
 * (or vetoed) the event and stops the chain. Handlers are synchronous so the
 * stanza hot path never allocates a promise; a handler that needs I/O starts
 * it itself and returns `true`.
 */
export type HookHandler<P> = (payload: P) => boolean | void;

interface Entry<P> { readonly handler: HookHandler<P>; readonly priority: number }

export class Hooks<Events extends object> {
  readonly #handlers = new Map<keyof Events, Entry<never>[]>();

  /** Adds a handler; returns a function that removes it. */
  on<K extends keyof Events>(name: K, handler: HookHandler<Events[K]>, priority = 0): () => void {
    const list = (this.#handlers.get(name) ?? []) as Entry<Events[K]>[];
    const entry: Entry<Events[K]> = { handler, priority };
    // Stable: equal priorities keep registration order.
    const at = list.findIndex((e) => e.priority < priority);
    if (at === -1) list.push(entry); else list.splice(at, 0, entry);
    this.#handlers.set(name, list as Entry<never>[]);
    return () => {
      const i = list.indexOf(entry);
      if (i !== -1) list.splice(i, 1);
    };
  }

  /** Runs the handlers in priority order; true when one of them handled the event. */
  fire<K extends keyof Events>(name: K, payload: Events[K]): boolean {
    const list = this.#handlers.get(name) as Entry<Events[K]>[] | undefined;
    if (list === undefined) return false;
    for (let i = 0; i < list.length; i++) {
      if (list[i]!.handler(payload) === true) return true;
    }
    return false;
  }

  has<K extends keyof Events>(name: K): boolean {
    return (this.#handlers.get(name)?.length ?? 0) > 0;
  }
}

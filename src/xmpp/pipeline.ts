import type { StanzaErrorCondition, StanzaErrorType } from './errors.js';

/**
 * The phases of every event, in the order they run (Fastify's idea: the
 * name says what a handler may do):
 * - `filter` may stop the event: drop it silently, or veto it with a typed
 *   stanza error that the caller sends back;
 * - `transform` changes the payload (and may do async work first);
 * - `deliver` handlers are tried in turn until one says `'delivered'`;
 * - `notify` handlers all observe what happened.
 * Within a phase, higher priorities run first (priorities.ts names them all).
 */
export type Phase = 'filter' | 'transform' | 'deliver' | 'notify';

/** A filter's typed veto: the event stops, and the stanza's sender gets this error. */
export interface Veto {
  readonly veto: StanzaErrorCondition;
  readonly text?: string;
  /** Extra children for the <error/> (XEP-0191's <blocked/>). */
  readonly appCondition?: import('../xml/index.js').XmlElement;
  /** The <error/>'s type when not the condition's usual one (RFC 6120 §8.3.2; XEP-0191's <blocked/> is 'cancel'). */
  readonly errorType?: StanzaErrorType;
}

/** What a filter says: pass (nothing), drop the event silently, or veto it. */
export type FilterResult = void | 'drop' | Veto;
export type DeliverResult = void | 'delivered';

/** What became of an event: 'undelivered' when no deliver handler took it (the caller's default applies). */
export type Outcome = 'delivered' | 'undelivered' | 'dropped' | Veto;

type Maybe<T> = T | Promise<T>;
export type FilterHandler<P> = (payload: P) => Maybe<FilterResult>;
export type TransformHandler<P> = (payload: P) => Maybe<void>;
export type DeliverHandler<P> = (payload: P) => Maybe<DeliverResult>;
export type NotifyHandler<P> = (payload: P) => Maybe<void>;
type AnyHandler<P> = FilterHandler<P> | TransformHandler<P> | DeliverHandler<P> | NotifyHandler<P>;

const PHASE_ORDER: Readonly<Record<Phase, number>> = { filter: 0, transform: 1, deliver: 2, notify: 3 };

interface Entry<P> { readonly phase: Phase; readonly handler: AnyHandler<P>; readonly priority: number }

export function veto(condition: StanzaErrorCondition, text?: string, appCondition?: Veto['appCondition'], errorType?: StanzaErrorType): Veto {
  return { veto: condition, text, appCondition, errorType };
}

export function isVeto(outcome: Outcome): outcome is Veto {
  return typeof outcome === 'object' && outcome !== null;
}

/** A thenable: what tells the pipeline (and the core's queues) that a handler went async. */
export function isPromise<T>(v: unknown): v is Promise<T> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/** A deliver handler's answer for work it did: 'delivered', once that work is done when it is async. */
export function delivered(work: unknown): DeliverResult | Promise<DeliverResult> {
  return isPromise(work) ? work.then(() => 'delivered' as const) : 'delivered';
}

/**
 * Typed events run as a phased pipeline, after Prosody's module events and
 * xmpp.js's async middleware. Handlers may return promises: the pipeline
 * then awaits each in order and `run` returns a promise. When no handler
 * on the path returns one, `run` stays synchronous and allocates no promise
 * (the stanza hot path). Ordering across stanzas is the caller's: the core
 * does not start a session's next stanza before this one's run settles.
 */
export class Pipeline<Events extends object> {
  readonly #handlers = new Map<keyof Events, Entry<never>[]>();

  filter<K extends keyof Events>(name: K, handler: FilterHandler<Events[K]>, priority: number): () => void {
    return this.#add(name, 'filter', handler, priority);
  }

  transform<K extends keyof Events>(name: K, handler: TransformHandler<Events[K]>, priority: number): () => void {
    return this.#add(name, 'transform', handler, priority);
  }

  deliver<K extends keyof Events>(name: K, handler: DeliverHandler<Events[K]>, priority: number): () => void {
    return this.#add(name, 'deliver', handler, priority);
  }

  notify<K extends keyof Events>(name: K, handler: NotifyHandler<Events[K]>, priority: number): () => void {
    return this.#add(name, 'notify', handler, priority);
  }

  has<K extends keyof Events>(name: K): boolean {
    return (this.#handlers.get(name)?.length ?? 0) > 0;
  }

  /** Runs the event's handlers, phase by phase; synchronous unless a handler returned a promise. */
  run<K extends keyof Events>(name: K, payload: Events[K]): Outcome | Promise<Outcome> {
    const list = this.#handlers.get(name) as Entry<Events[K]>[] | undefined;
    if (list === undefined) return 'undelivered';
    return step(list, 0, payload, 'undelivered');
  }

  /**
   * Runs what comes after `handler` in the event's pipeline: for a filter
   * that held the payload back (client state indication holds presence)
   * and now lets it go on, without running itself or the earlier handlers again.
   */
  resume<K extends keyof Events>(name: K, payload: Events[K], handler: AnyHandler<Events[K]>): Outcome | Promise<Outcome> {
    const list = this.#handlers.get(name) as Entry<Events[K]>[] | undefined;
    if (list === undefined) return 'undelivered';
    let at = list.findIndex((e) => e.handler === handler) + 1;
    // The holder was removed meanwhile: what it held goes on after every filter.
    if (at === 0) at = Math.max(0, list.findIndex((e) => e.phase !== 'filter'));
    return step(list, at, payload, 'undelivered');
  }

  /**
   * Copy on write: a run keeps the list it started with, so adding or
   * removing a handler while one awaits neither repeats nor skips a handler.
   */
  #add<K extends keyof Events>(name: K, phase: Phase, handler: AnyHandler<Events[K]>, priority: number): () => void {
    const list = [...(this.#handlers.get(name) ?? [])] as Entry<Events[K]>[];
    const entry: Entry<Events[K]> = { phase, handler, priority };
    const order = PHASE_ORDER[phase];
    // Phase first, then priority (highest first); equal ones keep registration order.
    const at = list.findIndex((e) => PHASE_ORDER[e.phase] > order || (e.phase === phase && e.priority < priority));
    if (at === -1) list.push(entry); else list.splice(at, 0, entry);
    this.#handlers.set(name, list as Entry<never>[]);
    return () => {
      const current = this.#handlers.get(name) ?? [];
      this.#handlers.set(name, current.filter((e) => e !== (entry as Entry<never>)));
    };
  }
}

/** Runs handlers from index `i`; `state` is the outcome so far ('delivered' once a deliver handler took it). */
function step<P>(list: readonly Entry<P>[], i: number, payload: P, state: Outcome): Outcome | Promise<Outcome> {
  for (; i < list.length; i++) {
    const entry = list[i]!;
    if (entry.phase === 'deliver' && state === 'delivered') continue;
    const result = entry.handler(payload);
    if (isPromise(result)) return result.then((r) => after(list, i, payload, state, r));
    const next = settle(entry.phase, state, result);
    if (next !== state && next !== 'delivered') return next;
    state = next;
  }
  return state;
}

function after<P>(list: readonly Entry<P>[], i: number, payload: P, state: Outcome, result: unknown): Outcome | Promise<Outcome> {
  const next = settle(list[i]!.phase, state, result);
  if (next !== state && next !== 'delivered') return next;
  return step(list, i + 1, payload, next);
}

/** The outcome after one handler: a filter may stop the event, a deliver handler may take it. */
function settle(phase: Phase, state: Outcome, result: unknown): Outcome {
  if (result === undefined) return state;
  if (phase === 'filter') {
    if (result === 'drop') return 'dropped';
    // Only a Veto stops with an error; anything else a filter returns passes.
    if (typeof result === 'object' && result !== null && typeof (result as Veto).veto === 'string') return result as Veto;
    return state;
  }
  if (phase === 'deliver' && result === 'delivered') return 'delivered';
  return state;
}

/**
 * WORKERS=N: questions between a worker and the primary over node:cluster's
 * IPC channel, each answered once, matched by id, with a bounded wait. The
 * shared port reaches whichever worker accepts, so what it answers for the
 * whole machine goes this way: the worker asks the primary (askPrimary),
 * which gathers from every worker (askWorkers, or prom-client's own protocol)
 * and answers. GET /metrics (metrics/workers.ts) and GET /readyz
 * (http/workers-readiness.ts) use it.
 */
import cluster, { type Worker } from 'node:cluster';

const ASK = 'xwg:ask';
const ANSWER = 'xwg:answer';

interface Ask { readonly type: typeof ASK; readonly kind: string; readonly id: number }
interface Answer { readonly type: typeof ANSWER; readonly kind: string; readonly id: number; readonly value?: unknown; readonly error?: string }

const isAsk = (m: unknown, kind: string): m is Ask => (m as Partial<Ask> | null)?.type === ASK && (m as Ask).kind === kind;
const isAnswer = (m: unknown, kind: string): m is Answer => (m as Partial<Answer> | null)?.type === ANSWER && (m as Answer).kind === kind;

/** Questions of one kind sent and not yet answered, by id. */
function pending<T>(kind: string): { ask(send: (m: Ask) => void, timeoutMs: number): Promise<T>; settle(m: unknown): void } {
  let next = 0;
  const waiting = new Map<number, { resolve(value: T): void; reject(err: Error): void; timer: NodeJS.Timeout }>();
  return {
    ask: (send, timeoutMs) => new Promise<T>((resolve, reject) => {
      const id = ++next;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`no answer to '${kind}' within ${timeoutMs} ms`));
      }, timeoutMs);
      timer.unref();
      waiting.set(id, { resolve, reject, timer });
      send({ type: ASK, kind, id });
    }),
    settle(m) {
      if (!isAnswer(m, kind)) return;
      const w = waiting.get(m.id);
      if (!w) return; // answered after its wait ended
      waiting.delete(m.id);
      clearTimeout(w.timer);
      if (m.error === undefined) w.resolve(m.value as T);
      else w.reject(new Error(m.error));
    },
  };
}

/** Runs `answer` and sends what it gives, or its error's message, as the answer to `ask`. */
function reply(ask: Ask, answer: () => Promise<unknown>, send: (m: Answer) => void): void {
  const base = { type: ANSWER, kind: ask.kind, id: ask.id } as const;
  answer().then((value) => send({ ...base, value }), (err: unknown) => send({ ...base, error: err instanceof Error ? err.message : String(err) }));
}

/** In a worker: asks the primary a `kind` question; rejects with the primary's error, or when it is silent for `timeoutMs`. */
export function askPrimary<T>(kind: string, timeoutMs: number): () => Promise<T> {
  const questions = pending<T>(kind);
  process.on('message', questions.settle);
  return () => questions.ask((m) => { if (process.connected) process.send!(m); }, timeoutMs);
}

/** In the primary: answers every worker's `kind` question with what `answer` resolves to. */
export function answerWorkers(kind: string, answer: () => Promise<unknown>): void {
  cluster.on('message', (worker, m: unknown) => {
    if (isAsk(m, kind)) reply(m, answer, (a) => { if (worker.isConnected()) worker.send(a); });
  });
}

/** In the primary: asks a worker a `kind` question; undefined when it does not answer within `timeoutMs` (or fails). */
export function askWorkers<T>(kind: string, timeoutMs: number): (worker: Worker) => Promise<T | undefined> {
  const questions = pending<T>(kind);
  cluster.on('message', (_worker, m: unknown) => questions.settle(m));
  return (worker) => {
    if (!worker.isConnected()) return Promise.resolve(undefined);
    return questions.ask((m) => worker.send(m), timeoutMs).catch(() => undefined);
  };
}

/** In a worker: answers the primary's `kind` questions with what `answer` resolves to. */
export function answerPrimary(kind: string, answer: () => Promise<unknown>): void {
  process.on('message', (m: unknown) => {
    if (isAsk(m, kind)) reply(m, answer, (a) => { if (process.connected) process.send!(a); });
  });
}

/**
 * Redis failing in the middle of a node's script, in process: the node's
 * own client has its `eval` wrapped, so a chosen script's answer can be
 * lost after Redis ran it (the connection dropped on the way back), as the
 * fault tests of the cluster's stream management need.
 */
import type { Redis } from '../../src/cluster/redis.js';

type Eval = Redis['eval'];

/**
 * Every `eval` of `script` by `redis` goes through `fault`, which gets the
 * real call (`run`) and how many of the script's calls came before this one;
 * other scripts run as they are.
 */
export function interceptEval(redis: Redis, script: string, fault: (run: () => Promise<unknown>, n: number) => Promise<unknown>): void {
  const evalScript = redis.eval.bind(redis) as (...args: Parameters<Eval>) => Promise<unknown>;
  let n = 0;
  Object.defineProperty(redis, 'eval', {
    configurable: true,
    value: async (...args: Parameters<Eval>) => (args[0] === script ? fault(() => evalScript(...args), n++) : evalScript(...args)),
  });
}

/**
 * The answers of `script`'s first `times` calls are lost after Redis ran it:
 * the caller gets the error a dropped connection gives. The replies Redis
 * gave are kept in `lost`.
 */
export function loseAnswers(redis: Redis, script: string, times = 1): { readonly lost: unknown[] } {
  const lost: unknown[] = [];
  interceptEval(redis, script, async (run, n) => {
    const reply = await run();
    if (n >= times) return reply;
    lost.push(reply);
    throw new Error('Socket closed unexpectedly');
  });
  return { lost };
}

/**
 * The first call of `script` by `redis` fails before it reaches Redis (it
 * never ran): the caller gets the error a dropped connection gives. `calls`
 * counts them all, the failed one included.
 */
export function failFirst(redis: Redis, script: string): { readonly calls: number } {
  const counted = { calls: 0 };
  interceptEval(redis, script, async (run, n) => {
    counted.calls++;
    if (n === 0) throw new Error('Socket closed unexpectedly');
    return run();
  });
  return counted;
}

/**
 * The SM journal's fenced writes (sm-scripts.ts: push a stanza, apply an
 * ack, set record fields) gathered per event-loop turn and sent as one
 * script: a busy node queues several stanzas per turn, and one EVAL each
 * cost the node twice its CPU per message (bench/RESULTS.md, "Cluster").
 * Each write is still fenced on its own (it runs only if the record's epoch
 * is the writer's) and the writes keep their order: the batch goes out
 * before any other command of this node's SM code (`flush`), and node-redis
 * keeps the order of one connection. EVAL, not EVALSHA: a NOSCRIPT retry
 * after a Redis restart would send the batch after commands issued later;
 * the script text is sent once per turn, not per stanza.
 */
import type { Redis } from './redis.js';
import type { SmKeys } from './sm-scripts.js';

/** At most this many writes per script: a script blocks Redis while it runs (a few µs per write). */
export const BATCH_MAX_WRITES = 256;

// KEYS: record, queue per write. ARGV per write: op, epoch, argument count, arguments.
// op p: push (item); a: ack (n, counter_out); s: set (ttl: '' keep, '0' persist, else ms; then field, value pairs).
// Replies per write: 1 done, 0 fenced (another epoch), -1 no record.
const BATCH = `
local out = {}
local a = 1
for k = 1, #KEYS, 2 do
  local rec, q = KEYS[k], KEYS[k + 1]
  local op, n, s = ARGV[a], tonumber(ARGV[a + 2]), a + 3
  local e = redis.call('HGET', rec, 'epoch')
  if e ~= ARGV[a + 1] then out[#out + 1] = e and 0 or -1
  elseif op == 'p' then
    redis.call('RPUSH', q, ARGV[s])
    local ttl = redis.call('PTTL', rec)
    if ttl > 0 then redis.call('PEXPIRE', q, ttl) end
    out[#out + 1] = 1
  elseif op == 'a' then
    redis.call('LTRIM', q, tonumber(ARGV[s]), -1)
    redis.call('HSET', rec, 'counter_out', ARGV[s + 1])
    out[#out + 1] = 1
  else
    for i = s + 1, s + n - 1, 2 do redis.call('HSET', rec, ARGV[i], ARGV[i + 1]) end
    if ARGV[s] == '0' then redis.call('PERSIST', rec) redis.call('PERSIST', q)
    elseif ARGV[s] ~= '' then redis.call('PEXPIRE', rec, ARGV[s]) redis.call('PEXPIRE', q, ARGV[s]) end
    out[#out + 1] = 1
  end
  a = s + n
end
return out`;

interface Write {
  readonly smid: string;
  readonly op: 'p' | 'a' | 's';
  readonly epoch: number;
  args: string[];
  readonly settle?: { resolve(r: number): void; reject(err: unknown): void };
}

export interface SmBatch {
  /** A stanza for the session's queue; resolves with 1 (stored), 0 (fenced) or -1 (no record). */
  push(smid: string, epoch: number, item: string): Promise<number>;
  ack(smid: string, epoch: number, n: number, counterOut: number): void;
  /** Record fields (and a TTL: '' keep, '0' persist, else ms). */
  set(smid: string, epoch: number, ttl: string, values: Record<string, string | number>): void;
  /** The session's inbound counter: one write per turn however many stanzas came in. */
  counterIn(smid: string, epoch: number, value: number): void;
  /** Sends what is gathered now: before any other command, so the order holds. */
  flush(): void;
}

export function createSmBatch(redis: Redis, keys: SmKeys, failed: (err: unknown) => void): SmBatch {
  let writes: Write[] = [];
  // The inbound counter's write of this turn per session, updated in place (the fields are independent of the rest).
  let counters = new Map<string, Write>();
  let scheduled: NodeJS.Immediate | undefined;

  function add(write: Write): void {
    writes.push(write);
    if (writes.length >= BATCH_MAX_WRITES) flush();
    else scheduled ??= setImmediate(flush);
  }

  function flush(): void {
    if (scheduled) clearImmediate(scheduled);
    scheduled = undefined;
    if (writes.length === 0) return;
    const batch = writes;
    writes = [];
    counters = new Map();
    const keyList: string[] = [];
    const args: string[] = [];
    for (const w of batch) {
      keyList.push(keys.record(w.smid), keys.queue(w.smid));
      args.push(w.op, String(w.epoch), String(w.args.length), ...w.args);
    }
    redis.eval(BATCH, { keys: keyList, arguments: args }).then((reply) => {
      const results = reply as number[];
      batch.forEach((w, i) => w.settle?.resolve(Number(results[i])));
    }, (err: unknown) => {
      let told = false;
      for (const w of batch) {
        if (w.settle) { w.settle.reject(err); told = true; }
      }
      if (!told) failed(err);
    });
  }

  return {
    push(smid, epoch, item) {
      return new Promise<number>((resolve, reject) => add({ smid, op: 'p', epoch, args: [item], settle: { resolve, reject } }));
    },
    ack(smid, epoch, n, counterOut) { add({ smid, op: 'a', epoch, args: [String(n), String(counterOut)] }); },
    set(smid, epoch, ttl, values) {
      const args = [ttl];
      for (const [k, v] of Object.entries(values)) args.push(k, String(v));
      add({ smid, op: 's', epoch, args });
    },
    counterIn(smid, epoch, value) {
      const pending = counters.get(smid);
      if (pending && pending.epoch === epoch) { pending.args = ['', 'counter_in', String(value)]; return; }
      const write: Write = { smid, op: 's', epoch, args: ['', 'counter_in', String(value)] };
      counters.set(smid, write);
      add(write);
    },
    flush,
  };
}

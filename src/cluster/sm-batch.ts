/**
 * The SM journal's fenced writes (push a stanza, apply an ack, set record
 * fields) gathered per event-loop turn and sent as one script: a busy node
 * queues several stanzas per turn, and one EVAL each cost the node twice
 * its CPU per message (bench/RESULTS.md, "Cluster").
 *
 * Each write is still fenced (it runs only if the record's epoch is the
 * writer's) and a session's writes keep their order: the batch goes out
 * before any other command of this node's SM code (`flush`), node-redis
 * keeps the order of one connection, and inside a batch a session's pushes
 * gathered since its last ack or TTL change go as one RPUSH (moving a push
 * before that session's counter write changes nothing: other fields).
 * The record's epoch is read once per session per script: nothing in the
 * batch changes it, and the script runs atomically.
 *
 * EVAL, not EVALSHA: after a Redis restart (scripts forgotten) every
 * EVALSHA in flight fails with NOSCRIPT, and a retry sends its batch after
 * batches issued later, which another node's SCRIPT LOAD meanwhile may
 * have let through: a session's stanzas out of order. The text (~1.2 KB)
 * goes once per batch: under load tens of stanzas share it.
 */
import type { Redis } from './redis.js';
import type { SmKeys } from './sm-scripts.js';
import type { PushResult, PushWaiter } from '../xmpp/features/stream-management/registry.js';
import type { Undelivered } from '../xmpp/undelivered.js';

/** At most this many writes (a stanza is one) per script: a script blocks Redis while it runs (a few µs per write). */
export const BATCH_MAX_WRITES = 256;
/** And at most about this many bytes of stanzas, so a script's arguments stay small whatever the stanza size limit. */
export const BATCH_MAX_BYTES = 1 << 20;

// KEYS: record, queue per write. ARGV per write: op, epoch, argument count, arguments.
// op p: push (items); P: push to a hibernating session (items, then the record's TTL copied to the queue);
// a: ack (n, counter_out); s: set (ttl: '' keep, '0' persist, else ms; then field, value pairs);
// r: rewrite the queue whole (counter_out, then items; the record's TTL copied to the queue).
// Replies per write: 1 done, 0 fenced (another epoch), -1 no record.
// A connected session's record has no TTL (only `s` with a TTL sets one, at hibernation; CLAIM and
// resumption persist it), so only P needs the PTTL.
const BATCH = `
local out = {}
local epochs = {}
local a = 1
for k = 1, #KEYS, 2 do
  local rec, q = KEYS[k], KEYS[k + 1]
  local op, n, s = ARGV[a], tonumber(ARGV[a + 2]), a + 3
  local e = epochs[rec]
  if e == nil then e = redis.call('HGET', rec, 'epoch') epochs[rec] = e end
  if e ~= ARGV[a + 1] then out[#out + 1] = e and 0 or -1
  elseif op == 'p' or op == 'P' then
    redis.call('RPUSH', q, unpack(ARGV, s, s + n - 1))
    if op == 'P' then
      local ttl = redis.call('PTTL', rec)
      if ttl > 0 then redis.call('PEXPIRE', q, ttl) end
    end
    out[#out + 1] = 1
  elseif op == 'r' then
    redis.call('DEL', q)
    for i = s + 1, s + n - 1, 1000 do redis.call('RPUSH', q, unpack(ARGV, i, math.min(i + 999, s + n - 1))) end
    redis.call('HSET', rec, 'counter_out', ARGV[s])
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

const RESULTS: Record<number, PushResult> = { 1: 'stored', 0: 'fenced', [-1]: 'missing' };

interface Write {
  readonly smid: string;
  readonly op: 'p' | 'P' | 'a' | 's' | 'r';
  readonly epoch: number;
  args: string[];
  /** A push's stanzas and who hears of each, index for index with `args`. */
  readonly items?: Undelivered[];
  readonly waiters?: PushWaiter[];
}

export interface SmBatch {
  /** `encoded` (of `item`) for the session's queue; `waiter` hears the answer. Hibernating: the queue gets the record's TTL. */
  push(smid: string, epoch: number, hibernating: boolean, encoded: string, item: Undelivered, waiter: PushWaiter): void;
  ack(smid: string, epoch: number, n: number, counterOut: number): void;
  /** Record fields (and a TTL: '' keep, '0' persist, else ms). */
  set(smid: string, epoch: number, ttl: string, values: Record<string, string | number>): void;
  /** The session's inbound counter: one write per turn however many stanzas came in. */
  counterIn(smid: string, epoch: number, value: number): void;
  /**
   * Replaces the session's queue in the store with `encoded` (its
   * unacknowledged, then waiting, stanzas) and its counter_out: after a
   * script whose answer was lost, which may not have run.
   */
  rewrite(smid: string, epoch: number, encoded: string[], counterOut: number): void;
  /** Sends what is gathered now: before any other command, so the order holds. */
  flush(): void;
  /** Runs `fn` once every write gathered so far has been answered. */
  after(fn: () => void): void;
}

/**
 * `failed` hears why a script failed; `lost` the sessions it wrote to, whose
 * copy in the store may now differ from the node's (a push or an ack that
 * never ran: a later ack would trim the wrong stanzas).
 */
export function createSmBatch(redis: Redis, keys: SmKeys, failed: (err: unknown) => void, lost: (smids: ReadonlySet<string>) => void = () => undefined): SmBatch {
  let writes: Write[] = [];
  let size = 0;
  let bytes = 0;
  // The inbound counter's write of this turn per session, updated in place (the fields are independent of the rest).
  let counters = new Map<string, Write>();
  // Per session, its push of this turn that later pushes join, until an ack or TTL change of that session.
  let pushes = new Map<string, Write>();
  let scheduled: NodeJS.Immediate | undefined;
  let last: Promise<void> | undefined;

  function add(write: Write, weight: number): void {
    if (write.op !== 'p' && write.op !== 'P') pushes.delete(write.smid);
    writes.push(write);
    grow(weight);
  }

  function grow(weight: number): void {
    size += 1;
    bytes += weight;
    if (size >= BATCH_MAX_WRITES || bytes >= BATCH_MAX_BYTES) flush();
    else scheduled ??= setImmediate(flush);
  }

  function flush(): void {
    if (scheduled) clearImmediate(scheduled);
    scheduled = undefined;
    if (writes.length === 0) return;
    const batch = writes;
    writes = [];
    size = 0;
    bytes = 0;
    counters = new Map();
    pushes = new Map();
    const keyList: string[] = [];
    const args: string[] = [];
    for (const w of batch) {
      keyList.push(keys.record(w.smid), keys.queue(w.smid));
      args.push(w.op, String(w.epoch), String(w.args.length));
      for (const arg of w.args) args.push(arg);
    }
    const reply = redis.eval(BATCH, { keys: keyList, arguments: args }).then(
      (results) => settle(batch, results as number[]),
      (err: unknown) => {
        failed(err);
        settle(batch, undefined);
        lost(new Set(batch.filter((w) => w.op !== 's').map((w) => w.smid)));
      },
    );
    last = reply;
    void reply.then(() => { if (last === reply) last = undefined; });
  }

  /** Tells each push of `batch` its answer, in order; `results` undefined: the script failed. */
  function settle(batch: readonly Write[], results: readonly number[] | undefined): void {
    for (let i = 0; i < batch.length; i++) {
      const { waiters, items } = batch[i]!;
      if (!waiters || !items) continue;
      const result = results ? RESULTS[Number(results[i])] ?? 'failed' : 'failed';
      for (let j = 0; j < waiters.length; j++) {
        // One waiter's fault must not keep the others' stanzas from their clients.
        try { waiters[j]!.pushed(result, items[j]!); } catch (err) { failed(err); }
      }
    }
  }

  return {
    push(smid, epoch, hibernating, encoded, item, waiter) {
      const op = hibernating ? 'P' : 'p';
      const open = pushes.get(smid);
      if (open && open.op === op && open.epoch === epoch) {
        open.args.push(encoded);
        open.items!.push(item);
        open.waiters!.push(waiter);
        return grow(encoded.length);
      }
      const write: Write = { smid, op, epoch, args: [encoded], items: [item], waiters: [waiter] };
      add(write, encoded.length);
      pushes.set(smid, write);
    },
    ack(smid, epoch, n, counterOut) { add({ smid, op: 'a', epoch, args: [String(n), String(counterOut)] }, 0); },
    rewrite(smid, epoch, encoded, counterOut) {
      add({ smid, op: 'r', epoch, args: [String(counterOut), ...encoded] }, encoded.reduce((n, e) => n + e.length, 0));
    },
    set(smid, epoch, ttl, values) {
      const args = [ttl];
      for (const [k, v] of Object.entries(values)) args.push(k, String(v));
      add({ smid, op: 's', epoch, args }, 0);
    },
    counterIn(smid, epoch, value) {
      const pending = counters.get(smid);
      if (pending && pending.epoch === epoch) { pending.args = ['', 'counter_in', String(value)]; return; }
      const write: Write = { smid, op: 's', epoch, args: ['', 'counter_in', String(value)] };
      counters.set(smid, write);
      // Not an end to the session's open push: the inbound counter commutes with the queue.
      writes.push(write);
      grow(0);
    },
    flush,
    after(fn) {
      flush();
      if (last) void last.then(fn);
      else fn();
    },
  };
}

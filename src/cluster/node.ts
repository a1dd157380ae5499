/**
 * This process as a member of the cluster: its name, a lease in Redis that
 * says it is alive, and who else is. The lease (`node:<id>`, a random token
 * with a TTL) is renewed every `ttlMs / 5`. A member whose lease expired is
 * declared dead by the survivor whose `SREM` takes it out of the member set
 * (one script: only while the lease is still gone); that removal, not the
 * expiry, is the fence: the down handlers run after it, and a node that
 * finds itself no longer a member (or its lease held by another token) has
 * been declared dead and must stop serving: `onLost` says so, and the
 * server exits.
 *
 * A lease that expired while nobody could declare the node dead (Redis was
 * down or restarting for longer than the TTL: with AOF the member set comes
 * back, the lease has run out) is taken again at the next renewal, in the
 * same script that checks membership. So that the nodes coming back do not
 * declare each other dead first, a node judges the others only once it has
 * renewed its own lease for `ttlMs + RECONNECT_MAX_MS` without a break: long
 * enough for every live node to reconnect (redis.ts) and renew.
 *
 * A restarted node keeps its NODE_ID (so it reads what was addressed to it,
 * delivery.ts), which must wait for its old lease to run out: a lease that
 * is renewed meanwhile belongs to another live process, and the start fails.
 */
import { randomBytes } from 'node:crypto';
import { RECONNECT_MAX_MS, type Redis } from './redis.js';

export interface ClusterNode {
  /** This node's name (NODE_ID). */
  readonly id: string;
  /** Every key and channel starts with it (redis.ts keyPrefix). */
  readonly prefix: string;
  readonly redis: Redis;
  /** Whether `id`'s lease is current. */
  alive(id: string): Promise<boolean>;
  /** The members whose lease is current. */
  members(): Promise<string[]>;
  /** Runs `handler` once per dead member, on one surviving node only (the one that removed it from the member set). */
  onNodeDown(handler: (id: string) => void | Promise<void>): void;
  /**
   * Like onNodeDown, after every onNodeDown handler of that dead node, but
   * beside the handling of the next dead node rather than before it: work
   * that may wait long (a client's acks, up to SM_ACK_TIMEOUT), which the
   * next death's handling (its sessions' presence, directory entries and
   * adoption) must not wait for.
   */
  onNodeDownLast(handler: (id: string) => Promise<void>): void;
  /**
   * Runs `handler` before a dead node is given back (leaving(), below): work a
   * down handler started and left under way finishes first (bounded by the
   * handler), so that the node that stays does not do it a second time.
   */
  onGiveBack(handler: (id: string) => Promise<void>): void;
  /** This node's lease was lost: it must stop serving. */
  onLost(handler: () => void): void;
  /**
   * This node is leaving (a rolling restart's SIGTERM, a stop): from now on
   * it declares no other node dead, so the down handlers of a node that dies
   * meanwhile run on a node that stays. Run here, they would adopt its
   * resumable sessions only for this node to leave them in Redis again for
   * the survivor of its own departure. Its own lease is still renewed.
   * A death it declared before (its down handlers queued or running) is
   * given back: the dead node is made a member again, for a node that stays
   * to declare it dead and run every handler (each can run again: what this
   * node did already is found done), and the handlers not run here yet are
   * not run.
   */
  leaving(): void;
  /** Whether leaving() was called: a down handler that takes things over one by one stops taking. */
  readonly departing: boolean;
  /**
   * Call once every onNodeDown handler is registered, before serving. If a
   * previous run of this NODE_ID left without anyone cleaning up after it
   * (it was still a member), its handlers run now for this node's own id:
   * what the old run held is recovered like any dead node's.
   */
  start(): Promise<void>;
  /**
   * Releases the lease (a clean shutdown). The node stays in the member
   * set: a survivor notices the lease is gone and runs its onNodeDown
   * handlers (directory, inbox, stream-management takeover), exactly as
   * for a crash, so nothing the node held is forgotten.
   */
  stop(): Promise<void>;
}

export interface NodeOptions {
  readonly id: string;
  readonly prefix: string;
  /** Lease time-to-live in milliseconds. */
  readonly ttlMs: number;
  readonly log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

// KEYS[1] lease, KEYS[2] member set; ARGV[1] token, ARGV[2] ttl, ARGV[3] id. Renews our own lease (1), or takes
// it again if it ran out while we are still a member (2: nobody declared us dead); 0: we are fenced off.
const RENEW = `local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if cur or redis.call('SISMEMBER', KEYS[2], ARGV[3]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 2`;
// KEYS[1] the other's lease, KEYS[2] member set; ARGV[1] its id: declares it dead (1) only while its lease is gone.
export const DECLARE_DEAD = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end return redis.call('SREM', KEYS[2], ARGV[1])";
/** A leaving node's attempts to make a dead node it declared a member again (giveBack). */
const GIVE_BACK_ATTEMPTS = 3;
// KEYS[1] lease, ARGV[1] token: releases only our own lease.
const RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

export async function joinCluster(redis: Redis, opts: NodeOptions): Promise<ClusterNode> {
  const { id, prefix, ttlMs, log } = opts;
  const lease = `${prefix}node:${id}`;
  const membersKey = `${prefix}nodes`;
  const token = randomBytes(16).toString('hex');
  await claim(redis, lease, token, ttlMs, id);
  // Still a member: a previous run of this name left and nobody has cleaned up after it yet.
  const leftBehind = (await redis.sAdd(membersKey, id)) === 0;
  const downHandlers: Array<(id: string) => void | Promise<void>> = [];
  const lastHandlers: Array<(id: string) => Promise<void>> = [];
  const giveBackHandlers: Array<(id: string) => Promise<void>> = [];
  const lostHandlers: Array<() => void> = [];
  let stopped = false;
  let judging = true;

  /** Runs the down handlers; resolves with the last ones (onNodeDownLast) under way, for the caller to await or not. */
  async function runDown(other: string): Promise<{ readonly last: Promise<void> }> {
    const done = { last: Promise.resolve() };
    if (!(await runHandlers(other, downHandlers))) return done;
    return { last: runHandlers(other, lastHandlers).then(() => undefined) };
  }
  /** Resolves false once the dead node was given back (this node leaving): nothing more to run for it. */
  async function runHandlers(other: string, handlers: ReadonlyArray<(id: string) => void | Promise<void>>): Promise<boolean> {
    for (const h of handlers) {
      if (givesBack(other)) return giveBack(other).then(() => false);
      try { await h(other); } catch (err) { log.error({ err, node: other }, 'handling a dead node failed'); }
    }
    // Leaving since the handlers began: the one running then may have stopped half-way (sm-orphans.ts).
    if (givesBack(other)) return giveBack(other).then(() => false);
    return true;
  }
  /** Another node's death this node declared, now that it is leaving: a node that stays takes it over. */
  const givesBack = (other: string): boolean => !judging && other !== id;
  async function giveBack(other: string): Promise<void> {
    for (const h of giveBackHandlers) {
      try { await h(other); } catch (err) { log.error({ err, node: other }, 'finishing a dead node\'s handling before giving it back failed'); }
    }
    for (let attempt = 1; ; attempt++) {
      try {
        await redis.sAdd(membersKey, other);
        log.info({ event: 'cluster-node-down-given-back', node: other }, 'leaving: a dead node is left to the nodes that stay');
        return;
      } catch (err) {
        // Its sessions stay resumable from Redis; only their hand-over at the resume timeout is nobody's.
        if (attempt >= GIVE_BACK_ATTEMPTS) return log.error({ err, node: other }, 'giving a dead node back to the cluster failed');
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
  }
  // Dead nodes handled one after the other, apart from the heartbeat: taking a big node's sessions
  // over can outlast a lease, and this node's own renewals must go on meanwhile (or another
  // survivor would declare it dead too).
  let handling: Promise<void> = Promise.resolve();

  // Since when our renewals have gone through without a break (undefined: Redis unreachable or a renewal failed).
  let renewingSince: number | undefined = Date.now();
  let beating = false;
  // When the lease was last renewed: a renewal that comes more than half a lease later is logged, since a node
  // that goes a whole lease without one is declared dead by the others and stops (its sessions end).
  let renewedAt = Date.now();

  async function beat(): Promise<void> {
    const asked = Date.now();
    const renewed = Number(await redis.eval(RENEW, { keys: [lease, membersKey], arguments: [token, String(ttlMs), id] }));
    const now = Date.now();
    if (now - renewedAt > ttlMs / 2) {
      log.warn({ event: 'cluster-heartbeat-late', node: id, sinceLastMs: now - renewedAt, answeredInMs: now - asked, renewed }, 'the cluster lease was renewed late');
    }
    if (renewed !== 0) renewedAt = now;
    if (renewed === 0) {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      log.error({ event: 'cluster-lease-lost', node: id }, 'this node lost its cluster lease: it must stop serving');
      for (const h of lostHandlers) h();
      return;
    }
    if (renewed === 2) log.warn({ event: 'cluster-lease-renewed', node: id }, 'took the cluster lease again after it ran out unseen (Redis was away)');
    renewingSince ??= Date.now();
    if (!judging || Date.now() - renewingSince < ttlMs + RECONNECT_MAX_MS) return;
    for (const other of await redis.sMembers(membersKey)) {
      if (other === id) continue;
      // Only the node whose SREM removed it runs the handlers: once per dead node.
      if (Number(await redis.eval(DECLARE_DEAD, { keys: [`${prefix}node:${other}`, membersKey], arguments: [other] })) !== 1) continue;
      log.warn({ event: 'cluster-node-down', node: other }, 'a cluster node is gone');
      // The last handlers are not awaited here: the next dead node's handling does not wait for them.
      handling = handling.then(() => runDown(other)).then(({ last }) => void last.catch(() => undefined));
    }
  }
  const timer = setInterval(() => {
    // Renewals do not pile up in the client's offline queue while Redis is away.
    if (!redis.isReady) renewingSince = undefined;
    if (beating || !redis.isReady) return;
    beating = true;
    beat().catch((err: unknown) => {
      renewingSince = undefined;
      log.warn({ err, node: id }, 'cluster heartbeat failed');
    }).finally(() => { beating = false; });
  }, Math.max(50, Math.floor(ttlMs / 5)));
  timer.unref();
  log.info({ event: 'cluster-joined', node: id }, 'joined the cluster');

  return {
    id, prefix, redis,
    alive: async (other) => other === id ? !stopped : (await redis.exists(`${prefix}node:${other}`)) === 1,
    async members() {
      const all = await redis.sMembers(membersKey);
      const live: string[] = [];
      for (const m of all) if ((await redis.exists(`${prefix}node:${m}`)) === 1) live.push(m);
      return live;
    },
    onNodeDown: (h) => { downHandlers.push(h); },
    onNodeDownLast: (h) => { lastHandlers.push(h); },
    onGiveBack: (h) => { giveBackHandlers.push(h); },
    onLost: (h) => { lostHandlers.push(h); },
    leaving() { judging = false; },
    get departing() { return !judging; },
    async start() {
      if (!leftBehind) return;
      log.warn({ event: 'cluster-node-down', node: id }, 'recovering what a previous run of this node left');
      await (await runDown(id)).last;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await redis.eval(RELEASE, { keys: [lease], arguments: [token] });
    },
  };
}

/**
 * Takes the lease `node:<id>`. If another token holds it, waits for it to
 * expire (a previous run of this node that died); a lease renewed while we
 * wait is another live process with the same NODE_ID.
 */
async function claim(redis: Redis, lease: string, token: string, ttlMs: number, id: string): Promise<void> {
  const deadline = Date.now() + ttlMs * 2;
  let lastTtl = Infinity;
  for (;;) {
    const set = await redis.set(lease, token, { NX: true, expiration: { type: 'PX', value: ttlMs } });
    if (set === 'OK') return;
    const ttl = await redis.pTTL(lease);
    if (ttl > lastTtl + 50 || Date.now() > deadline) {
      throw new Error(`NODE_ID=${JSON.stringify(id)} is invalid: another live process holds that name in the cluster (its lease is being renewed); give each process its own NODE_ID`);
    }
    if (ttl > 0) lastTtl = ttl;
    await new Promise((r) => setTimeout(r, Math.min(200, Math.max(20, ttl))));
  }
}

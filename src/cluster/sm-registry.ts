/**
 * SM_BACKEND=redis: the stream-management registry of a cluster node. Live
 * sessions stay in this process (a Session cannot leave it), and each
 * resumable one has a record and a queue in Redis (sm-scripts.ts) that any
 * node can take over: the journal the SM feature writes through
 * (SmJournal). The fenced writes of one turn go out as one script
 * (sm-batch.ts); none is waited for except `push`, whose answer the SM
 * feature waits for before the stanza goes to the client (its PushWaiter
 * hears it). Stale h records stay in
 * the shared storage (STORAGE=postgres), as with the memory registry.
 */
import type { SmStateStore } from '../storage/ports/sm-state.js';
import type { Session } from '../xmpp/session.js';
import { FINAL_H_DRAIN_WAIT_MS, FINAL_H_WAIT_MS, staleHKey, type SmClaim, type SmClaimant, type SmClaimed, type SmJournal, type SmQueueCopy, type SmRegistry } from '../xmpp/features/stream-management/registry.js';
import type { Undelivered } from '../xmpp/undelivered.js';
import type { ClusterNode } from './node.js';
import { createSmBatch } from './sm-batch.js';
import { REPLACED, TAKE, TAKEOVER, decodeItem, encodeItem, fields, smKeys, smidRef } from './sm-scripts.js';

export interface SmLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  /** Where a stanza may vanish (LOG_LEVEL=debug): the rolling-restart test greps these for a lost id. */
  debug(obj: object, msg: string): void;
}

/** How long a session's end waits to learn whether another node took it over. */
const CLOSE_TIMEOUT_MS = 2000;
const sleep = (ms: number): Promise<undefined> => new Promise((r) => { setTimeout(() => r(undefined), ms).unref(); });

/**
 * How long a hibernating session's record waits before it is marked so
 * (hibernated_at, and a TTL as a safety net). A page reload resumes well
 * within it, on this node: the mark and its undoing ('session-resumed')
 * would be two writes for nothing. Neither is needed sooner: a takeover reads
 * the counters and the snapshot, which are written as they change; a dead
 * node's survivor counts the resume time from its own adoption when the mark
 * is missing (sm-orphans.ts), which gives the session this much longer at most.
 */
export const HIBERNATION_MARK_DELAY_MS = 2000;

/**
 * The claims of one smid waiting for an old owner's final h: what was heard, by epoch (the final h; the epochs
 * whose owner said it is draining), and each wait (the epoch it waits for, the owner it waits on). A wait ends on
 * its own epoch's answer only: the answer to an earlier claim (this node's session, drained for another node's
 * claim, tells it here too) is not the answer to this one.
 */
interface FinalHWaiter {
  readonly got: Map<number, number | undefined>;
  readonly draining: Set<number>;
  readonly waiting: Set<FinalHWait>;
}

interface FinalHWait {
  readonly epoch: number;
  readonly owner: string;
  readonly wake: () => void;
  /** The owner is draining: wait FINAL_H_DRAIN_WAIT_MS from now. */
  readonly extend: () => void;
}

/**
 * A session this node holds in the journal: its fencing epoch and resume
 * max; whether the record says it hibernates (`marked`: it has a TTL, so a
 * stanza queued then gives the queue the same TTL) or will (`mark`, a
 * timer); `lost` once another node's claim of it was announced (sm-fenced).
 */
interface Held {
  epoch: number;
  max: number;
  session: Session | undefined;
  marked?: boolean;
  mark?: NodeJS.Timeout;
  /** When it began to hibernate (ms), for the mark. */
  since?: number;
  lost?: boolean;
  /** Claimed with its presence ended (a dead owner's: CLAIM's mark), cleared once the session is built here. */
  ended?: boolean;
  /** Claimed here (TAKEOVER marked the record `unbound`), its session not yet bound here: cleared by bound(). */
  unbound?: boolean;
}

export interface RedisSmRegistry extends SmRegistry {
  readonly journal: SmJournal;
  /** Stores the session's snapshot (presence, priority, interested, carbons, blocklist requested, directed) if it is resumable. */
  snapshot(session: Session): void;
  /**
   * Another node claimed `smid` with `epoch` (the sm-fenced channel); `from`: the owner before it, which tells the
   * claimer its session's final h (released) once the input it took before the claim has been handled.
   */
  fenced(smid: string, epoch: number, from?: string): void;
  /** Node `id` was declared dead: a claim waiting for its final h waits no more. */
  nodeDown(id: string): void;
  /** The owner before this node's claim of `smid` at `epoch` is still handling what it had taken: its final h will come. */
  draining(smid: string, epoch: number): void;
  /** The owner before this node's claim of `smid` at `epoch` handled what it had taken: its h (undefined: no session there). */
  released(smid: string, epoch: number, h: number | undefined): void;
  /**
   * A rolling restart, after the node left: its sessions stay in Redis as
   * they are, for the survivor (sm-orphans.ts) or a resumption anywhere.
   * Nothing more is written but the stanzas the core's drain still hands
   * them (fenced pushes), and a local end hands nothing over (close
   * answers false: the session lives on in Redis).
   */
  leave(): void;
}

export interface RedisSmDeps {
  readonly node: ClusterNode;
  readonly stale: SmStateStore;
  readonly log: SmLog;
  /** Extra seconds a hibernating record lives past its resume max (then Redis drops it; a node normally ends it first). */
  readonly marginSeconds: number;
  /** A claimed session whose resumption failed: it waits out its resume time elsewhere (sm-orphans.ts). */
  release(smid: string, epoch: number, deadline: number): void;
  /**
   * A session a claim found replaced by a newer one on its resource (TAKEOVER's REPLACED), claimed with
   * `epoch` to be ended: handed over now as a timed-out one is (TAKE_ORPHAN, sm-orphans.ts). Resolves once
   * its stale h is stored (or the hand-over is left to a retry); never rejects.
   */
  replaced(smid: string, epoch: number): Promise<void>;
}

export function createRedisSmRegistry(deps: RedisSmDeps): RedisSmRegistry {
  const { node, stale, log } = deps;
  const { redis } = node;
  const keys = smKeys(node.prefix);
  const held = new Map<string, Held>();
  // Claims of a smid awaiting their answer.
  const claiming = new Map<string, number>();
  // The highest epoch another claim announced (sm-fenced) for a smid while a claim of it here was on its way.
  const claimedMeanwhile = new Map<string, number>();
  let left = false;
  const smids = new WeakMap<Session, string>();
  const fencedHandlers: Array<(smid: string, release?: (h: number | undefined) => void, draining?: () => void) => boolean | void> = [];
  // Claims here waiting for the old owner's final h (XEP-0198 §5 across nodes): the answers heard, by epoch.
  const finalH = new Map<string, FinalHWaiter & { refs: number }>();
  const failed = (err: unknown): void => { log.warn({ err }, 'stream management journal write failed'); };
  let source: ((smid: string) => SmQueueCopy | undefined) | undefined;
  const batch = createSmBatch(redis, keys, failed, (smids) => { for (const smid of smids) rewrite(smid); });

  /**
   * A script that wrote to `smid` failed: it may not have run, and a push or
   * ack it lost would leave the stored queue out of step with this node's
   * (a later ack trims by count). The queue is stored whole again, after
   * every write issued so far and before any later one (one connection).
   */
  function rewrite(smid: string): void {
    const h = held.get(smid);
    if (!h || h.lost || left || !redis.isOpen) return;
    const copy = source?.(smid);
    if (!copy) return;
    log.warn({ event: 'sm-journal-rewritten', sm: smidRef(smid), items: copy.items.length }, 'a journal write went unanswered: the queue is stored whole again');
    batch.rewrite(smid, h.epoch, copy.items.map(encodeItem), copy.counterOut);
  }

  /** A fenced write of hash fields (and a TTL: '' keep, '0' persist, else ms). */
  function set(smid: string, ttl: string, values: Record<string, string | number>): void {
    const h = held.get(smid);
    if (!h || left) return;
    batch.set(smid, h.epoch, ttl, values);
  }

  function snapshotOf(session: Session): Record<string, string | number> {
    return {
      presence: session.presence?.toString() ?? '', priority: session.priority, interested: session.interested ? 1 : 0,
      carbons: session.carbons ? 1 : 0, blocklist: session.blocklistRequested ? 1 : 0,
      // RFC 6121 §4.6.3: a JSON array of full JIDs (at most DIRECTED_MAX), '' when none.
      directed: session.directed === undefined ? '' : JSON.stringify([...session.directed.keys()]),
    };
  }

  const journal: SmJournal = {
    open(smid, session, max) {
      // A new smid: no write of it waits in the batch, which may go out after these.
      held.set(smid, { epoch: 1, max, session });
      smids.set(session, smid);
      redis.hSet(keys.record(smid), {
        owner: node.id, epoch: 1, host: session.host!, username: session.username!, resource: session.resource!,
        anonymous: session.anonymous ? 1 : 0, counter_in: 0, counter_out: 0, max, hibernated_at: 0, ...snapshotOf(session),
      }).catch(failed);
      redis.sAdd(keys.node(node.id), smid).catch(failed);
    },
    push(smid, item, waiter) {
      const h = held.get(smid);
      // Also after a rolling restart's leave: what the core's drain still routes to a session left in
      // Redis goes into its queue there (fenced: refused, and routed again, once a survivor claimed it).
      if (h) return batch.push(smid, h.epoch, h.marked === true, encodeItem(item), item, waiter);
      log.debug({ event: 'sm-push-unjournaled', sm: smidRef(smid), id: item.stanza.attr('id'), left }, 'stanza queued in memory only');
      // After the answers of the session's pushes still in flight: the waiter hears them in order.
      batch.after(() => waiter.pushed('memory', item));
    },
    ack(smid, n, counterOut) {
      const h = held.get(smid);
      if (h && !left) batch.ack(smid, h.epoch, n, counterOut);
    },
    received(smid, counterIn) {
      const h = held.get(smid);
      if (h && !left) batch.counterIn(smid, h.epoch, counterIn);
    },
    hibernated(smid, session, at) {
      const h = held.get(smid);
      if (!h || h.mark) return;
      h.since = at;
      h.mark = setTimeout(() => mark(smid, h, session), HIBERNATION_MARK_DELAY_MS);
      h.mark.unref();
    },
    resumed(smid) {
      const h = held.get(smid);
      if (!h) return;
      unmark(h);
      if (!h.marked) return;
      h.marked = false;
      set(smid, '0', { hibernated_at: 0 });
    },
    async close(smid) {
      const h = held.get(smid);
      if (!h) return true;
      held.delete(smid);
      unmark(h);
      // Another node's claim was announced: TAKE would be refused (fenced), so it is not sent.
      if (h.lost) return false;
      batch.flush();
      if (left) return false;
      const take = redis.eval(TAKE, { keys: [keys.record(smid), keys.queue(smid), keys.node(node.id)], arguments: [String(h.epoch), smid] });
      // Failed (it may not have run): sent again until answered, so that the record of a session whose queue
      // this node routed is not left for a resumption (or this NODE_ID's next run) to hand the queue over again.
      take.catch((err: unknown) => { failed(err); void retake(smid, h.epoch); });
      // Unanswered (Redis unreachable): the queue is handed over here, nothing waits for ever.
      const reply = await Promise.race([take, sleep(CLOSE_TIMEOUT_MS)]).catch(() => undefined);
      return reply !== 0;
    },
    async claim(smid, claimant) {
      batch.flush();
      claiming.set(smid, (claiming.get(smid) ?? 0) + 1);
      // Before the script: the old owner's answer may come (another connection) before the script's own.
      const waiter = finalH.get(smid) ?? { got: new Map<number, number | undefined>(), draining: new Set<number>(), waiting: new Set<FinalHWait>(), refs: 0 };
      waiter.refs++;
      finalH.set(smid, waiter);
      try {
        return await takeOver(smid, claimant, waiter);
      } finally {
        if (--waiter.refs === 0) finalH.delete(smid);
      }
    },
    bound(smid) {
      const h = held.get(smid);
      if (!h?.unbound) return;
      // Held with a session now, its directory entry written: a death of this node ends it there (and its
      // survivor's CLAIM marks it `ended`).
      h.unbound = false;
      set(smid, '', { unbound: 0 });
    },
    release(smid) {
      const h = held.get(smid);
      if (!h) return;
      // Held with no session now (`orphan`): a resumption that finds a newer session on its resource ends it (TAKEOVER).
      if (!left) batch.set(smid, h.epoch, '', { orphan: 1 });
      held.delete(smid);
      unmark(h);
      deps.release(smid, h.epoch, Date.now() + h.max * 1000);
    },
    onFenced: (handler) => { fencedHandlers.push(handler); },
    source: (read) => { source = read; },
  };

  /** TAKEOVER for claim(), and the old owner's final h when it held the session live (`waiter`). */
  async function takeOver(smid: string, claimant: SmClaimant, waiter: FinalHWaiter): Promise<SmClaim> {
    let reply: unknown;
    let later: number | undefined;
    try {
      reply = await redis.eval(TAKEOVER, {
        keys: [keys.record(smid), keys.queue(smid), keys.node(node.id)],
        arguments: [node.id, smid, node.prefix, claimant.host ?? '', claimant.username ?? '', claimant.anonymous ? '1' : '0', keys.channel],
      });
    } catch (err) {
      // Unanswered: the script may have run (the old owner told to let go) with no session here.
      void unanswered(smid);
      throw err;
    } finally {
      const n = claiming.get(smid)! - 1;
      if (n > 0) claiming.set(smid, n); else claiming.delete(smid);
      later = claimedMeanwhile.get(smid);
      // Also when the script threw: a notice heard meanwhile must not stay in the map for ever.
      if (!claiming.has(smid)) claimedMeanwhile.delete(smid);
    }
    if (!Array.isArray(reply)) return Number(reply) === -2 ? 'other-account' : 'unknown';
    // RFC 6120 §7.7.2.2: a newer session holds the resource, so this one ended (XEP-0198 §5: item-not-found).
    // Handed over before the answer, so that <failed/> carries the stale h it stored.
    if (Number(reply[0]) === REPLACED) {
      await deps.replaced(smid, Number(reply[1]));
      return 'replaced';
    }
    // Another node claimed it after us and its notice came before our answer (another connection):
    // the session is that node's; building it here would make two owners until our first write.
    if (later !== undefined && later > Number(reply[0])) {
      log.info({ event: 'sm-claim-superseded', sm: smidRef(smid), epoch: Number(reply[0]), later }, 'a takeover was overtaken by another node\'s');
      return 'unknown';
    }
    // Claimed here from a live process? Not if it was this one (the local session is gone) or a dead node.
    const previous = String(reply[3] ?? '');
    const gone = previous === node.id || Number(reply[4]) !== 1;
    const claim = parseClaim(reply, gone);
    const previousHeld = held.get(smid);
    if (previousHeld) {
      unmark(previousHeld);
      // A session built here by an earlier claim of the smid (two resumptions at once): this claim
      // superseded it, as another node's would (fenced()): it ends without handing its queue over.
      if (previousHeld.session) {
        previousHeld.lost = true;
        for (const handler of fencedHandlers) handler(smid);
      }
    }
    // The script told the old owner (sm-fenced) and left the record connected (hibernated_at 0, no TTL) and
    // `unbound` until the session is bound here (bound()): a death of this node before then ends no entry of it.
    held.set(smid, { epoch: Number(reply[0]), max: claim.state.max, session: undefined, ended: fields(reply[1] as unknown[]).ended === '1', unbound: true });
    log.info({ event: 'sm-claimed', sm: smidRef(smid), epoch: Number(reply[0]), from: previous, drain: Number(reply[5]) === 1 }, 'stream management session taken over');
    if (Number(reply[5]) !== 1) return claim;
    // XEP-0198 §5: <resumed h/> counts every stanza the old session took before the cut. A resumption on the
    // same node is a job behind the session's input (resume.ts); here the live old owner stores h once a stanza
    // has been handled, so one still being handled (a handler that awaits) or queued behind it would be sent
    // again by the client, and reach its recipient twice. The old owner answers with its final h once that
    // input has run (released); not heard within FINAL_H_WAIT_MS (a node that died meanwhile; FINAL_H_DRAIN_WAIT_MS
    // once it said it is draining), the stored h.
    const h = await finalHOf(waiter, Number(reply[0]), previous);
    // A later claim from elsewhere meanwhile (its sm-fenced notice dropped this one): the session is that node's.
    if (held.get(smid)?.epoch !== Number(reply[0])) return 'unknown';
    if (h === undefined || h === claim.state.counter_in) return claim;
    log.debug({ event: 'sm-final-h', sm: smidRef(smid), stored: claim.state.counter_in, h }, 'the old owner handled more before letting go');
    return { record: claim.record, state: { ...claim.state, counter_in: h } };
  }

  /**
   * The final h the old owner told for the claim at `epoch`, waited for at most FINAL_H_WAIT_MS, or
   * FINAL_H_DRAIN_WAIT_MS from the owner's word that it is draining.
   */
  async function finalHOf(waiter: FinalHWaiter, epoch: number, owner: string): Promise<number | undefined> {
    if (!waiter.got.has(epoch)) {
      let wake = (): void => undefined;
      const woken = new Promise<void>((resolve) => { wake = resolve; });
      let timer = setTimeout(wake, waiter.draining.has(epoch) ? FINAL_H_DRAIN_WAIT_MS : FINAL_H_WAIT_MS);
      // Woken by the owner's answer for this epoch (released), or by the owner declared dead meanwhile (it may
      // have been, with its lease still running, when claimed): nothing will come then, and the session must be
      // bound here before the dead node's inbox is routed.
      const extend = (): void => {
        clearTimeout(timer);
        timer = setTimeout(wake, FINAL_H_DRAIN_WAIT_MS);
      };
      const wait: FinalHWait = { epoch, owner, wake, extend };
      waiter.waiting.add(wait);
      await woken;
      clearTimeout(timer);
      waiter.waiting.delete(wait);
    }
    return waiter.got.get(epoch);
  }

  /**
   * A claim whose answer never came (the connection dropped): once Redis
   * answers again, a record that is ours with no session of it here (nor a
   * claim of it under way) is a claimed session whose resumption failed: it
   * waits out its resume time and is handed over (release), never left in
   * Redis with nobody to time it out.
   */
  async function unanswered(smid: string): Promise<void> {
    // After a rolling restart's leave, what this node claimed is the survivor's to time out.
    while (!left) {
      try {
        // One being handed over (`handing`: TAKE_ORPHAN ended it, and TAKEOVER claims it no more) is not this claim's.
        const [owner, epoch, max, handing] = await redis.hmGet(keys.record(smid), ['owner', 'epoch', 'max', 'handing']);
        if (owner === node.id && epoch && handing !== '1' && !held.has(smid) && !claiming.has(smid) && !left) {
          log.warn({ event: 'sm-claim-unanswered', sm: smidRef(smid) }, 'a takeover went unanswered but took place: the session waits out its resume time here');
          batch.set(smid, Number(epoch), '', { orphan: 1 });
          deps.release(smid, Number(epoch), Date.now() + Number(max ?? 0) * 1000);
        }
        return;
      } catch {
        await sleep(CLOSE_TIMEOUT_MS);
      }
    }
  }

  /**
   * TAKE once more, after it failed at a session's end here (the queue is
   * routed here meanwhile). Fenced at the same epoch: the record is deleted
   * now (1), was by the first TAKE after all (-1), or was claimed meanwhile
   * by a resumption (0), which resends what was routed here: the one
   * duplicate left, for a resumption during the outage. Given up once the
   * connection is closed (the node stopped).
   */
  async function retake(smid: string, epoch: number): Promise<void> {
    for (;;) {
      await sleep(CLOSE_TIMEOUT_MS);
      if (!redis.isOpen) return;
      try {
        const reply = await redis.eval(TAKE, { keys: [keys.record(smid), keys.queue(smid), keys.node(node.id)], arguments: [String(epoch), smid] });
        if (reply === 0) log.warn({ event: 'sm-take-overtaken', sm: smidRef(smid) }, 'a session whose end went unanswered was resumed elsewhere meanwhile: its queue was handed over here too');
        return;
      } catch {
        // Redis still unreachable: tried again.
      }
    }
  }

  /** The deferred hibernation mark (HIBERNATION_MARK_DELAY_MS): the time, the TTL, and the snapshot once more. */
  function mark(smid: string, h: Held, session: Session): void {
    unmark(h);
    if (held.get(smid) !== h || h.lost) return;
    h.marked = true;
    set(smid, String((h.max + deps.marginSeconds) * 1000), { hibernated_at: h.since ?? Date.now(), ...snapshotOf(session) });
  }

  function unmark(h: Held): void {
    if (h.mark) clearTimeout(h.mark);
    h.mark = undefined;
  }

  return {
    journal,
    register(smid, session) {
      const h = held.get(smid);
      if (h) h.session = session;
      // Resumed here, so announced again (takeover.ts): a later takeover from this live node need not.
      if (h?.ended) {
        h.ended = false;
        set(smid, '', { ended: 0 });
      }
      smids.set(session, smid);
    },
    get: (smid) => held.get(smid)?.session,
    remove(smid) {
      const h = held.get(smid);
      if (h) unmark(h);
      held.delete(smid);
    },
    setStaleH: (smid, owner, h, now) => stale.setStaleH(staleHKey(smid, owner), h, now),
    getStaleH: (smid, owner) => stale.getStaleH(staleHKey(smid, owner)),
    collectStaleH: (now, geriatricSeconds) => stale.collectStaleH(now - geriatricSeconds * 1000),
    get size() { return held.size; },
    snapshot(session) {
      const smid = smids.get(session);
      if (smid !== undefined && held.get(smid)?.session === session) set(smid, '', snapshotOf(session));
    },
    // What this turn queued still goes out, the hibernation marks not yet due with it: the journal
    // stays whole in Redis for whoever resumes (or times out) the sessions.
    leave() {
      for (const [smid, h] of held) if (h.mark && h.session) mark(smid, h, h.session);
      batch.flush();
      left = true;
    },
    fenced(smid, epoch, from) {
      if (claiming.has(smid) && epoch > (claimedMeanwhile.get(smid) ?? 0)) claimedMeanwhile.set(smid, epoch);
      // Named as the owner the claim took it from: the claimer waits for this node's final h (takeOver).
      let told = false;
      const release = from === node.id ? (count: number | undefined): void => {
        if (told) return;
        told = true;
        redis.publish(keys.channel, JSON.stringify({ smid, epoch, released: 1, h: count }))
          .catch((err: unknown) => log.warn({ err, sm: smidRef(smid) }, 'the final h of a session taken over could not be told'));
      } : undefined;
      const draining = from === node.id ? (): void => {
        if (told) return;
        redis.publish(keys.channel, JSON.stringify({ smid, epoch, draining: 1 }))
          .catch((err: unknown) => log.warn({ err, sm: smidRef(smid) }, 'that a session taken over is still handling its input could not be told'));
      } : undefined;
      const h = held.get(smid);
      if (!h || h.epoch >= epoch) return release?.(undefined);
      // Before the handlers: the session they end asks close(), which need not ask Redis.
      h.lost = true;
      unmark(h);
      let releasing = false;
      for (const handler of fencedHandlers) if (handler(smid, release, draining) === true) releasing = true;
      if (releasing) return; // kept, `lost`, until the session ends (close(): nothing handed over, no TAKE)
      // Claimed here and not built yet (our claim still waits, or was just answered): the final h the owner
      // before us told our claim is the session's h, which the stored one may lack (that owner's writes after
      // our claim were refused). Told on, or the new claimer would answer short and the client resend.
      release?.(h.session === undefined ? finalH.get(smid)?.got.get(h.epoch) : undefined);
      held.delete(smid);
    },
    nodeDown(id) {
      for (const w of finalH.values()) for (const wait of w.waiting) if (wait.owner === id) wait.wake();
    },
    draining(smid, epoch) {
      const waiter = finalH.get(smid);
      if (!waiter) return;
      waiter.draining.add(epoch);
      for (const wait of waiter.waiting) if (wait.epoch === epoch) wait.extend();
    },
    released(smid, epoch, count) {
      const waiter = finalH.get(smid);
      if (!waiter) return;
      waiter.got.set(epoch, count);
      for (const wait of waiter.waiting) if (wait.epoch === epoch) wait.wake();
    },
  };
}

/** The snapshot's directed field: a JSON array of strings; absent (an older node's record), empty or unreadable: none. */
function readList(raw: string | undefined): string[] {
  if (!raw) return [];
  try {
    const list: unknown = JSON.parse(raw);
    return Array.isArray(list) ? list.filter((v): v is string => typeof v === 'string') : [];
  } catch {
    return [];
  }
}

/** TAKEOVER's reply: [epoch, hash (flat), items, previous owner, alive]. */
function parseClaim(reply: unknown[], ownerGone: boolean): Exclude<SmClaim, string> {
  const f = fields(reply[1] as unknown[]);
  const items: Undelivered[] = [];
  for (const raw of reply[2] as unknown[]) {
    const item = decodeItem(String(raw));
    if (item) items.push(item);
  }
  const state: SmClaimed = {
    counter_in: Number(f.counter_in ?? 0), counter_out: Number(f.counter_out ?? 0), max: Number(f.max ?? 0), items,
    presence: f.presence ? f.presence : undefined, priority: Number(f.priority ?? 0),
    interested: f.interested === '1', carbons: f.carbons === '1', blocklist: f.blocklist === '1',
    directed: readList(f.directed), ownerGone,
  };
  const record = { epoch: Number(reply[0]), host: f.host ?? '', username: f.username ?? '', resource: f.resource ?? '', anonymous: f.anonymous === '1' };
  return { record, state };
}

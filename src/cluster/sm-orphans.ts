/**
 * Resumable sessions no live process holds (SM_BACKEND=redis): those of a
 * dead node (node.onNodeDown tells one survivor), those this node held in a
 * previous run under the same NODE_ID, and a claimed session whose
 * resumption failed. Each is claimed (its epoch raised: a late write of the
 * dead owner is refused), waits out the rest of its resume time, then is
 * handed over exactly as a local timeout does (hand-over.ts: another
 * resource, offline storage, or an error to the sender; IQs bounced) and its
 * stale h recorded. A resumption meanwhile, on any node, claims it in turn:
 * the sm-fenced message cancels the wait here, and the hand-over is fenced
 * too (TAKE_ORPHAN), so a session is either resumed or handed over, never both. A
 * resumption that finds a newer session bound to its full JID ends it
 * instead (RFC 6120 §7.7.2.2; TAKEOVER in sm-scripts.ts): the claimant
 * hands it over at once, the same way (replaced). The hand-over is in two
 * steps: TAKE_ORPHAN ends the session and reads its queue, keeping both
 * in Redis, and once the queue is routed (what went to offline storage
 * stored) HANDED_OVER deletes them. An answer lost on the way costs no
 * stanza: TAKE_ORPHAN is tried again and answers the same; a node that dies
 * in between leaves the record in its set, for its survivor to hand over.
 */
import type { ModuleContext } from '../xmpp/context.js';
import { NOT_ACKNOWLEDGED, reroute } from '../xmpp/hand-over.js';
import type { SmStateStore } from '../storage/ports/sm-state.js';
import { staleHKey } from '../xmpp/features/stream-management/registry.js';
import type { Undelivered } from '../xmpp/undelivered.js';
import type { ClusterNode } from './node.js';
import type { SmLog } from './sm-registry.js';
import { CLAIM, HANDED_OVER, TAKE_ORPHAN, decodeItem, smKeys, smidRef } from './sm-scripts.js';
import { NS, x } from '../xml/index.js';
import { createStub } from './remote.js';
import type { DirEntry } from './directory.js';
import { RECOVERY_BATCH } from './redis.js';
import { inBatches } from '../util/batches.js';

const DEAD_NOTE = `${NOT_ACKNOWLEDGED} before its server went down`;
const REPLACED_NOTE = `${NOT_ACKNOWLEDGED} before its session was replaced`;
/** A hand-over that failed (Redis unreachable) is tried again after this long. */
const RETRY_MS = 5000;
const sleep = (ms: number): Promise<void> => new Promise((r) => { setTimeout(r, ms).unref(); });

export interface Orphans {
  /** Claims every session `id` owned; each is handed over when its resume time runs out. */
  adoptNode(id: string): Promise<void>;
  /** A session this node claimed with `epoch`: handed over at `deadline` (ms) unless resumed first. */
  watch(smid: string, epoch: number, deadline: number): void;
  /** Another claim of `smid` (sm-fenced): it is no longer ours to hand over. */
  fenced(smid: string, epoch: number): void;
  /**
   * A session a resumption here found replaced by a newer session on its
   * full JID, which the claim took with `epoch` to end it (TAKEOVER's
   * REPLACED): handed over now as a timed-out one is. Never rejects.
   */
  replaced(smid: string, epoch: number): Promise<void>;
  /** The routing the hand-over uses (the feature's context). */
  attach(ctx: ModuleContext): void;
  /**
   * A clean stop: what is still waiting is handed over now, or nobody
   * would. On a work queue of the core, which the server's drain waits for.
   */
  stop(ctx: ModuleContext): void;
  /**
   * A rolling restart: nothing waiting here is handed over by this node;
   * the records stay in its set, for the survivor told of its departure.
   */
  release(): void;
  readonly size: number;
}

export interface OrphanDeps {
  readonly node: ClusterNode;
  readonly stale: SmStateStore;
  readonly staleH: boolean;
  readonly log: SmLog;
}

/** `replaced`: claimed to be ended (TAKEOVER's REPLACED), whose hand-over is tried again. */
interface Orphan { readonly epoch: number; readonly timer: NodeJS.Timeout | undefined; readonly replaced?: boolean }

/** TAKE_ORPHAN's reply (sm-scripts.ts): counter_in, host, username, items, resource, presence, directed, ended, covered, anonymous. */
type Taken = [string | null, string | null, string | null, unknown[], string | null, string | null, string | null, string | null, number | null, string | null];

export function createOrphans(deps: OrphanDeps): Orphans {
  const { node, log } = deps;
  const { redis } = node;
  const keys = smKeys(node.prefix);
  const waiting = new Map<string, Orphan>();
  let ctx: ModuleContext | undefined;

  function watch(smid: string, epoch: number, deadline: number, replaced = false): void {
    clearTimeout(waiting.get(smid)?.timer);
    const timer = setTimeout(() => { void expire(smid); }, Math.max(0, deadline - Date.now()));
    timer.unref();
    waiting.set(smid, { epoch, timer, replaced });
  }

  async function expire(smid: string): Promise<void> {
    const orphan = waiting.get(smid);
    if (!orphan) return;
    // Not before the server can route what it hands over.
    if (!ctx) return watch(smid, orphan.epoch, Date.now() + RETRY_MS, orphan.replaced);
    waiting.delete(smid);
    let reply: unknown;
    try {
      reply = await redis.eval(TAKE_ORPHAN, { keys: [keys.record(smid), keys.queue(smid), keys.node(node.id)], arguments: [String(orphan.epoch), smid, node.prefix] });
    } catch (err) {
      log.warn({ err, sm: smidRef(smid) }, 'handing over a dead node\'s session failed: trying again');
      watch(smid, orphan.epoch, Date.now() + RETRY_MS, orphan.replaced);
      return;
    }
    // Claimed elsewhere meanwhile (resumed): not ours any more.
    if (!Array.isArray(reply)) return;
    let routed: Promise<void>;
    if (orphan.replaced) {
      const [items, done] = end(ctx, reply, REPLACED_NOTE);
      routed = done;
      log.info({ event: 'sm-orphan-replaced', sm: smidRef(smid), handedOver: items }, 'a resumption found a newer session on the resource of a session no node held: that one ended, its queue is handed over');
    } else {
      // `ended`: its owner died with it (CLAIM). Otherwise a live owner let it go to a claim whose resumption then
      // failed, and it timed out as a session with no transport does anywhere (here or on a dead node that held it).
      const [items, done] = end(ctx, reply, (reply as Taken)[7] === '1' ? DEAD_NOTE : NOT_ACKNOWLEDGED);
      routed = done;
      log.info({ event: 'sm-orphan-timed-out', sm: smidRef(smid), handedOver: items }, 'a session of a dead node was not resumed: its queue is handed over');
    }
    const [, host, username] = reply as Taken;
    const c = ctx;
    // Deleted behind the offline stores the routes queued on the account's delivery line (queues.ts): a crash
    // before then leaves the record, for a survivor to hand over again, rather than the queue lost. The line
    // waits RETRY_MS at most (the drain at a clean stop waits for it); the delete goes on being tried after.
    const queued = routed.catch(() => undefined).then(() => {
      const done = (): Promise<unknown> => Promise.race([handedOver(smid, orphan.epoch), sleep(RETRY_MS)]);
      if (host && username) c.queues.deliveries.after(`${username}@${host}`, done);
      else void done();
    });
    await Promise.all([queued, staleH(smid, reply)]);
  }

  /**
   * HANDED_OVER (sm-scripts.ts): the record and queue of a session whose
   * queue was handed over, deleted; tried again while Redis does not answer
   * (never TAKE_ORPHAN again: that would hand the queue over twice), given up
   * once this node's connection is closed (it stopped: its successor under
   * this NODE_ID, or the survivor told of its departure, hands it over again).
   */
  async function handedOver(smid: string, epoch: number): Promise<void> {
    for (;;) {
      try {
        const reply = await redis.eval(HANDED_OVER, { keys: [keys.record(smid), keys.queue(smid), keys.node(node.id)], arguments: [String(epoch), smid] });
        if (reply === 0) log.warn({ event: 'sm-orphan-taken-meanwhile', sm: smidRef(smid) }, 'a session handed over here was adopted by another node meanwhile: it hands it over too');
        return;
      } catch (err) {
        if (!redis.isOpen) return;
        log.warn({ err, sm: smidRef(smid) }, 'deleting a handed-over session failed: trying again');
        await sleep(RETRY_MS);
      }
    }
  }

  /**
   * The end of a session no live process holds, as TAKE_ORPHAN returned it: its
   * queue handed over (hand-over.ts: another resource of the account, which
   * may be a newer session on the same full JID, offline storage, or an
   * error to the sender) and its unavailable presence sent if owed; returns
   * how many stanzas were handed over, and when their routes have settled.
   */
  function end(c: ModuleContext, take: readonly unknown[], note: string): [number, Promise<void>] {
    const [, host, username, raw, resource, presence, directed, ended, covered] = take as Taken;
    const items = raw.map((r) => decodeItem(String(r))).filter((i): i is Undelivered => i !== undefined);
    const routed = host && username ? reroute(c, username, host, items, note) : Promise.resolve();
    // RFC 6121 §4.5.2: the session ends here. A dead owner's was ended at its death (CLAIM's `ended`); one
    // claimed from a live owner whose resumption failed was not (that owner let it go without a word), nor
    // was it if the node that then held it died (CLAIM keeps no `ended` for it), even mid-way through its
    // own hand-over, which may have sent it already: twice then, never not at all. When
    // a newer session holds the full JID and is available (`covered`), only the directed-presence
    // recipients its presence does not reach are told (presence.ts): to the others the unavailable would be its.
    if (host && username && resource && ended !== '1' && (presence || directed)) {
      endPresence(c, `${username}@${host}`, resource, presence ?? '', directed ?? '', covered === 1);
    }
    return [items.length, routed];
  }

  /** XEP-0198 §5: the h of a session that can no longer be resumed, for a <failed h/> later. */
  async function staleH(smid: string, take: readonly unknown[]): Promise<void> {
    if (!deps.staleH) return;
    const [counterIn, host, username, , , , , , , anonymous] = take as Taken;
    const owner = { host: host ?? undefined, username: username ?? undefined, anonymous: anonymous === '1' };
    await deps.stale.setStaleH(staleHKey(smid, owner), Number(counterIn ?? 0), Date.now()).catch((err: unknown) => log.warn({ err }, 'stale h storage failed'));
  }

  async function replaced(smid: string, epoch: number): Promise<void> {
    // Ended now, with the epoch of the claim (one held here before, a claim of ours whose resumption
    // failed, waits no more): a failure is tried again as a timeout's is, and another claim meanwhile fences it.
    clearTimeout(waiting.get(smid)?.timer);
    waiting.set(smid, { epoch, timer: undefined, replaced: true });
    await expire(smid);
  }

  /**
   * Unavailable presence on behalf of the ended session (its snapshot): its contacts and directed-presence
   * recipients, or when `covered` those recipients a newer session's presence does not reach (events.ts).
   */
  function endPresence(c: ModuleContext, bare: string, resource: string, presence: string, directed: string, covered: boolean): void {
    let list: string[] = [];
    try { list = directed ? (JSON.parse(directed) as string[]) : []; } catch { list = []; }
    const entry: DirEntry = {
      node: node.id, sid: '', seq: 0, priority: 0, presence: presence === '' ? null : presence, interested: false, carbons: false,
      anonymous: false, ...(list.length > 0 ? { directed: list } : {}),
    };
    // Not in the session table: nothing is ever sent to it.
    const stub = createStub(bare, resource, entry, { stanza: () => undefined, close: () => undefined });
    const sent = covered
      ? c.hooks.run('session-superseded', { session: stub })
      : c.router.routeNoTo(stub, x('presence', { xmlns: NS.CLIENT, type: 'unavailable', from: stub.full_jid }));
    Promise.resolve(sent)
      .catch((err: unknown) => log.warn({ err, jid: stub.full_jid }, 'unavailable presence for an ended session failed'));
  }

  async function adoptOne(from: string, smid: string): Promise<void> {
    const [epoch, at, max, owner, handing] = await redis.hmGet(keys.record(smid), ['epoch', 'hibernated_at', 'max', 'owner', 'handing']);
    if (!epoch) {
      await redis.sRem(keys.node(from), smid);
      return;
    }
    // Resumed elsewhere since the set was read (TAKEOVER moved it out of the set): a live node's, not
    // an orphan. The claim below is fenced on the epoch read with this owner, so none can slip in after.
    if (owner !== from) return;
    const reply = await redis.eval(CLAIM, {
      keys: [keys.record(smid), keys.queue(smid), keys.node(node.id)], arguments: [epoch, node.id, smid, node.prefix],
    });
    if (!Array.isArray(reply)) return;
    // A session that was connected when its node died started hibernating then. One it was handing over
    // (TAKE_ORPHAN) had ended: it is handed over at once.
    const since = Number(at) > 0 ? Number(at) : Date.now();
    watch(smid, Number(reply[0]), handing === '1' ? Date.now() : since + Number(max) * 1000);
  }

  return {
    async adoptNode(id) {
      const smids = await redis.sMembers(keys.node(id));
      // Leaving (a rolling restart's SIGTERM meanwhile): the rest are a staying node's (node.ts giveBack).
      const leaving = () => id !== node.id && node.departing;
      await inBatches(smids, RECOVERY_BATCH, async (smid) => {
        // Those this process holds itself (a claim of its own) are not orphans.
        if (id === node.id && waiting.has(smid)) return;
        try { await adoptOne(id, smid); } catch (err) { log.warn({ err, sm: smidRef(smid), node: id }, 'taking over a dead node\'s session failed'); }
      }, leaving);
      if (leaving()) return;
      if (smids.length > 0) log.info({ event: 'sm-node-adopted', node: id, sessions: smids.length }, 'took over the resumable sessions of a dead node');
    },
    watch,
    replaced,
    fenced(smid, epoch) {
      const orphan = waiting.get(smid);
      if (!orphan || orphan.epoch >= epoch) return;
      clearTimeout(orphan.timer);
      waiting.delete(smid);
    },
    attach(c) { ctx = c; },
    stop(c) {
      for (const [smid, orphan] of waiting) {
        clearTimeout(orphan.timer);
        // The drain waits RETRY_MS at most: with Redis unreachable the record stays, for a restart to take over.
        c.queues.deliveries.after(`sm-orphan:${smid}`, () => Promise.race([expire(smid), sleep(RETRY_MS)]));
      }
    },
    release() {
      for (const orphan of waiting.values()) clearTimeout(orphan.timer);
      waiting.clear();
    },
    get size() { return waiting.size; },
  };
}

import type { SmStateStore } from '../../../storage/ports/sm-state.js';
import type { Session } from '../../session.js';
import type { Undelivered } from '../../undelivered.js';

/**
 * Where resumable sessions are found by smid (MongooseIM's sm_session table)
 * and where the last h of sessions that timed out is kept for
 * `stale_h.geriatric` seconds (its stream_mgmt_stale_h table, XEP-0198 v1.6
 * §5). One interface, so the Redis backend of the scale-out work can take
 * the place of `memory` without the feature changing.
 */
export interface SmRegistry {
  register(smid: string, session: Session): void;
  get(smid: string): Session | undefined;
  remove(smid: string): void;
  /** Records the h of `owner`'s session `smid`, which can no longer be resumed. */
  setStaleH(smid: string, owner: StaleHOwner, h: number, now: number): Promise<void>;
  /** The h recorded for `smid`, if `owner` (the account resuming) is the one it was recorded for. */
  getStaleH(smid: string, owner: StaleHOwner): Promise<number | undefined>;
  /** Drops stale h records older than `geriatric` seconds; returns how many. */
  collectStaleH(now: number, geriatricSeconds: number): Promise<number>;
  readonly size: number;
  /** The durable copy a cluster backend keeps (see SmJournal); none in memory, whose path stays synchronous. */
  readonly journal?: SmJournal;
}

/** The account a stale h record is for: a session's host, username, and whether it is a guest's. */
export interface StaleHOwner {
  readonly host?: string | undefined;
  readonly username?: string | undefined;
  readonly anonymous: boolean;
}

/**
 * Where `smid`'s stale h is stored: under the smid and its account, so a
 * <resume/> by another account finds nothing, exactly as for an unknown
 * smid (no h to tell the two apart, nor to learn another's traffic by). A
 * guest's (SASL ANONYMOUS) is any guest's of the host, as its resumption
 * is (resume.ts): '@' as its localpart, which no account's can be (RFC 7622 §3.3.1).
 */
export function staleHKey(smid: string, owner: StaleHOwner): string {
  return `${smid} ${owner.anonymous ? '@' : owner.username ?? ''}@${owner.host ?? ''}`;
}

/** Who holds a resumable session in the journal, for a resumption on a node that does not (SmJournal.claim). */
export interface SmRecord {
  /** Fencing token: every takeover raises it, and a write carrying an older one is refused. */
  readonly epoch: number;
  readonly host: string;
  readonly username: string;
  readonly resource: string;
  readonly anonymous: boolean;
}

/**
 * Longest a live old owner goes on handling the input it took before another node's claim (XEP-0198 §5 across
 * nodes) before it lets the session go and tells the claimer its final h (journal.ts); and longest a takeover
 * waits for that final h from an owner that says nothing, which may be dead within its lease (then the stored h).
 */
export const FINAL_H_WAIT_MS = 1000;

/**
 * Longest a takeover waits for the final h once the old owner said it is still handling that input (`draining`,
 * sent when the notice reaches it). Its own bound starts then, and its answer travels back the same way (Redis
 * pub/sub): with one bound for both, the claimer gave up first and answered with the stored h, short by what the
 * owner handled after the claim, and the client sent that again (twice to its recipient). A dead owner says
 * nothing, so its claimer still waits FINAL_H_WAIT_MS only: a resumption binds before the dead node's inbox is
 * routed, as it must (what that inbox holds for the session would go offline).
 */
export const FINAL_H_DRAIN_WAIT_MS = 2 * FINAL_H_WAIT_MS;

/** A session's state as a takeover gets it (SmJournal.claim): MongooseIM's sm_state fields and the session snapshot. */
export interface SmClaimed {
  readonly counter_in: number;
  readonly counter_out: number;
  /** Seconds the session may hibernate (its resume max). */
  readonly max: number;
  /** Unacknowledged, then not yet sent, stanzas, oldest first. */
  readonly items: readonly Undelivered[];
  /** The seed's presence (serialized), priority and interested, and the carbons flag. */
  readonly presence: string | undefined;
  readonly priority: number;
  readonly interested: boolean;
  readonly carbons: boolean;
  /** XEP-0191 §3.3: it requested the blocklist (gets pushes). */
  readonly blocklist: boolean;
  /** RFC 6121 §4.6.3: the full JIDs it sent directed available presence to, owed unavailable at its end. */
  readonly directed: readonly string[];
  /** Its owner was dead: its contacts were told it went unavailable (the cluster does so at a death). */
  readonly ownerGone: boolean;
}

/** Who asks to resume a session held elsewhere: the journal checks it may (resume.ts sameAccount's rule). */
export interface SmClaimant {
  readonly host: string | undefined;
  readonly username: string | undefined;
  readonly anonymous: boolean;
}

/** A claim's answer: the session, now this node's, or why not (nothing was written then). */
export type SmClaim = { readonly record: SmRecord; readonly state: SmClaimed } | 'unknown' | 'other-account' | 'replaced';

/**
 * How the journal answered a push: stored; fenced (another node owns the
 * session now); missing (no record: Redis lost it), failed (the store did
 * not answer) or memory (not journaled: the session is no longer held
 * here), in which three the stanza lives on in this node's memory only.
 */
export type PushResult = 'stored' | 'fenced' | 'missing' | 'failed' | 'memory';

/** Hears how each push went, in the order of the pushes (SmJournal.push). */
export interface PushWaiter {
  pushed(result: PushResult, item: Undelivered): void;
}

/**
 * The durable copy of stream-management state a cluster backend keeps
 * (SM_BACKEND=redis), so that another node can resume a session and its
 * unacknowledged stanzas survive their node. Writes go out in call order
 * and are fenced: once another node took the session over, they are refused.
 * Only a push is answered (a stanza is written to the client once it is
 * stored); the others are fire-and-forget, their failures logged.
 */
export interface SmJournal {
  /** <enable resume/>: the record is created, owned by this process. */
  open(smid: string, session: Session, max: number): void;
  /**
   * A stanza entered the SM queue. `waiter` hears the answer, after those of
   * the pushes before it (no promise per stanza: a busy node pushes tens of
   * thousands a second, and the answers of one batch come together).
   */
  push(smid: string, item: Undelivered, waiter: PushWaiter): void;
  /** The client acknowledged `n` stanzas: they leave the head of the queue; its h is `counterOut`. */
  ack(smid: string, n: number, counterOut: number): void;
  /** The stanzas the client sent that have been handled (the server's h). */
  received(smid: string, counterIn: number): void;
  /**
   * The session hibernates (its record is marked so and expires unless
   * resumed; a backend may wait a moment first, as a resumption on this
   * node soon after would undo it) or is connected again.
   */
  hibernated(smid: string, session: Session, at: number): void;
  resumed(smid: string): void;
  /**
   * The session ended here: its record and queue are deleted. False when
   * another node holds it now (its queue is that node's); true when it was
   * ours, or the store could not say (then this node hands the queue over).
   */
  close(smid: string): Promise<boolean>;
  /**
   * Takes over a session this process does not hold, if `claimant` may
   * resume it (the same account, or anonymous on the same host): one
   * atomic step, so no other claim comes between the check and the claim.
   */
  claim(smid: string, claimant: SmClaimant): Promise<SmClaim>;
  /** A claimed session whose resumption failed after all: it waits out its resume time, then is handed over. */
  release(smid: string): void;
  /**
   * A claimed session was built here and its 'resource-bound' has run (the
   * cluster's directory entry of it is written): held with a session from
   * now on, so a death of this node ends it through that entry.
   */
  bound(smid: string): void;
  /**
   * `handler` hears of each local session another node took over. With `release` (this node was its owner, and
   * the claimer waits), the handler that ends the session calls it with the session's final h once the input it
   * took before the claim has been handled, and returns true; with no session, the registry answers for it. When
   * that input is still running as it is told, it calls `draining` first: the claimer then waits longer for it.
   */
  onFenced(handler: (smid: string, release?: (h: number | undefined) => void, draining?: () => void) => boolean | void): void;
  /**
   * Where the journal reads a local session's queue back (its unacknowledged,
   * then waiting, stanzas and counter_out) to store it whole again, when a
   * write's answer was lost and the stored copy may have missed it.
   */
  source(read: (smid: string) => SmQueueCopy | undefined): void;
}

/** A session's queue as the node holds it (SmJournal.source). */
export interface SmQueueCopy {
  readonly items: readonly Undelivered[];
  readonly counterOut: number;
}

/**
 * Live sessions by smid in this process's memory (a Session cannot leave
 * it); stale h records in `stale` (storage.smState), so they outlive a
 * restart and a client that comes back after one still learns its h.
 */
export function createMemorySmRegistry(stale: SmStateStore): SmRegistry {
  const sessions = new Map<string, Session>();
  return {
    register: (smid, session) => { sessions.set(smid, session); },
    get: (smid) => sessions.get(smid),
    remove: (smid) => { sessions.delete(smid); },
    setStaleH: (smid, owner, h, now) => stale.setStaleH(staleHKey(smid, owner), h, now),
    getStaleH: (smid, owner) => stale.getStaleH(staleHKey(smid, owner)),
    collectStaleH: (now, geriatricSeconds) => stale.collectStaleH(now - geriatricSeconds * 1000),
    get size() { return sessions.size; },
  };
}

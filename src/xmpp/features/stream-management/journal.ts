import type { Jid } from '../../../jid/index.js';
import type { XmlElement } from '../../../xml/index.js';
import type { ModuleContext } from '../../context.js';
import type { StreamError } from '../../errors.js';
import type { Session } from '../../session.js';
import type { Buffered } from './index.js';
import type { FlowJournal } from './flow.js';
import type { PushResult, SmJournal, SmRegistry } from './registry.js';
import { WriteGate } from './gate.js';
import { FINAL_H_WAIT_MS } from './registry.js';

/**
 * Stream management's side of a journal (SM_BACKEND=redis, issue 14 item
 * 3): every stanza that enters a session's SM queue is stored before it is
 * written, acks and the server's h are stored as they change. When a store
 * is refused (another node took the session over by a resumption) or that
 * node says so, the local session ends with conflict (XEP-0198 §5: the
 * session was resumed elsewhere) and the stanza that was refused is routed
 * again, which reaches the new owner. Its end (index.ts) hands nothing over
 * and sends no unavailable presence: the journal says it lives on.
 */
/** Longest wait for a session taken over elsewhere to appear in this node's directory mirror. */
const SETTLE_MS = 1000;
const POLL_MS = 20;
/** Per context and JID: the wait the stanzas queued for it share (its deadline, set when the first starts), and how many are queued. */
const settleWaits = new WeakMap<ModuleContext, Map<string, { deadline: number; queued: number }>>();

/**
 * Routes a stanza for `jid`, a session another node may just have taken
 * over (XEP-0198 §5 across nodes): the new owner claims the session, then
 * binds it, and its directory entry reaches this node a moment later. Routed
 * at once, the stanza would find no session for the full JID and go to
 * offline storage, where a resumed session never looks (XEP-0160 is for new
 * sessions); so it waits, at most SETTLE_MS, for the JID to be known again,
 * then is routed as any stanza (to the new owner, or offline after all). On
 * the deliveries queue: in order per JID, and a shutdown's drain waits.
 * Stanzas for one JID queued while a wait is on share it (its deadline):
 * for a session that is gone for good, a backlog of N waits SETTLE_MS once,
 * not N times in turn.
 * Resolves once it is routed and what that queued for the account (an
 * offline store: the 'deliveries' line of its bare JID) is done; rejects if
 * the route itself failed (a cluster inbox entry is then left pending). An
 * offline store that fails answers the sender (internal-server-error,
 * features/offline): the stanza is answered for, and this resolves.
 */
export function routeWhenSettled(ctx: ModuleContext, jid: Jid, stanza: XmlElement): Promise<void> {
  const key = jid.toString();
  let waits = settleWaits.get(ctx);
  if (!waits) settleWaits.set(ctx, waits = new Map());
  const wait = waits.get(key) ?? { deadline: 0, queued: 0 };
  waits.set(key, wait);
  wait.queued++;
  return new Promise<void>((resolve, reject) => {
    ctx.queues.deliveries.after(`settle:${key}`, async () => {
      try {
        if (wait.deadline === 0) wait.deadline = Date.now() + SETTLE_MS;
        while (ctx.sessions.get(jid.domain, jid.local, jid.resource) === undefined && Date.now() < wait.deadline) {
          await new Promise((r) => setTimeout(r, POLL_MS));
        }
        const found = ctx.sessions.get(jid.domain, jid.local, jid.resource) !== undefined;
        ctx.log.debug({ event: 'sm-settled', jid: jid.toString(), id: stanza.attr('id'), found }, found ? 'routed to the session again' : 'session not found again: routed as for an unavailable resource');
        await ctx.router.route(null, stanza, jid);
        // Offline storage queues its write on the account's line (features/offline): done when this is.
        await new Promise<void>((done) => { ctx.queues.deliveries.after(jid.bare, done); });
        resolve();
      } catch (err) {
        reject(err);
        throw err;
      } finally {
        if (--wait.queued === 0) waits.delete(key);
      }
    });
  });
}

/**
 * The end of a local session another node resumed (XEP-0198 §5: conflict).
 * One object, so that 'session-destroyed' handlers can tell this end from
 * any other (movedElsewhere): the directory keeps the session's entry for
 * the new owner to overwrite, so the resource is never unknown meanwhile.
 */
const MOVED: StreamError = Object.freeze({ condition: 'conflict', text: 'the session was resumed on another node' });

/** Whether a session ended because another node resumed it (its 'session-destroyed' reason). */
export function movedElsewhere(reason: StreamError | undefined): boolean {
  return reason === MOVED;
}

export interface SmCluster {
  readonly flow: FlowJournal;
}

/** `counterIn`: a local session's count of the stanzas it took (XEP-0198 h), for the claimer of a session taken over. */
export function createSmCluster(ctx: ModuleContext, journal: SmJournal, registry: SmRegistry, counterIn: (session: Session) => number | undefined): SmCluster {
  function fence(session: Session): void {
    if (session.destroyed) return;
    ctx.log.info({ event: 'session-moved', session: session.logId, jid: session.full_jid }, 'session resumed on another node');
    session.close(MOVED);
  }

  /** A stanza the journal refused: this session is no longer the one to deliver it. */
  function refused(session: Session, item: Buffered): void {
    ctx.log.debug({ event: 'sm-push-refused', session: session.logId, id: item.stanza.attr('id') }, 'journal refused a stanza: routed again');
    // One handling what it took before another node's claim ends once that is done (onFenced below), and
    // what it refused is routed then: it is still in the table meanwhile, and the route would come back to it.
    const held = draining.get(session);
    if (held) return void held.push(item);
    fence(session);
    reroute(session, item);
  }

  /** After fence(): the session is out of the table, so the route cannot come back to it. */
  function reroute(session: Session, item: Buffered): void {
    // Not awaited (the deliveries queue logs a failure); a shutdown's drain waits for it.
    if (session.jid) routeWhenSettled(ctx, session.jid, item.stanza).catch(() => undefined);
  }

  /** Local sessions another node claimed that still handle what they took before the claim, and what they refused meanwhile. */
  const draining = new WeakMap<Session, Buffered[]>();

  journal.onFenced((smid, release, stillHandling) => {
    const session = registry.get(smid);
    if (!session) return false;
    if (!release) {
      fence(session);
      return false;
    }
    // XEP-0198 §5 across nodes: the claimer's <resumed h/> must count what this session took before the claim,
    // still being handled or queued behind a handler that awaits, or the client sends it again (twice to its
    // recipient). As a resumption here is a job behind that input (resume.ts), the session ends in a job behind
    // it, and tells its h then: meanwhile it is counted as usual, and what it sends the client is refused by
    // the journal and routed again to the session's new place (refused()). Not longer than the claimer waits.
    const refusedMeanwhile: Buffered[] = [];
    draining.set(session, refusedMeanwhile);
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      draining.delete(session);
      release(counterIn(session));
      fence(session);
      for (const item of refusedMeanwhile) reroute(session, item);
    };
    const timer = setTimeout(finish, FINAL_H_WAIT_MS);
    timer.unref();
    ctx.queues.sessions.after(session, finish);
    // Still handling (finish did not run at once): the claimer waits for this drain past the wait it gives an owner
    // that says nothing (one that may be dead).
    if (!done) stillHandling?.();
    return true;
  });

  /** What the gate hears of a push that was not stored as asked. */
  function answered(session: Session, result: PushResult, item: Buffered): void {
    if (result === 'fenced') return refused(session, item);
    // No record (Redis lost it), or the store is unreachable (the batch logged why): the stanza is
    // still delivered from this node's queue.
    if (result === 'missing') ctx.log.warn({ event: 'sm-record-missing', session: session.logId }, 'stream management record missing: this session is no longer resumable elsewhere');
    else if (result === 'failed') ctx.log.debug({ event: 'sm-push-failed', session: session.logId, id: item.stanza.attr('id') }, 'stanza queued in memory only: the journal write failed');
  }

  return {
    flow: {
      push(session, st, item) {
        if (st.smid === undefined) return;
        const gate = st.gate ??= new WriteGate(session, (result, pushed) => answered(session, result, pushed));
        gate.expect();
        try {
          journal.push(st.smid, item, gate);
        } catch (err) {
          // Never answered otherwise: the session's writes would wait for ever.
          ctx.log.warn({ err, session: session.logId }, 'stream management journal write failed');
          gate.pushed('failed', item);
        }
      },
      acked(st, n) {
        if (st.smid !== undefined) journal.ack(st.smid, n, st.queue.counter_out);
      },
    },
  };
}

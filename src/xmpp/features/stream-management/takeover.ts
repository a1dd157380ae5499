import { NS, WRITTEN_LIMITS, parseXml, x, type XmlElement } from '../../../xml/index.js';
import { tryParseJid, type Jid } from '../../../jid/index.js';
import type { ModuleContext } from '../../context.js';
import type { Session } from '../../session.js';
import { bindSession } from '../bind.js';
import { isPromise } from '../../pipeline.js';
import { add, distance } from './counter.js';
import type { SmOptions, SmState } from './index.js';
import { newState } from './state.js';
import type { ResumeReply } from './resume.js';
import type { SmClaim, SmClaimed, SmJournal, SmRecord, SmRegistry } from './registry.js';

type Failed = (condition: string, h?: number, extra?: XmlElement) => XmlElement;
type NotFound = (carrier: Session, previd: string, reply: ResumeReply, other?: 'remote' | 'replaced') => void | Promise<void>;

export interface TakeoverDeps {
  readonly journal: SmJournal;
  readonly registry: SmRegistry;
  readonly states: WeakMap<Session, SmState>;
  readonly failed: Failed;
  readonly notFound: NotFound;
}

/**
 * XEP-0198 §5 resumption of a session this process does not hold
 * (SM_BACKEND=redis): its owner is another node, alive or dead. The claim
 * checks the account against the journal's record and moves the session to
 * this node in one step (fencing: the old owner's writes are refused from
 * then on, and it is told to let go). The session is then built on the carrier itself, which
 * already holds the new transport: the bound JID, the counters, the queue
 * and the snapshot (presence, priority, interested, carbons, blocklist requested, directed-presence
 * recipients). 'resource-bound' loads
 * the account as a bind does; <resumed/> and the unacknowledged stanzas
 * follow.
 */
export function createTakeover(ctx: ModuleContext, opts: SmOptions, deps: TakeoverDeps): (carrier: Session, previd: string, h: number, reply: ResumeReply) => Promise<unknown> {
  const { journal, registry, states, failed, notFound } = deps;
  return async (carrier, previd, h, reply) => {
    let claim: SmClaim;
    try {
      claim = await journal.claim(previd, carrier);
    } catch (err) {
      // The journal is unreachable: the session stays where it is, the client may bind anew.
      ctx.log.warn({ err, session: carrier.logId }, 'stream management journal read failed');
      return await notFound(carrier, previd, reply);
    }
    if (claim === 'unknown') return await notFound(carrier, previd, reply);
    // Another account's smid: answered as an unknown one (only the metric tells them apart).
    if (claim === 'other-account') return await notFound(carrier, previd, reply, 'remote');
    // RFC 6120 §7.7.2.2: a newer session bound its full JID, so this one ended (the same answer, its own metric).
    if (claim === 'replaced') return await notFound(carrier, previd, reply, 'replaced');
    const { record, state: claimed } = claim;
    if (carrier.destroyed) return journal.release(previd);
    // As SmQueue.ack: an h behind counter_out (more than half the counter space away) is a late ack.
    const ahead = distance(claimed.counter_out, h);
    const acked = ahead > 2 ** 31 ? 0 : ahead;
    if (acked > claimed.items.length) {
      // XEP-0198 §4 handled-count-too-high; the session waits out its resume time as it would have.
      journal.release(previd);
      ctx.metrics.sm('resume-failed');
      ctx.metrics.smResume('handled-count-too-high', 'none', carrier.transport);
      return reply.failed(carrier, failed('undefined-condition', undefined,
        x('handled-count-too-high', { xmlns: NS.SM, h, 'send-count': add(claimed.counter_out, claimed.items.length) })));
    }
    try {
      return adopt(carrier, previd, record, claimed, acked, reply);
    } catch (err) {
      // Claimed but not built: it waits out its resume time and is handed over, not left in Redis.
      if (!states.has(carrier)) journal.release(previd);
      throw err;
    }
  };

  function adopt(carrier: Session, previd: string, record: SmRecord, claimed: SmClaimed, acked: number, reply: ResumeReply): unknown {
    // RFC 6120 §7.7.2.2 as bind.ts does it: a local session on that resource gets conflict (the old
    // owner's, a remote stub, is fenced instead).
    const existing = ctx.sessions.getLocal(record.host, record.username, record.resource);
    if (existing !== undefined && existing !== carrier) existing.close({ condition: 'conflict', text: 'replaced by a resumed session' });
    carrier.anonymous = record.anonymous;
    carrier.presence = snapshot(claimed.presence);
    carrier.priority = claimed.priority;
    carrier.interested = claimed.interested ? true : undefined;
    ctx.sessions.setCarbons(carrier, claimed.carbons);
    carrier.blocklistRequested = claimed.blocklist;
    // RFC 6121 §4.6.3: the recipients are still owed unavailable when the session ends, here now (the
    // old owner, told the session moved, sends them nothing). After a death the survivor may have told
    // them already: one more unavailable at the end then, never a sender seen online for good.
    carrier.directed = recipients(claimed.directed);
    const st = newState(opts, previd, claimed.max, add(claimed.counter_out, acked), claimed.counter_in);
    // Flow control as on the old node: buffer_max in flight, the rest waits for acks.
    for (const item of claimed.items.slice(acked)) {
      if (st.queue.buffer_size < st.buffer_max) st.queue.push(item);
      else st.pending.push(item, Buffer.byteLength(item.stanza.toString()));
    }
    states.set(carrier, st);
    registry.register(previd, carrier);
    if (acked > 0) journal.ack(previd, acked, st.queue.counter_out);
    const loaded = bindSession(ctx, carrier, record.username, record.resource);
    const resent = st.queue.unacked();
    const head = reply.greeting(carrier, x('resumed', { xmlns: NS.SM, previd, h: st.counter_in }));
    // Its node died and its contacts were told it went unavailable (RFC 6121 §4.5.2, the cluster did it for the
    // session): it is announced available again below.
    const announce = !claimed.ownerGone || carrier.presence === undefined ? undefined : carrier.presence;
    // Its queue's stanzas, those <resume h/> acknowledged too: a page of stored messages its dead node
    // delivered is among them, and still stored (offline/index.ts does not send it again).
    const wasUnavailable = announce !== undefined;
    ctx.lifecycle.adopt(carrier, [...head, ...resent.map((b) => b.stanza)], wasUnavailable, wasUnavailable ? claimed.items.map((i) => i.stanza) : undefined);
    ctx.metrics.sm('resumed');
    // Held by another node: which transport it had there is not known here.
    ctx.metrics.smResume('resumed', 'none', carrier.transport);
    ctx.log.info({ event: 'session-taken-over', session: carrier.logId, jid: carrier.full_jid, transport: carrier.transport, resent: resent.length }, 'session resumed from another node');
    if (resent.length > 0) ctx.log.debug({ event: 'sm-resent', session: carrier.logId, acked, ids: resent.slice(0, 64).map((b) => b.stanza.attr('id')) }, 'resent on resumption (taken over)');
    // The carrier's next element waits for what 'resource-bound' loads (its roster), as after a bind.
    // Then the journal learns the session is bound here (its directory entry written): until then a death of
    // this node ended nothing of it, and the survivor that adopts it owes its contacts the unavailable.
    const bound = (): unknown => {
      journal.bound(previd);
      // Available again, as if the client had sent its presence once more.
      return announce === undefined ? undefined : ctx.router.routeNoTo(carrier, announce.clone());
    };
    return isPromise(loaded) ? loaded.then(bound) : bound();
  }

  function recipients(list: readonly string[]): Map<string, Jid> | undefined {
    const jids = new Map<string, Jid>();
    for (const full of list) {
      const jid = tryParseJid(full);
      if (jid) jids.set(full, jid);
    }
    return jids.size > 0 ? jids : undefined;
  }

  function snapshot(xml: string | undefined): XmlElement | undefined {
    if (xml === undefined) return undefined;
    try { return parseXml(xml, WRITTEN_LIMITS, NS.CLIENT); } catch { return undefined; }
  }
}

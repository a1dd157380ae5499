import { NS, x, type XmlElement } from '../../../xml/index.js';
import type { ModuleContext } from '../../context.js';
import type { Session } from '../../session.js';
import type { AckResult } from './queue.js';
import type { Buffered, SmOptions, SmState } from './index.js';

/** Cluster only: what flow control tells the journal (SmJournal, through index.ts). */
export interface FlowJournal {
  /** A stanza enters the SM queue: stored, and the session's writes from now on wait for it (`st.gate`). */
  push(session: Session, st: SmState, item: Buffered): void;
  /** The client acknowledged `n` stanzas. */
  acked(st: SmState, n: number): void;
}

/**
 * The outgoing half of XEP-0198 with flow control (issue 10). At most
 * buffer_max stanzas are in flight unacknowledged; the rest wait in the
 * session's pending queue (bounded in bytes) and go out as the client's
 * acks make room, so a client that keeps acknowledging is never closed for
 * a burst. A client that stops answering <r/> for ack_timeout seconds is
 * closed with connection-timeout, one that lets the pending queue overflow
 * with policy-violation; either way its stanzas are handed over.
 */
export interface Flow {
  /** stanza-out with SM enabled: write it, or hold it until there is room. */
  out(session: Session, st: SmState, stanza: XmlElement): void;
  /** Moves pending stanzas into the unacked queue while there is room, writing them. */
  release(session: Session, st: SmState): void;
  /** Applies the client's h (an <a/> or a <resume/>), telling 'stanzas-acked' what it covered. */
  ack(session: Session, st: SmState, h: number): AckResult;
  /** Sends one <r/> after the stanzas of this tick. */
  requestAck(session: Session, st: SmState): void;
  /** The session stops being connected (hibernation, end): no <r/> is awaited any more. */
  stop(session: Session, st: SmState): void;
  dispose(): void;
}

export function createFlow(ctx: ModuleContext, opts: SmOptions, states: WeakMap<Session, SmState>, journal?: FlowJournal): Flow {
  // Stanzas below ack_freq that still await an <r/> (sent after ack_quiet_period).
  const quiet = new Set<Session>();
  // Requests due in the same tick are sent once per session, after the
  // stanzas of that tick: a burst of n stanzas gets one <r/>, not n.
  const dueR = new Set<Session>();
  const flushR = (): void => {
    for (const s of dueR) {
      const st = states.get(s);
      if (s.conn && st) sendR(s, st);
    }
    dueR.clear();
  };

  /**
   * Writes to the client. With a journal (cluster), after the stanzas queued
   * before have been stored (gate.ts). `sent` as for Conn.send.
   */
  function emit(session: Session, st: SmState, el: XmlElement, sent?: () => void): void {
    if (st.gate === undefined) session.write(el, sent);
    else st.gate.write(el, sent);
  }

  /**
   * Writes an <r/>. ack_timeout runs from when the transport hands it to the client, not from
   * when it is queued: over BOSH it waits for the client's next request, which may come any time
   * within the inactivity period, and an <r/> the client has not got cannot be answered. Handed
   * out on a transport the session no longer has (hibernated, resumed), it starts nothing.
   */
  function sendR(session: Session, st: SmState): void {
    const conn = session.conn;
    emit(session, st, x('r', { xmlns: NS.SM }), () => {
      if (session.conn === conn && !session.destroyed && states.get(session) === st) startTimer(session, st);
    });
  }

  function requestAck(session: Session, st: SmState): void {
    quiet.delete(session);
    st.sinceRequest = 0;
    if (dueR.size === 0) process.nextTick(flushR);
    dueR.add(session);
  }

  /** ejabberd's ack_timeout: runs from an <r/> handed to the client until the client answers it (any <a/>). */
  function startTimer(session: Session, st: SmState): void {
    if (st.ackTimer || st.queue.buffer_size === 0) return;
    st.ackTimer = setTimeout(() => {
      st.ackTimer = undefined;
      if (session.conn === null || session.destroyed) return;
      // The client's <a/> may be in input the transport still holds (inbound shaping: its own stanzas
      // before it are slowed, never dropped): a client that is sending is not gone; the wait goes on.
      if (session.conn.inputHeld) {
        startTimer(session, st);
        return;
      }
      ctx.log.info({ event: 'sm-ack-timeout', session: session.logId, unacked: st.queue.buffer_size, pending: st.pending.length }, 'client stopped acknowledging');
      session.close({ condition: 'connection-timeout', text: `no acknowledgement for ${opts.ack_timeout} s` });
    }, opts.ack_timeout * 1000);
    st.ackTimer.unref();
  }

  function stopTimer(st: SmState): void {
    if (st.ackTimer) clearTimeout(st.ackTimer);
    st.ackTimer = undefined;
  }

  function write(session: Session, st: SmState, stanza: XmlElement): void {
    emit(session, st, stanza);
    if (!opts.ack) return;
    // A full queue waits for an ack: ask for it now, not after the quiet period.
    if (++st.sinceRequest >= st.ack_freq || st.queue.buffer_size >= st.buffer_max) requestAck(session, st);
    else quiet.add(session);
  }

  function out(session: Session, st: SmState, stanza: XmlElement): void {
    if (!opts.buffer) {
      if (session.conn) write(session, st, stanza);
      return;
    }
    const item = { stanza, at: Date.now() };
    // Issue 14 item 3: stored (write-through) before it is written or held.
    if (journal) journal.push(session, st, item);
    if (session.conn === null || st.pending.length > 0 || st.queue.buffer_size >= st.buffer_max) {
      if (!st.pending.push(item, Buffer.byteLength(stanza.toString()))) {
        // Bounded in bytes (issue 10): the queue and this stanza are handed over, never dropped.
        session.close({ condition: 'policy-violation', text: `more than ${st.pending.maxBytes} bytes of stanzas waiting for acknowledgement` });
      }
      return;
    }
    st.queue.push(item);
    write(session, st, stanza);
  }

  function release(session: Session, st: SmState): void {
    if (session.conn === null) return;
    while (st.pending.length > 0 && st.queue.buffer_size < st.buffer_max) {
      const item = st.pending.shift()!;
      st.queue.push(item);
      write(session, st, item.stanza);
    }
  }

  function ack(session: Session, st: SmState, h: number): AckResult {
    const acked: XmlElement[] = [];
    const result = st.queue.ack(h, ctx.hooks.has('stanzas-acked') ? (b) => acked.push(b.stanza) : undefined);
    if (!result.ok) return result;
    // Any <a/> answers the outstanding <r/>, whatever its h: the client is alive (ejabberd's resend_rack,
    // Prosody's handle_a). One whose h lags (xmpp.js 0.14 counts one stanza short) was closed after
    // ack_timeout while it answered every request. What it leaves unacked stays buffered; each stanza
    // written later asks again (write), and a client that never acks fills buffer_max, then the pending queue.
    stopTimer(st);
    if (result.acked === 0) return result;
    if (journal) journal.acked(st, result.acked);
    if (st.queue.buffer_size === 0) quiet.delete(session);
    if (acked.length > 0) ctx.hooks.run('stanzas-acked', { session, stanzas: acked });
    return result;
  }

  const timer = opts.ack && opts.ack_freq > 1 ? setInterval(() => {
    // One timer for all sessions: ask for acks of stanzas that sat unrequested for a quiet period.
    for (const s of quiet) {
      const st = states.get(s);
      if (st && s.conn) { st.sinceRequest = 0; sendR(s, st); }
    }
    quiet.clear();
  }, opts.ack_quiet_period * 1000) : undefined;
  timer?.unref();

  return {
    out, release, ack, requestAck,
    stop(session, st) { stopTimer(st); quiet.delete(session); dueR.delete(session); },
    dispose() { if (timer) clearInterval(timer); },
  };
}

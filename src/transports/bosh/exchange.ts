import { createHash } from 'node:crypto';
import { serialize } from '../../xml/index.js';
import { recoverableErrorBody, type BoshRequest } from './body.js';
import type { BoshConn } from './conn.js';
import type { RidVerdict } from './rid-window.js';
import type { HttpReply } from './types.js';
import { skippedWhenEnding } from '../input-pump.js';

/**
 * The request half of a BOSH session: what each request for an existing
 * sid does, by XEP-0124 §8–§15 and XEP-0206 §5. The connection (conn.ts)
 * holds the state; these functions decide.
 */
export function onRequest(conn: BoshConn, req: BoshRequest, reply: HttpReply, now: number): void {
  if (answeredAsEnding(conn, req, reply, now)) return;
  // §17.2: the XMPP session is gone under a live BOSH session without a stream close.
  if (conn.session.destroyed) return conn.fail('remote-connection-failed', reply, 'the XMPP session is gone');
  const verdict = conn.window.classify(req.rid);
  // §15 before anything is served: a repeated rid must repeat the key it was sent with, or
  // whoever knows the sid could take over a held request, or replay a buffered response.
  if ((verdict === 'answered' || verdict === 'open' || (verdict === 'future' && conn.pending.has(req.rid))) && !repeatsKey(conn, req)) {
    return conn.fail('item-not-found', reply, 'invalid key for a repeated rid (§15)');
  }
  switch (verdict) {
    case 'outside': return conn.fail('item-not-found', reply, `rid ${req.rid} is beyond the window (§14.2)`);
    case 'gone': return conn.fail('item-not-found', reply, `rid ${req.rid} is no longer buffered (§14.3)`);
    // §14.3 and §13: a rid whose first request was abandoned (counted as answered empty:
    // BoshConn.#abandoned), sent again. The empty body in the buffer never went out: the client's
    // terminate waits for the terminate body as the first did (or it would leave the session to the
    // client's next rid or its inactivity), and another request gets what was queued since.
    case 'answered':
      if (req.rid === conn.terminatedAt) return conn.holdAgain(req.rid, reply, now);
      return conn.unsentAnswer(req.rid) ? conn.answerUnsent(req.rid, reply, now) : conn.resend(req.rid, reply, now);
    case 'open': return replace(conn, req.rid, reply);
    case 'future': return future(conn, req, reply, now);
    case 'next': break;
  }
  if (overactive(conn, req)) return conn.fail('policy-violation', reply, 'too many simultaneous requests (§11)');
  if (overfed(conn, req)) return conn.fail('policy-violation', reply, 'more input than the session has processed (§11)');
  process(conn, req, reply, now);
  // §14.2: requests that arrived early are processed once the gap before them fills, under the
  // same input bound as one that came in order (judged now, with the input before it counted).
  for (let p = conn.pending.get(conn.window.next); p && !conn.ended && !conn.closing; p = conn.pending.get(conn.window.next)) {
    conn.pending.delete(p.request.rid);
    if (overfed(conn, p.request)) return conn.fail('policy-violation', p.reply, 'more input than the session has processed (§11)');
    process(conn, p.request, p.reply, now);
  }
  conn.scheduleFlush();
}

/**
 * The rules for a session that is over for its client (§13: after its terminate) or whose stream
 * the core closed (its final body waiting): every request that names such a session is judged here
 * first, one whose body breaks a rule too (by its start tag, with no payloads: transport.ts), so
 * none ends it with a condition of its own, which would lose the client its stream error and what
 * was queued for it. `req` undefined: a start tag with no readable rid or type, which is not of the
 * session's sequence (item-not-found; it waits on for its client's own request). True when `reply`
 * was answered.
 */
export function answeredAsEnding(conn: BoshConn, req: BoshRequest | undefined, reply: HttpReply, now: number): boolean {
  if (conn.terminatedAt === undefined && !conn.closing) return false;
  if (req === undefined) {
    conn.refuse(reply, 'the start tag has no readable rid or type: not of the session\'s sequence (§14.2)');
    return true;
  }
  // §13: after its terminate the session is over for the client, and a request with a later rid is
  // for a session that is no longer valid (§17.2 item-not-found): its payloads are not taken, and
  // it says so (given the terminate body, or an empty one, they were dropped unread). It ends
  // nothing while a request is open to get the terminate body (refuseAfterTerminate).
  if (conn.terminatedAt !== undefined && req.rid > conn.terminatedAt) conn.refuseAfterTerminate(reply, req.rid);
  else if (conn.closing) onClosing(conn, req, reply, now);
  else return false;
  return true;
}

/**
 * The core closed the stream while no request was held: this one carries the news, unless it
 * repeats a rid whose response was lost on the way, which is sent again first (§14.3).
 */
function onClosing(conn: BoshConn, req: BoshRequest, reply: HttpReply, now: number): void {
  const verdict = conn.window.classify(req.rid);
  // §13 with §14.3: a rid sent again whose connection closed before the answer (the client's
  // terminate, or any request). Nothing fetched the terminate body (that would have ended the
  // session): this one gets it, not the empty body the abandoned request counted as
  // (BoshConn.#abandoned), which never went out.
  if (verdict === 'answered' && (req.rid === conn.terminatedAt || conn.unsentAnswer(req.rid)) && repeatsKey(conn, req)) return conn.deliverFinalTo(reply, req, true);
  if (verdict === 'answered' && repeatsKey(conn, req)) return conn.resend(req.rid, reply, now);
  // The final body (the stanzas still queued, the stream error) goes only to a request of the
  // session's own sequence: a rid in the window with its §15 key. Anything else that names the
  // sid is refused without ending the session, so the client's own next request still gets it.
  if (!ofTheSequence(conn, req, verdict)) return conn.refuse(reply, `rid ${req.rid} or its key is not the session's next (§14.2, §15)`);
  conn.deliverFinalTo(reply, req);
}

/** §14.2: inside the window but ahead of a gap: keep it unprocessed until the gap fills or `wait` passes. */
function future(conn: BoshConn, req: BoshRequest, reply: HttpReply, now: number): void {
  if (conn.pending.has(req.rid)) return replace(conn, req.rid, reply);
  if (overactive(conn, req)) return conn.fail('policy-violation', reply, 'too many simultaneous requests (§11)');
  conn.pending.set(req.rid, { request: req, reply, deadline: now + conn.params.wait * 1000 });
  conn.watch(reply);
  conn.rearm(now);
}

/**
 * §14.3: a repeated rid we hold (processed or pending): the old request gets
 * a recoverable error (§17.3) and the new one takes its place.
 */
function replace(conn: BoshConn, rid: number, reply: HttpReply): void {
  const entry = conn.held.find((h) => h.rid === rid) ?? conn.pending.get(rid);
  const error = serialize(recoverableErrorBody());
  if (!entry) return reply.send(200, conn.params.contentType, error);
  entry.reply.send(200, conn.params.contentType, error);
  entry.reply = reply;
  conn.watch(reply);
}

/**
 * §11: more new requests unanswered than 'requests' is overactivity; one
 * more is allowed when it pauses or terminates the session.
 */
function overactive(conn: BoshConn, req: BoshRequest): boolean {
  const outstanding = conn.held.length + conn.pending.size + 1;
  return outstanding > conn.params.requests + (req.pause !== undefined || req.terminate ? 1 : 0);
}

/**
 * Issue 10: the payloads of a request wait while the session's earlier
 * input is paced, so a client that keeps posting bodies faster than they
 * are processed would queue input without limit. Beyond a bound a client
 * that waits for its answers never reaches, that is overactivity too.
 * Not for a terminate: its payloads MUST be forwarded (§13: the client's
 * last message, its unavailable presence), §11 exempts it from the
 * overactivity rules, and it ends the input (no later request is taken,
 * onRequest): the session's unprocessed input is then at most the bound plus
 * one body (MAX_STANZA_SIZE, the parser's limit), run at once
 * (BoshConn.peerTerminated).
 */
function overfed(conn: BoshConn, req: BoshRequest): boolean {
  return !req.terminate && req.payloads.length > 0 && conn.input.queuedBytes + req.bytes > conn.maxInputBytes;
}

function process(conn: BoshConn, req: BoshRequest, reply: HttpReply, now: number): void {
  if (!keyValid(conn, req)) return conn.fail('item-not-found', reply, 'invalid key sequence (§15)');
  conn.window.accept(req.rid);
  conn.unpause(req.rid);
  conn.hold(req.rid, reply, now);
  if (pollingTooFast(conn, req, now)) return conn.fail('policy-violation', reply, `polling more often than every ${conn.params.polling} s (§12)`);
  // §9.2: the client lacks a response we sent: say so at once. What it acknowledges is not kept (§14.3).
  if (conn.params.ackMode && req.ack !== undefined && req.ack < conn.window.highestAnswered) conn.report(req.ack + 1, now);
  // §9.2: with acknowledgements on, a request without 'ack' says every earlier response arrived.
  if (conn.params.ackMode) conn.window.acknowledged(req.ack ?? req.rid - 1);
  // The session sees the request in order with the input still waiting before it (issue 10 pacing).
  const input = (): void => {
    if (req.restart) conn.input.push({ bytes: req.bytes, stanzas: 0, run: () => live(conn) && restart(conn, req) });
    else deliver(conn, req);
  };
  // §13: the payloads of a terminate request are delivered first, then the stream ends.
  if (req.terminate) conn.peerTerminated(req.rid, input, { bytes: 0, stanzas: 0, run: () => live(conn) && conn.session.streamClosed() });
  else input();
  if (req.pause !== undefined && conn.params.maxpause > 0 && !conn.closing && !conn.ended) conn.pause(req.rid, req.pause, now);
}

/**
 * §8 and §13 on the session creation request (§7.1), once its stream has opened: its payloads are
 * the session's first input (they were dropped unread, a SASL <auth/> sent there never answered),
 * and a type='terminate' ends the session it creates (it lived on until its inactivity period).
 * Prosody does both. The body is at most PRE_AUTH_MAX_STANZA_SIZE, the session's first input.
 */
export function creationInput(conn: BoshConn, req: BoshRequest): void {
  if (req.terminate) conn.peerTerminated(req.rid, () => deliver(conn, req), { bytes: 0, stanzas: 0, run: () => live(conn) && conn.session.streamClosed() });
  else if (req.payloads.length > 0) deliver(conn, req);
}

/** The session can still take input: not closing, not ended, not destroyed. */
function live(conn: BoshConn): boolean {
  return !conn.closing && !conn.ended && !conn.session.destroyed;
}

/** Each payload is charged its share of the body's bytes. */
function deliver(conn: BoshConn, req: BoshRequest): void {
  const bytes = Math.ceil(req.bytes / Math.max(1, req.payloads.length));
  for (const el of req.payloads) {
    conn.input.push({
      bytes, stanzas: 1,
      run: (ending) => (live(conn) ? !(ending && skippedWhenEnding(el, conn.session)) && conn.session.element(el) : conn.notRun(el)),
    });
  }
}

/**
 * XEP-0206 §5: xmpp:restart='true' after SASL success opens a new stream;
 * its payloads are ignored. Like RFC 7395's <open/>, it is an error while
 * the stream is open.
 */
function restart(conn: BoshConn, req: BoshRequest): void {
  const session = conn.session;
  if (!session.notopen) return session.streamError('bad-format', 'unexpected restart: the stream is open');
  const attrs: Record<string, string> = { version: req.xbosh('version') ?? '1.0' };
  if (req.attrs.to !== undefined) attrs.to = req.attrs.to;
  if (req.attrs['xml:lang'] !== undefined) attrs['xml:lang'] = req.attrs['xml:lang'];
  session.streamOpened(attrs);
}

/**
 * §12: in a polling session (hold or wait 0), two consecutive empty
 * requests closer than 'polling' seconds, the first answered empty, are
 * overactivity. Sessions that hold requests are not checked this way: a
 * reloaded page may legitimately send an empty request while the old
 * page's request is still held.
 */
function pollingTooFast(conn: BoshConn, req: BoshRequest, now: number): boolean {
  const p = conn.params;
  const empty = req.payloads.length === 0 && !req.terminate && !req.restart && req.pause === undefined;
  const previous = conn.lastEmptyAt;
  conn.lastEmptyAt = empty ? now : undefined;
  if (!empty || previous === undefined || (p.hold > 0 && p.wait > 0)) return false;
  return !conn.lastResponseHadPayloads && now - previous < p.polling * 1000;
}

/**
 * §15: when the creation request carried 'newkey', every request must
 * carry a 'key' whose SHA-1 is the previous key; 'newkey' starts a new
 * sequence. Comparison is case-insensitive.
 */
function keyValid(conn: BoshConn, req: BoshRequest): boolean {
  if (conn.key === undefined) return true;
  if (req.key === undefined) return false;
  if (createHash('sha1').update(req.key).digest('hex') !== conn.key) return false;
  conn.key = (req.newkey ?? req.key).toLowerCase();
  conn.rememberKey(req.rid, req.key.toLowerCase());
  return true;
}

/**
 * A request that may take a closed stream's final body: its rid is the next one, or ahead of it
 * within the window (§14.2), or one still held or pending; with §15 keys, its key is the one that
 * rid must carry (hashed once per rid up to the last key seen).
 */
function ofTheSequence(conn: BoshConn, req: BoshRequest, verdict: RidVerdict): boolean {
  if (verdict === 'outside' || verdict === 'gone' || verdict === 'answered') return false;
  if (conn.key === undefined) return true;
  if (verdict === 'open' || conn.pending.has(req.rid)) return repeatsKey(conn, req);
  if (req.key === undefined) return false;
  let key = req.key.toLowerCase();
  for (let n = req.rid - conn.window.next + 1; n > 0; n--) key = createHash('sha1').update(key).digest('hex');
  return key === conn.key;
}

/** §15 with §14.3: a resent request carries the key of the first one with its rid (a pending one's is its own). */
function repeatsKey(conn: BoshConn, req: BoshRequest): boolean {
  if (conn.key === undefined) return true;
  const first = conn.pending.get(req.rid)?.request.key?.toLowerCase() ?? conn.keyOf(req.rid);
  return first !== undefined && req.key?.toLowerCase() === first;
}

import { serialize, type XmlAttrInput, type XmlElement } from '../../xml/index.js';
import { DETACHED, type Conn, type ConnEvents, type StreamHeader } from '../../xmpp/conn.js';
import type { StreamError } from '../../xmpp/errors.js';
import type { BoshEndReason } from '../../xmpp/metrics-port.js';
import {
  creationAttrs, legacyStatus, notProcessedErrors, recoverableErrorBody, responseBody, streamErrorPayload, terminateBody, terminateForStreamError,
  type TerminalCondition,
} from './body.js';
import type { BoshParams, BoshRequest } from './body.js';
import type { RidWindow } from './rid-window.js';
import type { BoshHost, Held, HttpReply, Pending } from './types.js';
import { InputPump, type InputItem } from '../input-pump.js';
import { OutQueue, fittingCount, type Queued } from './out-queue.js';
import { logTag } from '../../util/log-tag.js';

const TIMER_SLACK_MS = 5;
/** XEP-0124 §22: the schema types a response's 'time' (§9.2) xs:unsignedShort. */
const MAX_REPORT_TIME_MS = 65535;

/**
 * The output half and the life cycle of one BOSH session: the requests held
 * open (at most `hold`, XEP-0124 §8), the payloads waiting for a request,
 * the one timer (wait, inactivity and pause deadlines, §8 and §10) and the
 * final terminate body. The request half (what to do with each request:
 * rid window, overactivity, pause, restart, terminate) is in exchange.ts.
 */
export class BoshConn implements Conn {
  readonly transport = 'bosh' as const;
  /** The session this transport carries; stream resumption (XEP-0198) may move it. */
  session: ConnEvents = DETACHED;
  /** For the per-address limits: follows the session this transport carries. */
  get authenticated(): boolean { return this.session.authenticated; }
  /** Requests processed and waiting for a response, in rid order. */
  readonly held: Held[] = [];
  /** The client's payloads, run in order under pacing and inbound shaping (issue 10). */
  readonly input: InputPump;
  readonly #out: OutQueue;
  #header: StreamHeader | undefined;
  /** Set when the core closed the stream: the terminate body still to deliver. */
  #final: {
    readonly body: XmlElement; readonly error: StreamError | undefined; readonly clean: boolean; readonly reason: BoshEndReason;
    /** The XMPP session was resumed on another transport (XEP-0198), which took this one's place: it lives on. */
    readonly replaced: boolean;
    /** The errors for the client's stanzas the input never ran (close()). */
    readonly bounces: readonly XmlElement[];
  } | undefined;
  /** Set by close() while it runs out the input: the payloads not run go to #notRun. */
  #stopping = false;
  #notRun: XmlElement[] = [];
  #ended = false;
  /** Payloads of the terminate body while no request has fetched it. */
  #unfetched: readonly Queued[] = [];
  /** What the terminate body does not carry (the cap), handed over after its payloads, in order with them. */
  #beyond: XmlElement[] = [];
  /** The rid of the client's type='terminate' (§13): it reads nothing more, and no later rid is taken. */
  #terminatedAt: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #flushQueued = false;
  /** ms since the epoch when the last held request was answered (§10 inactivity starts then). */
  #idleSince: number;
  /** §10: the inactivity period in ms while a pause is in force. */
  #pauseMs: number | undefined;
  /**
   * §10 with XEP-0198: from a pause until the client is back and answering (see inputHeld), the rid
   * of the first request that can carry its answer to what waited for it (Infinity while paused).
   */
  #backAt: number | undefined;
  /** §9.2: the 'report' and 'time' for the next response. */
  #report: { report: number; time: number } | undefined;
  /** Out-of-order requests by rid, waiting for the gap to fill. */
  readonly pending = new Map<number, Pending>();
  /** §12: whether the last response carried payloads, and when the last empty request came (polling sessions). */
  lastResponseHadPayloads = true;
  lastEmptyAt: number | undefined;
  /** §15: the key the next request's key must hash to; undefined when the client uses no keys. */
  key: string | undefined;
  /** §15: the key each processed rid came with, while the rid may still be repeated (§14.3). */
  readonly #ridKeys = new Map<number, string>();
  /**
   * Rids answered after their connection was gone (#abandoned): the empty body in the buffer never
   * went out, so the client that sends the rid again (§14.3) gets what is queued instead (answerUnsent).
   */
  readonly #unsent = new Set<number>();

  constructor(
    readonly params: BoshParams,
    readonly window: RidWindow,
    readonly secure: boolean,
    readonly ip: string,
    private readonly host: BoshHost<BoshConn>,
    now: number,
  ) {
    this.#idleSince = now;
    this.#out = new OutQueue(host.flow.maxQueuedBytes, () => {
      this.session.drained();
      this.input.kick();
    }, host.observed, () => this.#dropSlowConsumer(), host.flow.slowConsumerGrace * 1000);
    this.input = new InputPump({
      shaping: host.flow.shaping,
      backlogged: () => this.#out.high || this.session.inputBacklogged,
      turns: host.turns,
      // Once the input waits or is done, what it produced goes out (see flush).
      idle: () => this.scheduleFlush(),
      blocked: (reason) => {
        host.flowControl(reason === 'output' ? 'paused-output' : 'paused-rate');
        this.scheduleFlush();
      },
    });
  }

  get ended(): boolean { return this.#ended; }
  get closing(): boolean { return this.#final !== undefined || this.#stopping; }

  /** A payload of the client's that the session did not take (exchange.ts deliver): when the stream is closing, close() answers it. */
  notRun(el: XmlElement): void {
    if (this.#stopping && this.#final === undefined) this.#notRun.push(el);
  }
  /** The rid of the client's terminate (§13), once it was processed. */
  get terminatedAt(): number | undefined { return this.#terminatedAt; }
  get queued(): number { return this.#out.length; }
  get bufferedBytes(): number { return this.#out.bytes; }
  /**
   * Input waits in the pump, or the client paused (§10): then it can neither read what waits for it
   * (an XEP-0198 <r/>) nor answer, and the pause the server granted, not the wait for an answer,
   * decides when it is gone. Back, it answers in the request after the one that fetched it.
   */
  get inputHeld(): boolean { return this.input.queuedItems > 0 || this.#backAt !== undefined; }
  inputRoom(): void { this.input.kick(); }
  /** Unprocessed input bytes this session may have (see exchange.ts overfed). */
  get maxInputBytes(): number { return this.host.flow.maxInputBytes; }
  get sid(): string { return this.params.sid; }

  rememberKey(rid: number, key: string): void {
    this.#ridKeys.set(rid, key);
    // Only rids the window still holds (open, or a buffered answer: rid-window.ts) can be repeated.
    for (const r of this.#ridKeys.keys()) if (r < this.window.next && this.window.classify(r) === 'gone') this.#ridKeys.delete(r);
  }

  keyOf(rid: number): string | undefined { return this.#ridKeys.get(rid); }

  /**
   * §13: the client ends the session with `streamEnd` after its input (`payloads`, the terminate
   * request's own). It reads nothing more from now on, not even the stream error its payloads may
   * cause (close()), so its requests wait for the terminate body (flush), and its input runs now: it
   * no longer waits for room in an output queue nobody will fetch (it waited until BOSH_INACTIVITY
   * behind a full one), nor for the inbound rate (the input a session may have is bounded, see
   * exchange.ts overfed). The core's close follows, at once or once the session's queue has handled
   * what came before. Requests that came early for later rids (§14.2) are for a session that is
   * over: they get item-not-found, their payloads not taken, as a later rid arriving now does
   * (exchange.ts); answered with the others, they would have been dropped unread.
   */
  peerTerminated(rid: number, payloads: () => void, streamEnd: InputItem): void {
    this.#terminatedAt = rid;
    for (const [later, p] of this.pending) {
      this.pending.delete(later);
      this.refuse(p.reply, `rid ${later} comes after the client's terminate (§13)`);
    }
    payloads();
    this.input.push(streamEnd);
    this.input.flush();
  }

  // Conn: calls from the core.

  open(header: StreamHeader): void {
    // The first header fills 'from' and 'authid' of the creation response (XEP-0206 §4); restarts need nothing.
    this.#header ??= header;
  }

  /** `sent` runs once a response carries `el` to the client (XEP-0198's ack timer starts then, not while it waits here). */
  send(el: XmlElement, sent?: () => void): void {
    if (this.#ended || this.#final) return this.session.undelivered([el]);
    this.#out.push(el, sent);
    this.scheduleFlush();
  }

  attach(events: ConnEvents): void {
    this.session = events;
  }

  loggedIn(): void { this.host.loggedIn(this); }

  close(error?: StreamError): void {
    if (this.#ended || this.#final) return;
    // XEP-0206 §7: stanzas not yet delivered precede the stream error, as
    // many as one response carries: the terminate body is a response like
    // any other (BOSH_MAX_RESPONSE_BYTES, the stream error counted), never
    // one huge body for the client (or a cluster node relaying it) to read.
    // But after the client's own terminate it reads nothing more (strophe.js
    // drops every payload once it is disconnecting; StanzaJS 12 fails with
    // "push() after EOF"), and an SM <r/> there could never be answered.
    // What the body does not carry goes back to the session as undelivered,
    // which hands it over (another resource, offline storage, or an error to
    // the sender) once it is gone; under XEP-0198 its queue still holds it.
    // Prosody's mod_bosh sends a bare terminate body; ejabberd's caps it at
    // max_concat elements and routes the rest again. A stream error after
    // the client's terminate (its last payloads caused it, or the server
    // ended the stream before the terminate's turn) is read no more than a
    // clean end: the body carries the error only.
    const unread = this.#terminatedAt !== undefined;
    const reason = error === undefined ? 'terminate' : error.condition === 'system-shutdown' ? 'shutdown' : 'error';
    // A resumption elsewhere detaches this transport before it closes it (lifecycle.ts).
    const replaced = this.session === DETACHED;
    // The client's stanzas of bodies already answered that the paced input has not run yet (issue 10)
    // are never processed now, and nothing else tells the client (their responses went out as for any
    // request): the final body carries their errors (notProcessedErrors), after what was queued.
    // After the client's terminate the input has already run (peerTerminated).
    // The errors count in the body's room first: they can go nowhere else, while the queued stanzas
    // that do not fit are handed over (and a stanza larger than the room goes as in any response only
    // when there is no error to carry).
    this.#stopping = true;
    this.input.flush();
    const notRun = this.#notRun;
    this.#notRun = [];
    const room = this.#finalRoom(error);
    const bounces = this.#capped(replaced ? [] : notProcessedErrors(notRun, this.#header?.from), room);
    const { carried, left } = unread ? { carried: [], left: this.#out.takeAll() }
      : this.#out.takeFinal(room - sizeOf(bounces), bounces.length === 0);
    this.#final = {
      body: terminateForStreamError(error, [...carried.map((q) => q.el), ...bounces]), error, clean: error === undefined, reason, replaced, bounces,
    };
    this.#unfetched = carried;
    // Given back once a request has fetched the body, or with its payloads when none does (end()):
    // handed over before them, it would reach offline storage or another resource ahead of older
    // stanzas. A body that carries no stanza holds nothing back.
    this.#beyond = left;
    if (carried.length === 0) this.#giveBack(this.#takeBeyond());
    if (this.held.length > 0) this.#deliverFinal();
    else this.rearm(Date.now());
  }

  /** Payload bytes the terminate body for `error` has for stanzas: a response's, less its stream error. */
  #finalRoom(error: StreamError | undefined): number {
    const tail = streamErrorPayload(error);
    return this.host.flow.maxResponseBytes - (tail === undefined ? 0 : Buffer.byteLength(serialize(tail)));
  }

  // The request half (exchange.ts).

  /** Holds a processed request open (§8). */
  hold(rid: number, reply: HttpReply, now: number): void {
    const held: Held = { rid, reply, deadline: now + this.params.wait * 1000, since: now };
    let i = this.held.length;
    while (i > 0 && this.held[i - 1]!.rid > rid) i--;
    this.held.splice(i, 0, held);
    this.watch(reply);
  }

  /** Answers a request at once from the response buffer (§14.3). */
  resend(rid: number, reply: HttpReply, now: number): void {
    const body = this.window.cached(rid)!;
    this.host.log.debug({ event: 'bosh-resent', sidTag: logTag(this.sid), session: this.session.logId, rid, ids: [...body.matchAll(/<message\b[^>]*?\sid=["']([^"']+)["']/g)].map((m) => m[1]) }, 'a repeated rid answered from the buffer (XEP-0124 §14.3)');
    reply.send(200, this.params.contentType, body);
    if (this.#idle()) this.#idleSince = now;
    this.rearm(now);
  }

  /** §14.3: the buffered answer to `rid` is one that never went out (#abandoned). */
  unsentAnswer(rid: number): boolean {
    return this.#unsent.has(rid) && this.window.cached(rid) !== undefined;
  }

  /**
   * §14.3: a rid sent again whose answer never went out (its first request abandoned: #abandoned).
   * The empty body it counted as answered with is not what the client waits for: it gets what is
   * queued now, at once (a reloaded page that repeats its open requests waits for nothing, and
   * for no `wait`), and the buffer keeps that. With nothing queued, before authentication it is held
   * again, as the first was (holdAgain): the SASL answer is on its way, and strophe.js sends no other
   * request before it is authenticated, so the empty body left its login hanging. After it, the
   * empty body goes out as buffered (the client's next request waits for what comes).
   * - Held again already (the repeat repeated): the new copy takes its place (holdAgain), the held
   *   one getting a recoverable error (§17.3), so one request is answered, not two.
   * - After the client's terminate (§13) it reads nothing more, and an older request still held
   *   carries what is queued (a client reads the responses in rid order): the empty body, buffered.
   * - Never held behind a newer request (that one waits for what comes, and the held requests stay in
   *   the order of their deadlines, which the timer relies on): answered at once.
   */
  answerUnsent(rid: number, reply: HttpReply, now: number): void {
    if (this.held.some((h) => h.rid === rid)) return this.holdAgain(rid, reply, now);
    if (this.#terminatedAt !== undefined || this.held.some((h) => h.rid < rid)) return this.resend(rid, reply, now);
    // Every request still held is newer than this one.
    if (this.#out.length > 0 || this.held.length > 0) {
      this.#respond({ rid, reply, deadline: now, since: now }, this.#out.take(this.host.flow.maxResponseBytes), now, true);
      return this.rearm(now);
    }
    if (!this.authenticated) return this.holdAgain(rid, reply, now);
    this.resend(rid, reply, now);
  }

  /**
   * §13 and §14.3: a rid sent again whose answer never went out is held as the first request was:
   * the client's terminate (its first request abandoned: #abandoned), which gets the terminate body
   * from the core's close (#deliverFinal) or when `wait` runs out (#acknowledgeTerminate), the BOSH
   * session then ending; or a request before authentication with nothing queued (answerUnsent),
   * which gets what comes. Sent again while a repeat is held, it takes that one's place (replace in
   * exchange.ts), the older getting a recoverable error (§17.3).
   */
  holdAgain(rid: number, reply: HttpReply, now: number): void {
    const held = this.held.find((h) => h.rid === rid);
    if (held === undefined) {
      this.hold(rid, reply, now);
      return this.scheduleFlush();
    }
    held.reply.send(200, this.params.contentType, serialize(recoverableErrorBody()));
    held.reply = reply;
    this.watch(reply);
  }

  /**
   * §10: answer every held request now, without payloads, and stretch the
   * inactivity period. §14.3: the pause request's own response is not buffered.
   */
  pause(pauseRid: number, seconds: number, now: number): void {
    const held = this.held.splice(0);
    for (const h of held) this.#respond(h, [], now, h.rid !== pauseRid);
    this.#pauseMs = Math.min(seconds, this.params.maxpause) * 1000;
    this.#backAt = Number.POSITIVE_INFINITY;
    this.#idleSince = now;
  }

  /** §10: the next request (`rid`) sets the inactivity period back to normal. */
  unpause(rid: number): void {
    if (this.#pauseMs !== undefined) this.#backAt = rid + 1;
    else if (this.#backAt !== undefined && rid >= this.#backAt) this.#backAt = undefined;
    this.#pauseMs = undefined;
  }

  /** §9.2: the client lacks the response to `rid`: report it on the next response, sent at once. */
  report(rid: number, now: number): void {
    const sentAt = this.window.sentAt(rid);
    if (sentAt === undefined) return;
    // §22: 'time' is an xs:unsignedShort; a response sent longer ago (a 'wait' above 65 s) is reported as 65535 ms.
    this.#report = { report: rid, time: Math.min(now - sentAt, MAX_REPORT_TIME_MS) };
    this.scheduleFlush();
  }

  /**
   * The final terminate body, for a request that arrives after the core closed the stream; a request
   * waiting for the gap this one fills (§14.2) is answered as in #deliverFinal. A client's terminate
   * (§13) reads nothing more, as in close(): its body carries the stream error only, and the stanzas
   * the final body had go to the end-of-session hand-over (end()). The request's own stanzas are not
   * processed (the stream is gone): its body carries their errors (notProcessedErrors), after what
   * was queued and before the stream error. `repeated`: the request repeats one processed before
   * (the client's terminate, exchange.ts), whose stanzas were taken.
   */
  deliverFinalTo(reply: HttpReply, req: BoshRequest, repeated = false): void {
    const final = this.#final!;
    const unprocessed = repeated ? [] : this.#notProcessed(req);
    // The request's errors in the body's room with the others (close()): the queued stanzas that no
    // longer fit go to the hand-over, before what the body never had.
    const room = this.#finalRoom(final.error);
    const errors = unprocessed.length === 0 ? final.bounces : this.#capped([...final.bounces, ...unprocessed], room);
    if (unprocessed.length > 0 && !req.terminate) {
      const n = fittingCount(this.#unfetched, room - sizeOf(errors));
      this.#beyond = [...this.#unfetched.slice(n).map((q) => q.el), ...this.#beyond];
      this.#unfetched = this.#unfetched.slice(0, n);
    }
    const carried = req.terminate ? [] : this.#unfetched.map((q) => q.el);
    reply.send(200, this.params.contentType, serialize(terminateForStreamError(final.error, [...carried, ...errors])));
    if (!req.terminate) this.#fetched();
    this.#answerOthers(final.clean);
    this.end(final.reason);
  }

  /**
   * The errors for a request's stanzas the closed stream never took (notProcessedErrors). None when
   * the session was resumed elsewhere: they are not counted in its h, and the client sends them again.
   */
  #notProcessed(req: BoshRequest): XmlElement[] {
    return this.#final?.replaced ? [] : notProcessedErrors(req.payloads, this.#header?.from);
  }

  /**
   * The oldest of `errors` that fit in `room` bytes (BOSH_MAX_RESPONSE_BYTES, as any response). An error is smaller than the stanza it answers only by its payload:
   * `<message/>`s of a few bytes get errors of about 300, so a body full of them would be answered
   * with one many times its size. Past the room the stanzas get none (logged): a client sending
   * that many in the body that meets a closed stream (over 1,500 at the default) gets the first ones.
   */
  #capped(errors: XmlElement[], room: number): XmlElement[] {
    const n = fittingCount(errors.map((el) => ({ bytes: Buffer.byteLength(serialize(el)) })), Math.max(0, room));
    if (n < errors.length) this.host.log.debug({ sid: this.sid, session: this.session.logId, answered: n, unanswered: errors.length - n }, 'bosh: errors for unprocessed stanzas beyond the response size');
    return n === errors.length ? errors : errors.slice(0, n);
  }

  /**
   * A request that names this closing session's sid but is not of its sequence (exchange.ts):
   * it gets item-not-found (§17.2) and nothing of the session, which waits on for its own.
   */
  refuse(reply: HttpReply, text: string): void {
    this.host.log.debug({ sidTag: logTag(this.sid), session: this.session.logId, text }, 'bosh request refused');
    reply.send(this.params.legacy ? legacyStatus('item-not-found') : 200, this.params.contentType, serialize(terminateBody('item-not-found')));
  }

  /**
   * §13 with §17.2: a request with a later rid than the client's terminate gets item-not-found. With
   * no request open that could get the terminate body (the client abandoned its terminate, and has
   * moved on), the session is known to be over: it ends now, instead of at its inactivity period.
   * The core's close, if it has not come yet, finds it ended, and the input it was given (the
   * terminate's) has run (peerTerminated).
   */
  refuseAfterTerminate(reply: HttpReply, rid: number): void {
    this.refuse(reply, `rid ${rid} comes after the client's terminate (§13)`);
    if (this.held.length === 0) this.end(this.#final?.reason ?? 'terminate');
  }

  /**
   * A terminal binding error (§17.2): `reply` gets `condition`, every other
   * open request other-request (or `condition` when no request caused it),
   * and the session ends. The XMPP session is told its transport was lost
   * (XEP-0198 may keep it for resumption).
   */
  fail(condition: TerminalCondition, reply: HttpReply | undefined, text: string): void {
    if (this.#ended) return;
    this.host.log.debug({ sidTag: logTag(this.sid), session: this.session.logId, condition, text }, 'bosh session terminated');
    const status = this.params.legacy ? legacyStatus(condition) : 200;
    reply?.send(status, this.params.contentType, serialize(terminateBody(condition)));
    this.#answerAll(terminateBody(reply ? 'other-request' : condition));
    // §17.2 item-not-found on a live session: a rid (or its key, §15) out of sequence.
    this.end(condition === 'item-not-found' ? 'rid-window' : 'error');
    if (!this.session.destroyed) this.session.transportLost(`bosh ${condition}`);
  }

  /**
   * Transport shutdown. A live session is closed through the core, which
   * answers with a system-shutdown stream error (mapped to the §17.2
   * condition of the same name); whatever is still open gets that condition.
   */
  shutdown(): void {
    if (!this.session.destroyed) this.session.streamError('system-shutdown', 'the server is shutting down');
    if (this.#ended) return;
    // What is still queued goes back to the session (end()): the same body goes to every open request.
    this.#answerAll(terminateBody('system-shutdown'));
    this.end('shutdown');
  }

  /**
   * Conn.drop (a rolling restart): held and waiting requests are answered
   * with an empty body, as when `wait` runs out (§8), so the client sends
   * its next request at once; by then this BOSH session is gone (the sid is
   * unregistered from the cluster too), so that request gets item-not-found
   * (§17.2) wherever it lands, and the client starts a new session and
   * resumes (XEP-0198 §5). No terminate body and no stream error: to the
   * client it is a lost connection. Unsent payloads go back to the session
   * (its XEP-0198 queue keeps them).
   */
  drop(): void {
    if (this.#ended || this.#final) return;
    const now = Date.now();
    for (const held of this.held.splice(0)) this.#respond(held, [], now, true);
    this.#answerAll(responseBody({}, []));
    const session = this.session;
    this.end('shutdown');
    if (!session.destroyed) session.transportLost('the server is going away (rolling restart)');
  }

  /**
   * The client fetches too slowly to ever catch up (its queue above twice BOSH_MAX_QUEUED_BYTES
   * for the grace): as a WebSocket slow consumer, the transport ends as a lost connection; what
   * is queued goes back to the session (end()), and XEP-0198 keeps the session for a resume.
   */
  #dropSlowConsumer(): void {
    if (this.#ended || this.#final) return;
    const session = this.session;
    const now = Date.now();
    for (const held of this.held.splice(0)) this.#respond(held, [], now, true);
    this.#answerAll(responseBody({}, []));
    this.end('slow-consumer');
    if (!session.destroyed) session.transportLost('slow consumer: the BOSH output queue stayed above its limit');
  }

  /**
   * Ends the BOSH session for good: no timer, no held request, no queue is
   * left behind. Payloads no response carried (the queue, a terminate body
   * nobody fetched) go back to the session as undelivered.
   */
  end(reason: BoshEndReason = 'terminate'): void {
    if (this.#ended) return;
    // Payloads of bodies already answered still reach the session (which may close this in the meantime).
    this.input.flush();
    if (this.#ended) return;
    this.#ended = true;
    this.host.metrics.ended(reason);
    this.#clearTimer();
    this.held.length = 0;
    this.pending.clear();
    const left = this.#out.takeAll();
    left.push(...this.#unfetched.map((q) => q.el), ...this.#takeBeyond());
    this.#unfetched = [];
    this.host.removed(this);
    this.#giveBack(left);
  }

  #giveBack(elements: XmlElement[]): void {
    if (elements.length > 0) this.session.undelivered(elements);
  }

  /** Batches what the core writes in one turn of the event loop into one response. */
  scheduleFlush(): void {
    if (this.#flushQueued || this.#ended) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      this.#guard(() => this.flush(Date.now()));
    });
  }

  /** Answers held requests that can be answered now (§8), then re-arms the timer. */
  flush(now: number): void {
    if (this.#ended) return;
    if (this.#final) {
      if (this.held.length > 0) this.#deliverFinal();
      return;
    }
    // §13: after the client's terminate, the oldest of its requests gets the terminate body (close()).
    if (this.#terminatedAt !== undefined) return this.rearm(now);
    // While the input runs on (one payload per turn), its answers gather for one response, up to the cap.
    const more = this.input.queuedItems > 0 && this.input.blockedBy === undefined && this.#out.bytes < this.host.flow.maxResponseBytes;
    // §8: at most `hold` requests wait; when one more arrives the oldest is answered, empty if need be
    // (once the input of this request has run: a terminate among it is for the oldest, §13).
    while (this.held.length > 0 && (this.#report || (!more && (this.#out.length > 0 || this.held.length > this.params.hold)))) {
      this.#respond(this.held.shift()!, this.#out.take(this.host.flow.maxResponseBytes), now, true);
    }
    this.rearm(now);
  }

  /** The one timer: the earliest wait deadline, pending deadline, or inactivity deadline (§8, §10, §14.2). */
  rearm(now: number): void {
    if (this.#ended) return;
    let at = Number.POSITIVE_INFINITY;
    for (const h of this.held) at = Math.min(at, h.deadline);
    for (const p of this.pending.values()) at = Math.min(at, p.deadline);
    if (this.#idle()) at = this.#idleSince + this.#inactivityMs();
    this.#clearTimer();
    this.#timer = setTimeout(() => this.#guard(() => this.#onTimer()), Math.max(0, at - now));
    this.#timer.unref();
    this.host.timers(1);
  }

  #clearTimer(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.host.timers(-1);
  }

  #idle(): boolean {
    return this.held.length === 0 && this.pending.size === 0;
  }

  /**
   * Answers every open request with `body`. A request waiting for a gap (§14.2) was never processed:
   * unless the session is kept for a resumption (XEP-0198: its stanzas are not counted in h, and the
   * client sends them again), its body carries the errors for them (notProcessedErrors).
   */
  #answerAll(body: XmlElement): void {
    const text = serialize(body);
    for (const h of this.held) this.#send(h, text);
    const kept = this.session.resumable;
    for (const p of this.pending.values()) {
      const errors = kept ? [] : this.#capped(this.#notProcessed(p.request), this.host.flow.maxResponseBytes);
      p.reply.send(200, this.params.contentType, errors.length === 0 ? text : serialize(responseBody(body.attrs, [...body.getChildren(), ...errors])));
    }
  }

  #inactivityMs(): number {
    return this.#pauseMs ?? this.params.inactivity * 1000;
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.host.timers(-1);
    const now = Date.now();
    // §8: a request held for `wait` seconds is answered, empty (§13: with nothing after the client's terminate,
    // and the last one still open with the terminate body).
    while (this.held.length > 0 && this.held[0]!.deadline <= now + TIMER_SLACK_MS) {
      if (this.#terminatedAt !== undefined && this.held.length === 1) return this.#acknowledgeTerminate();
      this.#respond(this.held.shift()!, this.#terminatedAt !== undefined ? [] : this.#out.take(this.host.flow.maxResponseBytes), now, true);
    }
    // §14.2/§17.3: a request whose gap never filled gets a recoverable error; the client resends the missing ones.
    for (const [rid, p] of this.pending) {
      if (p.deadline > now + TIMER_SLACK_MS) continue;
      this.pending.delete(rid);
      p.reply.send(200, this.params.contentType, serialize(recoverableErrorBody()));
    }
    if (this.#idle() && now + TIMER_SLACK_MS >= this.#idleSince + this.#inactivityMs()) return this.#inactive();
    this.rearm(now);
  }

  /**
   * §13 within `wait` (§7.1): the core has not closed the stream after the client's terminate (its
   * queue is still busy with what came before), and the last open request must be answered now. It
   * gets the terminate body, so the client learns that the session is over (an empty body left it
   * waiting for one that never came), and the BOSH session ends. The core's close finds it ended;
   * what the session still sends meanwhile goes back to it as undelivered (send), and so does what
   * was queued (end()): after its terminate the client reads nothing more.
   */
  #acknowledgeTerminate(): void {
    this.#send(this.held.shift()!, serialize(terminateBody(undefined)));
    this.end('terminate');
  }

  /** §10: no request for the inactivity period (or the pause): the client is gone. */
  #inactive(): void {
    const closing = this.#final !== undefined;
    this.end(closing ? this.#final!.reason : 'inactivity');
    if (!closing && !this.session.destroyed) this.session.transportLost(this.#pauseMs === undefined ? 'bosh inactivity' : 'bosh pause expired');
  }

  /** §13: the oldest open request gets the terminate body, the others an empty one (or other-request after an error). */
  #deliverFinal(): void {
    const final = this.#final!;
    this.#send(this.held.shift()!, serialize(final.body));
    this.#fetched();
    this.#answerOthers(final.clean);
    this.end(final.reason);
  }

  /**
   * The open requests besides the one with the final body (§13): the held ones were processed; one
   * waiting for a gap (§14.2) never will be, and its body carries the errors for its stanzas.
   */
  #answerOthers(clean: boolean): void {
    const others = this.#othersBody(clean);
    for (const h of this.held) this.#send(h, others);
    for (const p of this.pending.values()) {
      const errors = this.#capped(this.#notProcessed(p.request), this.host.flow.maxResponseBytes);
      const body = errors.length === 0 ? others : serialize(clean ? responseBody({}, errors) : terminateBody('other-request', errors));
      p.reply.send(200, this.params.contentType, body);
    }
  }

  /** A request took the terminate body: its payloads went out. */
  #fetched(): void {
    const carried = this.#unfetched;
    this.#unfetched = [];
    for (const q of carried) q.sent?.();
    this.#giveBack(this.#takeBeyond());
  }

  #takeBeyond(): XmlElement[] {
    const beyond = this.#beyond;
    this.#beyond = [];
    return beyond;
  }

  /** §13: what the open requests other than the one with the terminate body get. */
  #othersBody(clean: boolean): string {
    return serialize(clean ? responseBody({}, []) : terminateBody('other-request'));
  }

  /** Watches for the client dropping a held or pending request (§14.3 broken connections). */
  watch(reply: HttpReply): void {
    reply.onGone(() => this.#guard(() => this.#abandoned(reply)));
  }

  /**
   * The client closed the connection of a held request (a page unloading).
   * It counts as answered empty, so that payloads arriving later wait for
   * the next request instead of going to a dead socket; a repeat of the rid
   * gets what is queued by then instead of that empty body (answerUnsent).
   */
  #abandoned(reply: HttpReply): void {
    if (this.#ended) return;
    for (const [rid, p] of this.pending) if (p.reply === reply) this.pending.delete(rid);
    const i = this.held.findIndex((h) => h.reply === reply);
    if (i === -1) return this.rearm(Date.now());
    const [held] = this.held.splice(i, 1);
    this.#respond(held!, [], Date.now(), true);
    for (const rid of this.#unsent) if (this.window.cached(rid) === undefined) this.#unsent.delete(rid);
    this.#unsent.add(held!.rid);
    this.rearm(Date.now());
  }

  #respond(held: Held, payloads: readonly Queued[], now: number, buffer: boolean): void {
    const body = responseBody(this.#responseAttrs(held.rid), payloads.map((q) => q.el));
    const text = serialize(body);
    // A rid sent again (answerUnsent, holdAgain) was answered once already, with a body that never went out: this one replaces it.
    if (this.window.classify(held.rid) === 'open') this.window.answer(held.rid, buffer ? text : undefined, now);
    else if (this.#unsent.delete(held.rid) && buffer) this.window.rebuffer(held.rid, text, now);
    // Payloads went out on this rid: an older rid whose answer never went out, sent again, would carry what
    // comes after them (a client reads the responses in rid order); it gets its empty body from the buffer.
    if (payloads.length > 0 && this.#unsent.size > 0) for (const rid of this.#unsent) if (rid < held.rid) this.#unsent.delete(rid);
    this.#send(held, text);
    this.lastResponseHadPayloads = payloads.length > 0;
    if (this.#idle()) this.#idleSince = now;
    for (const q of payloads) q.sent?.();
  }

  /** Answers a held request; how long it was held is the long poll's duration (§8). */
  #send(held: Held, text: string): void {
    this.host.metrics.held((Date.now() - held.since) / 1000);
    held.reply.send(200, this.params.contentType, text);
  }

  #responseAttrs(rid: number): XmlAttrInput {
    const p = this.params;
    const attrs: XmlAttrInput = rid === p.creationRid ? creationAttrs(p, this.#header) : {};
    // §9.1: after the creation response, 'ack' is left out when it equals the rid answered.
    if (p.ackMode && rid !== p.creationRid && this.window.ack !== rid) attrs.ack = this.window.ack;
    // §9.2: 'report' and 'time' go on one response.
    Object.assign(attrs, this.#report);
    this.#report = undefined;
    return attrs;
  }

  /** Unexpected exceptions end this session only, logged and counted once. */
  #guard(work: () => void): void {
    try {
      work();
    } catch (err) {
      this.host.internalError();
      this.host.log.error({ err, sidTag: logTag(this.sid), session: this.session.logId }, 'bosh session failed');
      this.fail('internal-server-error', undefined, 'internal error');
    }
  }
}

/** Bytes of `els` serialized. */
function sizeOf(els: readonly XmlElement[]): number {
  let n = 0;
  for (const el of els) n += Buffer.byteLength(serialize(el));
  return n;
}

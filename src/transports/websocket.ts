import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { NS, XmlError, parseXml, serializeOut, x, type XmlElement, type XmlLimits } from '../xml/index.js';
import { DETACHED, type Conn, type ConnEvents, type StreamHeader } from '../xmpp/conn.js';
import type { Log } from '../xmpp/log.js';
import type { CoreMetrics } from '../xmpp/metrics-port.js';
import { streamErrorElement, type StreamError } from '../xmpp/errors.js';
import type { TransportHost } from '../xmpp/transport-host.js';
import { sessionRouteLogger } from './route-log.js';
import { InputPump, TurnClock, skippedWhenEnding, type ShapingOptions } from './input-pump.js';
import { WsBacklog, socketOf } from './ws-backlog.js';
import { refuse, type Admission } from './admission.js';

export interface WebSocketOptions {
  readonly path: string;
  readonly limits: XmlLimits;
  /** Seconds between pings; a peer that has not answered the previous one is dropped. */
  readonly pingInterval: number;
  /** Seconds to wait for the peer's <close/> after ours. */
  readonly closeTimeout: number;
  /** High-water mark of the output backlog in bytes; twice it is the slow-consumer limit. */
  readonly maxBufferedBytes: number;
  /** Seconds above the slow-consumer limit before the connection is dropped. */
  readonly slowConsumerGrace: number;
  readonly shaping: ShapingOptions;
  /** Web origins and per-address limits, shared with BOSH. */
  readonly admission: Admission;
  /** `limits` with the smaller size bound for streams not yet authenticated (PRE_AUTH_MAX_STANZA_SIZE). */
  readonly preAuthLimits: XmlLimits;
}

/** Flow-control figures of the WebSocket transport, for tests and operators. */
export interface WebSocketStats {
  readonly connections: number;
  /** Connections whose input is not being read (output backlog or inbound rate). */
  readonly pausedInputs: number;
  /** The largest output backlog (bufferedBytes) any connection has had. */
  readonly peakBufferedBytes: number;
}

const SUBPROTOCOL = 'xmpp';

interface WsConnDeps {
  readonly metrics: CoreMetrics;
  readonly turns: TurnClock;
  /** Every output backlog size seen, for WebSocketStats.peakBufferedBytes. */
  observed(bytes: number): void;
}

/** RFC 7395 §3.1: the handshake must offer the 'xmpp' subprotocol. */
function offersXmpp(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  const value = Array.isArray(header) ? header.join(',') : header;
  return value.split(',').some((p) => p.trim() === SUBPROTOCOL);
}

/**
 * One WebSocket connection as the `conn` of a session (RFC 7395). It knows
 * the framing (<open/>, <close/>, one element per text frame) and nothing
 * of XMPP semantics.
 */
class WsConn implements Conn {
  readonly transport = 'websocket' as const;
  alive = true;
  session!: ConnEvents;
  /** The peer's frames, run in order under back-pressure and inbound shaping (issue 10). */
  readonly input: InputPump;
  /** Why the input is not being read, while it is not. */
  pausedFor: 'output' | 'rate' | undefined;
  /** The input pump has stopped reading the socket (ws.pause()), whatever the reason. */
  #paused = false;
  /** Dropped (a slow consumer, or the node leaving): the session has been told already. */
  dropped = false;
  /** The peer's <close/> (or stream error) was read: nothing it sends after is (RFC 7395 §3.6.1). */
  peerClosed = false;
  /**
   * While the server closes the stream, the client's input is still processed (close()): not when
   * the close is the client's doing or takes its authorization away (see INPUT_WHILE_CLOSING).
   */
  inputWhileClosing = true;
  /** Stanzas taken from frames read after the server's close began (at most INPUT_AFTER_CLOSE_MAX). */
  takenWhileClosing = 0;
  /** For the per-address limits: follows the session the transport carries, also after a resumption. */
  get authenticated(): boolean { return this.session.authenticated; }
  readonly #backlog: WsBacklog<XmlElement>;
  #opened = false;
  #closing: NodeJS.Timeout | undefined;
  /** close() is running out the input the pump holds, before its <close/>. */
  #stopping = false;
  #ended = false;
  #corked = false;
  /** ws's message limit once authenticated, while the smaller pre-auth one is in force (see preAuthPayload). */
  #fullPayload: number | undefined;
  readonly metrics: CoreMetrics;

  constructor(readonly ws: WebSocket, readonly secure: boolean, readonly ip: string, private readonly opts: WebSocketOptions, deps: WsConnDeps) {
    this.metrics = deps.metrics;
    this.#fullPayload = preAuthPayload(ws, 2 * opts.preAuthLimits.maxBytes);
    this.#backlog = new WsBacklog(ws, {
      highWater: opts.maxBufferedBytes,
      graceSeconds: opts.slowConsumerGrace,
      drained: () => {
        this.session.drained();
        this.input.kick();
      },
      slowConsumer: () => this.#dropSlowConsumer(deps.metrics),
      observed: deps.observed,
    });
    this.input = new InputPump({
      shaping: opts.shaping,
      turns: deps.turns,
      // Its own output backlog, or the core's queue of this session's input (a handler waiting on a slow store).
      backlogged: () => this.#backlog.high || this.session.inputBacklogged,
      // Not reading the socket is what slows the peer down: TCP pushes back.
      busy: (busy) => {
        this.#paused = busy;
        if (busy) ws.pause();
        else {
          this.pausedFor = undefined;
          ws.resume();
        }
      },
      blocked: (reason) => {
        this.pausedFor = reason;
        deps.metrics.flowControl('websocket', reason === 'output' ? 'paused-output' : 'paused-rate');
      },
    });
  }

  open(header: StreamHeader): void {
    this.#opened = true;
    this.#write(x('open', { xmlns: NS.FRAMING, from: header.from, to: header.to, id: header.id, version: header.version, 'xml:lang': header.lang }));
  }

  send(el: XmlElement, sent?: () => void): void {
    // The socket is going: the session hands the stanza over (or XEP-0198 still has it).
    if (!this.#write(el, sent)) this.session.undelivered([el]);
  }

  get bufferedBytes(): number { return this.#backlog.bytes; }
  get inputHeld(): boolean { return this.input.queuedItems > 0; }
  inputRoom(): void { this.input.kick(); }
  loggedIn(): void { this.opts.admission.authenticated(this.ip); }

  attach(events: ConnEvents): void {
    this.session = events;
  }

  /**
   * RFC 7395 §3.6 mirrors RFC 6120 §4.4: the server that closes the stream sends nothing more, but
   * goes on processing what the client sent until the client's <close/> (onClosingFrame). What the
   * input pump had read and not run yet (waiting for the inbound rate, an output or core backlog)
   * runs first, so a message the client sent is routed (delivered or stored offline), not dropped,
   * and answers that are ready go out before the <close/>. Not for a transport a resumption
   * replaced (DETACHED): <resumed h/> did not count its input, which the client sends again.
   */
  close(error?: StreamError): void {
    if (this.#closing || this.#ended || this.#stopping) return;
    this.#stopping = true;
    this.inputWhileClosing = error === undefined || INPUT_WHILE_CLOSING.has(error.condition);
    if (this.session !== DETACHED && this.inputWhileClosing) this.input.runHeld();
    this.#stopping = false;
    if (this.#ended) return;
    // RFC 6120 §4.9.1.2: a stream error is preceded by a stream header.
    if (error && !this.#opened) this.open({ id: 'error', from: '', version: '1.0', lang: 'en' });
    if (error) this.#write(streamErrorElement(error));
    this.#write(x('close', { xmlns: NS.FRAMING }));
    // RFC 7395 §3.6: wait (bounded) for the peer's <close/>, then end the connection; it may have come already.
    this.#closing = setTimeout(() => this.ws.terminate(), this.opts.closeTimeout * 1000);
    this.#closing.unref();
    if (this.peerClosed) this.ws.close(1000);
  }

  /**
   * Conn.drop (a rolling restart): RFC 6455 §7.4.1 close code 1001 "going
   * away", without RFC 7395's <close/> or a stream error, so the client
   * sees a lost connection and resumes elsewhere (XEP-0198 §5). Frames not
   * yet written go back to the session (its XEP-0198 queue keeps them).
   */
  drop(): void {
    if (this.#ended || this.#closing) return;
    this.dropped = true;
    const session = this.session;
    this.ended();
    this.ws.close(1001, 'server going away');
    if (!session.destroyed) session.transportLost('the server is going away (rolling restart)');
  }

  /** The peer closed the WebSocket or answered our <close/>: frames that never left go back to the session. */
  ended(): void {
    this.#ended = true;
    if (this.#closing) clearTimeout(this.#closing);
    this.input.flush();
    const held = this.#backlog.takeHeld();
    if (held.length > 0) this.session.undelivered(held);
  }

  /** The server is closing the stream: its <close/> is written, or about to be (close() runs out the input first). */
  get closing(): boolean { return this.#closing !== undefined || this.#stopping; }
  /** The server's <close/> is written: the peer's answers it, and the connection can end. */
  get closeWritten(): boolean { return this.#closing !== undefined; }

  /**
   * The socket is not being read for a reason that is not the peer's
   * silence, so its pong may be waiting unread: its input is held back for
   * its rate, the core still has too much of its input queued (a slow
   * store), or the pump is still running the frames it took before it reads
   * again (once the core has caught up, a few a turn: `pausedFor` still says
   * 'output' then, and a loaded machine's pinger ran in between and dropped
   * a live client). Its own unread output (the peer not reading) does not count.
   */
  get pongMayWaitUnread(): boolean {
    return this.#paused && (this.pausedFor === 'rate' || this.session.inputBacklogged || !this.#backlog.high);
  }

  /**
   * Above twice the high-water mark for the whole grace: the peer reads too
   * slowly to ever catch up. A stream error would wait behind everything
   * it has not read, so the connection is dropped; the frames still held
   * go back to the session, and XEP-0198 keeps the session for a resume.
   */
  #dropSlowConsumer(metrics: CoreMetrics): void {
    if (this.#ended) return;
    metrics.flowControl('websocket', 'slow-consumer');
    this.dropped = true;
    const session = this.session;
    this.ended();
    this.ws.terminate();
    session.transportLost('slow consumer: the WebSocket output backlog stayed above its limit');
  }

  /** `sent`: called when the frame reaches the socket, at once or when the backlog drains (Conn.send). */
  #write(el: XmlElement, sent?: () => void): boolean {
    if (this.#ended || this.ws.readyState !== this.ws.OPEN) return false;
    // Authenticated (SASL's <success/> is on its way): the client's next message may be as large as any.
    if (this.#fullPayload !== undefined && this.session !== undefined && this.session.authenticated) {
      const receiver = receiverOf(this.ws);
      if (receiver) receiver._maxPayload = this.#fullPayload;
      this.#fullPayload = undefined;
    }
    this.#backlog.write(el, serializeOut(el), sent === undefined ? this.#send : (text) => { this.#send(text); sent(); });
    return true;
  }

  readonly #send = (text: string): void => {
    this.#cork();
    this.ws.send(text);
    this.metrics.bytesOut('websocket', Buffer.byteLength(text));
  };

  /**
   * RFC 7395 wants one element per frame, so a routed message plus its
   * XEP-0198 <r/> are two frames, and ws writes each frame with its own
   * syscall. Corking the TCP socket until the end of this turn of the event
   * loop (setImmediate: after every frame read in this poll phase has been
   * handled) lets Node hand all of them to the kernel in one writev; the
   * profile showed writev as the single largest cost. ws exposes no cork of
   * its own, hence its `_socket`.
   */
  #cork(): void {
    if (this.#corked) return;
    const socket = socketOf(this.ws);
    if (!socket) return;
    this.#corked = true;
    socket.cork();
    setImmediate(() => {
      this.#corked = false;
      socket.uncork();
    });
  }
}

/**
 * ws cuts a message far over the size limit by itself (close code 1009)
 * without reading it, at one length for every connection: twice
 * MAX_STANZA_SIZE (app.ts). Before authentication the cut is lowered to
 * `limit`, twice PRE_AUTH_MAX_STANZA_SIZE, or an unauthenticated client
 * could have 512 KiB read and held for each of its streams, sending most of
 * a message and trickling the rest until AUTH_TIMEOUT (found in a hostile
 * review). ws has no setting per connection, hence its receiver's (as for
 * `_socket`). Returns the length to restore once authenticated; undefined
 * when nothing was lowered.
 */
function preAuthPayload(ws: WebSocket, limit: number): number | undefined {
  const receiver = receiverOf(ws);
  if (receiver === undefined || typeof receiver._maxPayload !== 'number') return undefined;
  const full = receiver._maxPayload;
  // 0 is no limit at all.
  if (full !== 0 && full <= limit) return undefined;
  receiver._maxPayload = limit;
  return full;
}

function receiverOf(ws: WebSocket): { _maxPayload: number } | undefined {
  return (ws as unknown as { _receiver?: { _maxPayload: number } })._receiver ?? undefined;
}

function onFrame(conn: WsConn, ws: WebSocket, data: Buffer, isBinary: boolean, opts: WebSocketOptions, ending: boolean): void {
  const session = conn.session;
  // After the peer's <close/> nothing more is read (RFC 7395 §3.6.1); after a resumption elsewhere
  // (XEP-0198 §5) the replaced transport's input is not the session's: the client sends it again.
  if (conn.peerClosed || session === DETACHED) return;
  if (conn.closing) return onClosingFrame(conn, ws, data, isBinary, opts, session);
  // Input that waited in the pump outlived its session.
  if (session.destroyed) return;
  // RFC 7395 §3.2: XMPP goes in text frames only.
  if (isBinary) return session.streamError('unsupported-encoding', 'binary frames are not XMPP; send UTF-8 text frames');
  let el: XmlElement;
  try {
    el = parseXml(data, session.authenticated ? opts.limits : opts.preAuthLimits, NS.CLIENT);
  } catch (err) {
    if (err instanceof XmlError) {
      if (err.limit) conn.metrics.limitRefused(err.limit);
      return session.streamError(err.condition, err.message);
    }
    throw err;
  }
  if (el.ns === NS.FRAMING && el.local === 'open') {
    if (!session.notopen) return session.streamError('bad-format', 'unexpected <open/>: the stream is already open');
    return session.streamOpened(el.attrs as Record<string, string>);
  }
  // RFC 6120 §4.9.1.1: a stream error is the peer's last word before its <close/>; it is no stanza
  // (§4.9.3.24 unsupported-stanza-type would be wrong) and ends the stream as that <close/> would.
  if (endsStream(el)) {
    // RFC 7395 §3.6.1: answer the peer's <close/> with ours, then close the connection.
    conn.peerClosed = true;
    conn.close();
    ws.close(1000);
    return session.streamClosed();
  }
  if (el.local === 'open' || el.local === 'stream') {
    // RFC 7395 §3.3.2: <open/> must be in the framing namespace; <stream:stream> is not used.
    return session.streamError('invalid-namespace', `<${el.name}/> must be <open xmlns='${NS.FRAMING}'/>`);
  }
  if (ending && skippedWhenEnding(el, session)) return;
  session.element(el);
}

/** The peer's <close/>, or its stream error (its last word before the <close/>, RFC 6120 §4.9.1.1). */
function endsStream(el: XmlElement): boolean {
  return (el.ns === NS.FRAMING && el.local === 'close') || el.is('error', NS.STREAM);
}

/**
 * A frame read while the server closes the stream (RFC 6120 §4.4: it "continue[s] to process data
 * received from the other entity" until that entity's close): the client sent it before it read the
 * server's <close/>, or it waited in the input pump. A stanza goes to the session, which routes it
 * also once it is gone (core.ts processElement), as well as an XEP-0198 <a/> (while the session is
 * still there, so the hand-over leaves out what the client acknowledged); an IQ get is skipped as
 * for any ending session (skippedWhenEnding: its answer has nowhere to go). The peer's <close/>
 * ends the connection. Nothing else is taken: the stream is over (no restart, SASL or binding).
 */
function onClosingFrame(conn: WsConn, ws: WebSocket, data: Buffer, isBinary: boolean, opts: WebSocketOptions, session: ConnEvents): void {
  if (isBinary) return;
  let el: XmlElement;
  try {
    el = parseXml(data, session.authenticated ? opts.limits : opts.preAuthLimits, NS.CLIENT);
  } catch (err) {
    if (err instanceof XmlError) return;
    throw err;
  }
  if (endsStream(el)) {
    conn.peerClosed = true;
    // Inside close() (running out the input), close() ends the connection once its <close/> is written.
    if (conn.closeWritten) ws.close(1000);
    return;
  }
  // Outside the input pump (no inbound rate): a bounded number, for what was on its way.
  if (!conn.inputWhileClosing || ++conn.takenWhileClosing > INPUT_AFTER_CLOSE_MAX) return;
  const stanza = el.ns === NS.CLIENT && (el.local === 'message' || el.local === 'presence' || el.local === 'iq');
  if ((stanza && !skippedWhenEnding(el, session)) || el.is('a', NS.SM)) session.element(el);
}

/**
 * The stream errors whose close still processes the client's input (RFC 6120 §4.4): the server's own
 * reasons (a shutdown, a new connection for the resource, a redirect, an idle stream). Not after the
 * client broke a rule (policy-violation, not-well-formed, ...) nor when the server took its
 * authorization away (not-authorized: the account deleted; reset: the password changed): what it
 * sends then is not acted on, as Prosody does after any stream error.
 */
const INPUT_WHILE_CLOSING: ReadonlySet<string> = new Set(['system-shutdown', 'conflict', 'see-other-host', 'connection-timeout']);

/** Frames after the server's close began that are still processed: what a client had on its way, not a stream. */
const INPUT_AFTER_CLOSE_MAX = 64;

/** A terminated socket's 'close' follows at once (the socket is destroyed); this only bounds the wait. */
const CUT_CLOSE_MS = 1000;
const ENDED_POLL_MS = 25;

/** A connection whose client may still send a stanza the server routes (onClosingFrame). */
function mayStillRoute(conn: WsConn): boolean {
  return conn.authenticated && conn.inputWhileClosing && !conn.peerClosed && conn.takenWhileClosing < INPUT_AFTER_CLOSE_MAX;
}

export interface WebSocketTransport {
  stats(): WebSocketStats;
  /** A rolling restart: new WebSocket upgrades get 503; the open connections go on until the core drops them. */
  stopAccepting(): void;
  /**
   * The shutdown, once the core closed every stream: waits while a connection's client may still
   * send stanzas the server routes (onClosingFrame processes them until its <close/> or
   * WS_CLOSE_TIMEOUT), at most `ms`; then cuts every connection and waits for their 'close', so
   * nothing is read after the drain that follows. Resolves with how many were cut while waited for.
   */
  ended(ms: number): Promise<number>;
}

/** Registers the RFC 7395 endpoint on `app` (which has @fastify/websocket). */
export function registerWebSocket(app: FastifyInstance, host: TransportHost, opts: WebSocketOptions, log: Log): WebSocketTransport {
  const conns = new Set<WsConn>();
  let accepting = true;
  /** ended() waits for the last connection's 'close'. */
  let lastClosed: (() => void) | undefined;
  const noneLeft = (ms: number): Promise<void> => new Promise((resolve) => {
    if (conns.size === 0) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void { clearTimeout(timer); lastClosed = undefined; resolve(); }
    lastClosed = done;
  });
  let peakBufferedBytes = 0;
  const deps: WsConnDeps = {
    metrics: host.metrics,
    turns: new TurnClock(),
    observed: (bytes) => { if (bytes > peakBufferedBytes) peakBufferedBytes = bytes; },
  };
  // One timer for every connection, rather than one per connection: it pings
  // all peers and drops those that did not answer the previous ping.
  const pinger = setInterval(() => {
    for (const conn of conns) {
      if (!conn.alive && !conn.pongMayWaitUnread) {
        conn.ws.terminate();
        continue;
      }
      conn.alive = false;
      conn.ws.ping();
    }
  }, opts.pingInterval * 1000);
  pinger.unref();
  app.addHook('onClose', async () => clearInterval(pinger));

  app.route({
    method: 'GET',
    url: opts.path,
    childLoggerFactory: sessionRouteLogger,
    preValidation: async (req: FastifyRequest, reply) => {
      if (req.headers.upgrade?.toLowerCase() !== 'websocket') return;
      // A rolling restart: this node takes no new stream; the client retries and the balancer picks another.
      if (!accepting) {
        await reply.code(503).header('retry-after', '1').type('text/plain').send('this node is shutting down: connect again\n');
        return;
      }
      if (!offersXmpp(req.headers['sec-websocket-protocol'])) {
        await reply.code(400).type('text/plain').send("RFC 7395: the WebSocket handshake must offer the 'xmpp' subprotocol\n");
        return;
      }
      // Before the upgrade (issue 13): a page of a foreign origin gets 403, an address over its limits 429.
      const refusal = opts.admission.check(req);
      if (refusal) await refuse(reply, refusal, opts.admission, host.metrics, log);
    },
    handler: async (_req, reply) => reply.type('text/plain').send('XMPP over WebSocket (RFC 7395) endpoint: connect with a WebSocket client and the "xmpp" subprotocol.\n'),
    wsHandler: (socket: WebSocket, req: FastifyRequest) => {
      const conn = new WsConn(socket, req.protocol === 'https', req.ip, opts, deps);
      conn.session = host.connect(conn);
      conns.add(conn);
      opts.admission.add(req.ip, conn);
      socket.on('message', (data: Buffer, isBinary: boolean) => {
        conn.alive = true;
        deps.metrics.bytesIn('websocket', data.length);
        conn.input.push({ bytes: data.length, stanzas: 1, run: (ending) => runFrame(conn, socket, data, isBinary, ending) });
      });
      socket.on('pong', () => { conn.alive = true; });
      socket.on('error', (err) => log.debug({ err, session: conn.session.logId }, 'websocket error'));
      socket.on('close', () => {
        conns.delete(conn);
        opts.admission.release(req.ip, conn);
        const clean = conn.closing;
        conn.ended();
        if (!conn.session.destroyed && !clean && !conn.dropped) conn.session.transportLost('websocket closed without <close/>');
        if (conns.size === 0) lastClosed?.();
      });
    },
  });

  function runFrame(conn: WsConn, socket: WebSocket, data: Buffer, isBinary: boolean, ending: boolean): void {
    try {
      onFrame(conn, socket, data, isBinary, opts, ending);
    } catch (err) {
      log.error({ err, session: conn.session.logId }, 'websocket frame handling failed');
      conn.session.streamError('internal-server-error');
    }
  }

  return {
    stopAccepting: () => { accepting = false; },
    async ended(ms) {
      const deadline = Date.now() + ms;
      const waited = (): number => [...conns].filter(mayStillRoute).length;
      while (waited() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, ENDED_POLL_MS));
      const cut = waited();
      // The others route nothing more: not logged in, their <close/> read, or past INPUT_AFTER_CLOSE_MAX.
      for (const conn of conns) conn.ws.terminate();
      // Their 'close' (what their input pump held runs then, as for any lost connection) comes next.
      await noneLeft(CUT_CLOSE_MS);
      return cut;
    },
    stats: () => {
      let pausedInputs = 0;
      for (const conn of conns) if (conn.pausedFor !== undefined) pausedInputs++;
      return { connections: conns.size, pausedInputs, peakBufferedBytes };
    },
  };
}

export { SUBPROTOCOL };

import { Transform, pipeline, type Readable } from 'node:stream';
import type { Admission, Refusal } from '../admission.js';
import { ipKey, UNPARSABLE } from '../../util/ip.js';
import { XmlError, parseXml, serialize, type XmlElement, type XmlLimits } from '../../xml/index.js';
import type { TransportHost } from '../../xmpp/transport-host.js';
import type { Log } from '../../xmpp/log.js';
import {
  BoshError, legacyStatus, negotiateVer, readRequest, startTag, terminateBody, uintAttr, type BoshParams, type BoshRequest, type TerminalCondition,
} from './body.js';
import { BoshConn } from './conn.js';
import { CLOSE_CONNECTION_TYPE, type BoshForwarder, type BoshHost, type ClientInfo, type HttpReply } from './types.js';
import { answeredAsEnding, creationInput, onRequest } from './exchange.js';
import { RidWindow } from './rid-window.js';
import { randomId } from '../../util/random.js';
import { logTag } from '../../util/log-tag.js';
import type { BoshFlow } from './types.js';
import { TurnClock } from '../input-pump.js';

export interface BoshOptions {
  /** URL path of the endpoint, e.g. /http-bind. */
  readonly path: string;
  readonly limits: XmlLimits;
  /** Upper bound of 'wait' in seconds (XEP-0124 §7.1). */
  readonly maxWait: number;
  /** Upper bound of 'hold'. */
  readonly maxHold: number;
  /** 'inactivity' in seconds (§10). */
  readonly inactivity: number;
  /** 'maxpause' in seconds (§10); 0 offers no pauses. */
  readonly maxPause: number;
  /** 'polling' in seconds (§12). */
  readonly polling: number;
  readonly maxSessionsPerIp: number;
  /** Web origins and per-address limits, shared with the WebSocket transport (also BOSH's CORS). */
  readonly admission: Admission;
  /** Largest body accepted before the session has authenticated (PRE_AUTH_MAX_STANZA_SIZE). */
  readonly preAuthMaxBytes: number;
  /** Response and queue bounds and inbound shaping (issue 10). */
  readonly flow: BoshFlow;
  /** In a cluster: where requests for the sessions of other nodes go (absent: one process holds every session). */
  readonly forwarder?: BoshForwarder;
}

/** Counts for tests and operators: everything a BOSH session can leave behind. */
export interface BoshStats {
  /** Live BOSH sessions (by sid). */
  readonly sessions: number;
  /** Requests held open by the sessions (§8). */
  readonly held: number;
  /** Requests waiting for a gap in the rids to fill (§14.2). */
  readonly pending: number;
  /** Payloads waiting for a request. */
  readonly queued: number;
  /** Session timers armed, over the whole transport (ended sessions included, so a leak shows). */
  readonly timers: number;
  /** HTTP requests to the endpoint not answered yet (held, pending or being handled). */
  readonly openRequests: number;
  /** Client addresses with at least one session. */
  readonly addresses: number;
}

export type { ClientInfo } from './types.js';

export const DEFAULT_CONTENT_TYPE = 'text/xml; charset=utf-8';

/**
 * XEP-0124 §7.1 lets the client choose the Content-Type of responses. Only
 * XML and plain-text types are honoured: anything the browser might render
 * (text/html) would let a page that knows a sid show stanzas as markup on
 * our origin.
 */
const ALLOWED_CONTENT_TYPES: ReadonlySet<string> = new Set([
  'text/xml', 'text/xml; charset=utf-8', 'application/xml', 'application/xml; charset=utf-8', 'text/plain', 'text/plain; charset=utf-8',
]);

/**
 * The BOSH sessions of one server, by sid, and the per-address counts. It
 * is created by registerBosh, so two servers in one process share nothing.
 */
export class BoshTransport {
  readonly #conns = new Map<string, BoshConn>();
  readonly #perIp = new Map<string, number>();
  readonly #host: BoshHost<BoshConn>;
  #closing = false;
  /** Requests being forwarded to other nodes (a cluster only). */
  readonly #forwarding = new Set<HttpReply>();
  #timers = 0;
  #openRequests = 0;
  #peakQueuedBytes = 0;

  constructor(private readonly server: TransportHost, readonly opts: BoshOptions, readonly log: Log) {
    this.#host = {
      log,
      removed: (conn) => this.#removed(conn),
      loggedIn: (conn) => opts.admission.authenticated(conn.ip),
      timers: (delta) => { this.#timers += delta; },
      internalError: () => server.metrics.internalError(),
      flow: opts.flow,
      flowControl: (event) => server.metrics.flowControl('bosh', event),
      metrics: server.boshMetrics,
      turns: new TurnClock(),
      observed: (bytes) => { if (bytes > this.#peakQueuedBytes) this.#peakQueuedBytes = bytes; },
    };
  }

  /**
   * One POST: parse the <body/>, then create a session or hand the request to
   * its session. `forwarded`: a cluster peer sent it (never forwarded again).
   */
  handle(raw: Uint8Array | undefined, client: ClientInfo, reply: HttpReply, forwarded = false): void {
    const now = Date.now();
    // A peer's request was counted by the node the client sent it to (which counts the answer too: track).
    if (!forwarded) {
      this.server.boshMetrics.request();
      this.server.metrics.bytesIn('bosh', raw?.length ?? 0);
    }
    // Before authentication a body may be at most PRE_AUTH_MAX_STANZA_SIZE (issue 13), and a larger one is judged
    // by its start tag before it is parsed: parsing 256 KiB of small elements holds the event loop about 50 ms,
    // and anyone could send such bodies, no session needed (found in a hostile review).
    if (raw !== undefined && raw.length > this.opts.preAuthMaxBytes) {
      const root = startTag(raw, this.opts.limits);
      const sid = root?.attr('sid');
      const conn = sid === undefined ? undefined : this.#conns.get(sid);
      // Another node's session, maybe: its owner judges the body (a sid no node holds gets item-not-found).
      if (conn === undefined && sid !== undefined && this.opts.forwarder !== undefined && !forwarded) {
        return void this.#forward(this.opts.forwarder, sid, raw, client, reply);
      }
      if (!conn?.session.authenticated) return this.#tooLargeBeforeAuth(conn, root, client, reply, forwarded, now);
    }
    // An address past its per-address limits may still use its sessions, but what else it sends is judged by its start
    // tag alone: a request that would open a session, or reach none, is answered unparsed (found in a review: bodies
    // under PRE_AUTH_MAX_STANZA_SIZE with no sid or an unknown one were parsed whole before any limit applied).
    if (!forwarded && raw !== undefined && raw.length <= this.opts.preAuthMaxBytes && this.#blocked(client.ip) !== undefined) {
      if (this.#answeredUnparsed(raw, client, reply)) return;
    }
    let el: XmlElement;
    try {
      el = parseXml(raw ?? '', this.opts.limits, '');
    } catch (err) {
      if (!(err instanceof XmlError)) throw err;
      if (err.limit) this.server.metrics.limitRefused(err.limit);
      // §17.2: an oversized or too deep body breaks the session rules; anything else is a syntax error.
      return this.#unparsable(raw, err.condition === 'policy-violation' ? 'policy-violation' : 'bad-request', client, reply, forwarded, now);
    }
    const sid = el.attr('sid');
    const conn = sid === undefined ? undefined : this.#conns.get(sid);
    // In a cluster a sid this node does not hold may be another node's: the owner checks everything.
    if (conn === undefined && sid !== undefined && this.opts.forwarder !== undefined && !forwarded) {
      return void this.#forward(this.opts.forwarder, sid, raw ?? new Uint8Array(0), client, reply);
    }
    if (conn !== undefined && this.#insecure(conn, client, reply, forwarded)) return;
    try {
      const req = readRequest(el, raw?.length ?? 0);
      // What the start tag was judged by above is the parsed body's own; the rule, once more where it applies.
      if (req.bytes > this.opts.preAuthMaxBytes && !conn?.session.authenticated) {
        this.server.metrics.limitRefused('size');
        throw new BoshError('policy-violation', this.#tooLargeText());
      }
      if (sid === undefined) return this.#create(req, client, reply, now);
      // §17.2 item-not-found (1): the sid is not (or no longer) valid.
      if (!conn) return this.#badSid(client, reply, forwarded);
      onRequest(conn, req, reply, now);
    } catch (err) {
      if (err instanceof BoshError) {
        // A session closing or over for its client is judged by the start tag, whatever else the body breaks.
        if (conn && answeredAsEnding(conn, startRequest(raw === undefined ? undefined : startTag(raw, this.opts.limits)), reply, now)) return;
        if (conn) return conn.fail(err.condition, reply, err.message);
        if (!forwarded) this.opts.admission.stray(client.ip);
        return terminate(reply, err.condition, sid === undefined && el.attr('ver') === undefined);
      }
      // Unexpected: logged and counted once here; only this session ends.
      this.#host.internalError();
      this.log.error({ err, sidTag: logTag(conn?.sid), session: conn?.session?.logId }, 'bosh request failed');
      if (conn) return conn.fail('internal-server-error', reply, 'internal error');
      terminate(reply, 'internal-server-error');
    }
  }

  /**
   * A body that does not parse, answered with `condition`. §17.2: a terminal binding condition
   * means the session is over, so the session its start tag names ends with it, as it does for a
   * body that parses but breaks a binding rule (anyone who can name the sid could end it that way
   * too, or with a wrong rid); another node's sid goes to its owner, which judges the body. It
   * used to be answered alone, the session going on until its inactivity period while its client,
   * told it was over, had left (Prosody does the same; found in a conformance review). A session
   * over for its client or closing is judged by its start tag as a body that parses is
   * (exchange.ts answeredAsEnding): its final body, or item-not-found, never a condition of the
   * body's own (the client would lose the stream error and what was queued for it).
   */
  #unparsable(raw: Uint8Array | undefined, condition: TerminalCondition, client: ClientInfo, reply: HttpReply, forwarded: boolean, now: number): void {
    const root = raw === undefined ? undefined : startTag(raw, this.opts.limits);
    const sid = root?.attr('sid');
    const conn = sid === undefined ? undefined : this.#conns.get(sid);
    if (conn === undefined && sid !== undefined && this.opts.forwarder !== undefined && !forwarded) {
      return void this.#forward(this.opts.forwarder, sid, raw!, client, reply);
    }
    if (conn === undefined) {
      // It reached no session: it costs its address as a stray request does.
      if (!forwarded) this.opts.admission.stray(client.ip);
      return terminate(reply, condition);
    }
    if (this.#insecure(conn, client, reply, forwarded)) return;
    if (answeredAsEnding(conn, startRequest(root), reply, now)) return;
    conn.fail(condition, reply, 'the body does not parse');
  }

  /** §17.2 item-not-found (1): a sid no session has (any more); such guesses cost the address a token. */
  #badSid(client: ClientInfo, reply: HttpReply, forwarded: boolean): void {
    if (!forwarded) this.opts.admission.stray(client.ip);
    this.server.boshMetrics.ended('bad-sid');
    terminate(reply, 'item-not-found');
  }

  /** Why a session from `ip` would be refused now (this transport's own limit, then admission's), taking nothing. */
  #blocked(ip: string): Refusal | undefined {
    return this.#boshLimit(ip) ?? this.opts.admission.blocked(ip);
  }

  /** BOSH_MAX_SESSIONS_PER_IP: this process's BOSH sessions from the address and, with WORKERS=N, the other workers'. */
  #boshLimit(ip: string): Refusal | undefined {
    const here = this.#perIp.get(ipKey(ip) ?? UNPARSABLE) ?? 0;
    return here + this.opts.admission.boshElsewhere(ip) >= this.opts.maxSessionsPerIp ? 'connections-per-ip' : undefined;
  }

  /**
   * A request from an address past its limits, judged by its start tag: one for a session is left to be parsed
   * (false), one for another node's sid is forwarded as it is, and the rest are answered with what parsing would
   * have led to, the limits coming first: no start tag, bad-request; no sid, the creation refused
   * (policy-violation, §17.2, counted and logged as any refusal); an unknown sid, item-not-found.
   */
  #answeredUnparsed(raw: Uint8Array, client: ClientInfo, reply: HttpReply): boolean {
    const root = startTag(raw, this.opts.limits);
    const sid = root?.attr('sid');
    if (sid !== undefined && this.#conns.has(sid)) return false;
    if (sid !== undefined && this.opts.forwarder !== undefined) {
      void this.#forward(this.opts.forwarder, sid, raw, client, reply);
      return true;
    }
    if (root === undefined) {
      terminate(reply, 'bad-request');
    } else if (sid !== undefined) {
      this.#badSid(client, reply, false);
    } else if (this.#closing) {
      terminate(reply, 'system-shutdown');
    } else {
      // What #create would answer; the attempt costs a token, as a refused one there does.
      const reason = this.#blocked(client.ip) ?? 'connection-rate';
      this.opts.admission.stray(client.ip);
      this.opts.admission.note({ reason, ip: client.ip, origin: undefined }, this.server.metrics, this.log);
      terminate(reply, 'policy-violation', root.attr('ver') === undefined);
    }
    return true;
  }

  /**
   * §19.1: a session started over HTTPS takes no request over plain HTTP (it may offer PLAIN, and
   * anything sent so would travel in clear): the connection is closed, the session is not ended.
   */
  #insecure(conn: BoshConn, client: ClientInfo, reply: HttpReply, forwarded: boolean): boolean {
    if (!conn.secure || client.secure) return false;
    this.opts.admission.warnRefused('bosh-insecure-request', client.ip, this.log, { session: conn.session.logId },
      'a request for a secure BOSH session came over plain HTTP: connection closed');
    // Forwarded by another node: that node closes the client's connection on this answer.
    if (forwarded) reply.send(403, CLOSE_CONNECTION_TYPE, '');
    else reply.abort();
    return true;
  }

  /**
   * A body over PRE_AUTH_MAX_STANZA_SIZE (as ejabberd has) with no session, or for one not yet authenticated
   * (which it ends, unless it is closing: then the start tag is judged as any request's), refused with
   * policy-violation unparsed; `root`: its start tag, if it could be read.
   */
  #tooLargeBeforeAuth(conn: BoshConn | undefined, root: XmlElement | undefined, client: ClientInfo, reply: HttpReply, forwarded: boolean, now: number): void {
    if (conn !== undefined && this.#insecure(conn, client, reply, forwarded)) return;
    if (conn !== undefined && answeredAsEnding(conn, startRequest(root), reply, now)) return;
    this.server.metrics.limitRefused('size');
    if (conn !== undefined) return conn.fail('policy-violation', reply, this.#tooLargeText());
    terminate(reply, 'policy-violation', root !== undefined && root.attr('sid') === undefined && root.attr('ver') === undefined);
  }

  #tooLargeText(): string {
    return `bodies over ${this.opts.preAuthMaxBytes} bytes need an authenticated session`;
  }

  /** Passes a request to the node that holds its session (src/cluster/bosh-forward.ts says why forwarding). */
  async #forward(forwarder: BoshForwarder, sid: string, raw: Uint8Array, client: ClientInfo, reply: HttpReply): Promise<void> {
    this.#forwarding.add(reply);
    try {
      const owner = await forwarder.ownerOf(sid);
      // Shutting down: the client sends the rid again to another node (§14.3); the session is not ours to end.
      if (this.#closing) return reply.abort();
      // §17.2 item-not-found: no live node holds the sid (never did, ended, or died with its node).
      if (owner === undefined) return this.#badSid(client, reply, false);
      // §17.2 remote-connection-failed: the session may live on, but on a node we cannot reach.
      if (!(await forwarder.forward(owner, this.opts.path, raw, client, reply))) terminate(reply, 'remote-connection-failed');
    } catch (err) {
      this.#host.internalError();
      this.log.error({ err, sidTag: logTag(sid) }, 'bosh request not forwarded');
      terminate(reply, 'internal-server-error');
    } finally {
      this.#forwarding.delete(reply);
    }
  }

  /** XEP-0124 §7 and XEP-0206 §3–4: a session creation request. */
  #create(req: BoshRequest, client: ClientInfo, reply: HttpReply, now: number): void {
    const legacy = req.attrs.ver === undefined;
    if (this.#closing) return terminate(reply, 'system-shutdown');
    const key = ipKey(client.ip) ?? UNPARSABLE;
    const refusal = this.#boshLimit(client.ip) ?? this.opts.admission.admit(client.ip);
    if (refusal) {
      this.opts.admission.note({ reason: refusal, ip: client.ip, origin: undefined }, this.server.metrics, this.log);
      return terminate(reply, 'policy-violation', legacy);
    }
    if (req.attrs.to !== undefined && req.attrs.to.trim() === '') return terminate(reply, 'improper-addressing');
    const params = this.#negotiate(req, legacy);
    const conn = new BoshConn(params, new RidWindow(req.rid, params.requests, params.ackMode), client.secure, client.ip, this.#host, now);
    conn.key = req.newkey?.toLowerCase();
    this.#conns.set(params.sid, conn);
    this.#perIp.set(key, (this.#perIp.get(key) ?? 0) + 1);
    this.opts.admission.add(client.ip, conn);
    conn.hold(req.rid, this.opts.forwarder ? whenRegistered(this.opts.forwarder, params.sid, reply, this.log) : reply, now);
    const attrs: Record<string, string> = { version: req.xbosh('version') ?? '1.0' };
    if (req.attrs.to !== undefined) attrs.to = req.attrs.to;
    if (req.attrs['xml:lang'] !== undefined) attrs['xml:lang'] = req.attrs['xml:lang'];
    try {
      conn.attach(this.server.connect(conn));
      // The core answers with the stream header (conn.open) and <stream:features/> (conn.send), or host-unknown.
      conn.session.streamOpened(attrs);
      creationInput(conn, req);
    } catch (err) {
      this.#host.internalError();
      this.log.error({ err, sidTag: logTag(conn.sid), session: conn.session.logId }, 'bosh session creation failed');
      return conn.fail('internal-server-error', reply, 'internal error');
    }
    conn.scheduleFlush();
  }

  /** §7.2: what the session creation response grants, within the configured bounds. */
  #negotiate(req: BoshRequest, legacy: boolean): BoshParams {
    const o = this.opts;
    const hold = Math.min(uintAttr(req.attrs, 'hold', 255) ?? 1, o.maxHold);
    const wait = Math.min(uintAttr(req.attrs, 'wait', 65535) ?? o.maxWait, o.maxWait);
    const content = req.attrs.content?.trim().toLowerCase();
    return {
      // §19.3: unpredictable, 128 bits from the CSPRNG.
      sid: randomId(16),
      creationRid: req.rid,
      wait,
      hold,
      requests: hold + 1,
      // §12: a polling session gets a higher inactivity period, "the increase SHOULD be greater than" 'polling'
      // (it was equal): one second more, the smallest whole number above it.
      inactivity: hold === 0 || wait === 0 ? o.inactivity + o.polling + 1 : o.inactivity,
      polling: o.polling,
      maxpause: o.maxPause,
      ver: negotiateVer(req.attrs.ver),
      contentType: content !== undefined && ALLOWED_CONTENT_TYPES.has(content) ? content : DEFAULT_CONTENT_TYPE,
      ackMode: req.attrs.ack?.trim() === '1',
      legacy,
    };
  }

  #removed(conn: BoshConn): void {
    if (this.#conns.get(conn.sid) !== conn) return;
    this.#conns.delete(conn.sid);
    this.opts.forwarder?.unregister(conn.sid);
    this.opts.admission.release(conn.ip, conn);
    const key = ipKey(conn.ip) ?? UNPARSABLE;
    const n = (this.#perIp.get(key) ?? 1) - 1;
    if (n > 0) this.#perIp.set(key, n);
    else this.#perIp.delete(key);
  }

  stats(): BoshStats {
    let held = 0;
    let pending = 0;
    let queued = 0;
    for (const conn of this.#conns.values()) {
      held += conn.held.length;
      pending += conn.pending.size;
      queued += conn.queued;
    }
    return { sessions: this.#conns.size, held, pending, queued, timers: this.#timers, openRequests: this.#openRequests, addresses: this.#perIp.size };
  }

  /** The most payload bytes any session has had waiting (issue 10: BOSH_MAX_QUEUED_BYTES plus one turn's output). */
  peakQueuedBytes(): number { return this.#peakQueuedBytes; }

  /**
   * Wraps a reply so the transport counts the HTTP requests still open, and the bytes sent to
   * clients; `forwarded`: the answer goes to the cluster peer that relays it, which counts them.
   */
  track(reply: HttpReply, forwarded = false): HttpReply {
    this.#openRequests++;
    let open = true;
    const settle = (): void => {
      if (open) this.#openRequests--;
      open = false;
    };
    return {
      send: (status, contentType, body) => {
        settle();
        if (!forwarded) this.server.metrics.bytesOut('bosh', Buffer.byteLength(body));
        reply.send(status, contentType, body);
      },
      stream: (status, contentType, body) => {
        settle();
        reply.stream(status, contentType, forwarded ? body : counted(body, (bytes) => this.server.metrics.bytesOut('bosh', bytes)));
      },
      onGone: (fn) => reply.onGone(() => { settle(); fn(); }),
      abort: () => { settle(); reply.abort(); },
    };
  }

  /**
   * A rolling restart: new sessions are refused with system-shutdown (§17.2),
   * the open ones go on until the core drops them (BoshConn.drop).
   */
  stopAccepting(): void {
    this.#closing = true;
  }

  /**
   * No new sessions; every open request is answered with system-shutdown
   * (§17.2). A request being forwarded is dropped instead: its session lives
   * on another node, and the client sends it again (§14.3) to a node that stays.
   */
  shutdown(): void {
    this.#closing = true;
    for (const conn of [...this.#conns.values()]) conn.shutdown();
    for (const reply of [...this.#forwarding]) reply.abort();
  }
}

/** `body` as it flows, each chunk's bytes told to `add` (the bytes a streamed response sends its client). */
function counted(body: Readable, add: (bytes: number) => void): Readable {
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      add(chunk.length);
      done(null, chunk);
    },
  });
  // A failure on either side destroys both; whoever streams `body` learns of it from `body`.
  pipeline(body, counter, () => undefined);
  return counter;
}

/**
 * The creation response leaves once the cluster knows the sid: the client's
 * next request may reach another node, which must find the owner. If Redis
 * fails the session still works on this node (logged).
 */
function whenRegistered(forwarder: BoshForwarder, sid: string, reply: HttpReply, log: Log): HttpReply {
  const registered = forwarder.register(sid).catch((err: unknown) => log.warn({ err, sidTag: logTag(sid) }, 'bosh session not registered in the cluster'));
  return {
    send: (status, contentType, body) => void registered.then(() => reply.send(status, contentType, body)),
    stream: (status, contentType, body) => void registered.then(() => reply.stream(status, contentType, body)),
    onGone: (fn) => reply.onGone(fn),
    abort: () => reply.abort(),
  };
}

/**
 * The request a body's start tag makes, its payloads unread (a body that does not parse); undefined
 * when there is no start tag or its attributes break the wrapper's rules (readRequest), which the
 * body's own condition then answers.
 */
function startRequest(root: XmlElement | undefined): BoshRequest | undefined {
  if (root === undefined) return undefined;
  try {
    return readRequest(root);
  } catch (err) {
    if (err instanceof BoshError) return undefined;
    throw err;
  }
}

/** Answers a request that belongs to no session with a terminal binding condition. */
function terminate(reply: HttpReply, condition: TerminalCondition, legacy = false): void {
  reply.send(legacy ? legacyStatus(condition) : 200, DEFAULT_CONTENT_TYPE, serialize(terminateBody(condition)));
}

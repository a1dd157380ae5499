import { NS, x, type XmlElement } from '../xml/index.js';
import { JidError, parseJid, tryNormalizeDomain, type Jid } from '../jid/index.js';
import { Pipeline, delivered, isPromise, isVeto, type Outcome } from './pipeline.js';
import type { CoreEvents } from './events.js';
import { Session, isStanza, type SessionOwner } from './session.js';
import { handOver } from './hand-over.js';
import { SessionManager, type SessionsView } from './session-manager.js';
import { Router, isClientStanza } from './router.js';
import { ComponentRegistry, DiscoRegistry, IqRegistry, NonzaRegistry } from './registry.js';
import { StanzaErrorException, StreamErrorException, stanzaErrorReply, type StreamError } from './errors.js';
import type { Conn } from './conn.js';
import type { Log } from './log.js';
import type { CoreMetrics, SessionEndReason, StanzaKind } from './metrics-port.js';
import type { ModuleContext } from './context.js';
import { WorkQueues } from './queues.js';
import { createLifecycle } from './lifecycle.js';
import { randomId } from '../util/random.js';
import { PRIORITY } from './priorities.js';

const UNDELIVERED_NOTE = 'resent: not delivered before the session ended';
/** The shape of a BCP 47 language tag (RFC 5646 §2.1): subtags of 1 to 8 letters or digits, the first letters only. */
const LANGUAGE_TAG = /^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$/;
/** Input a session may send while an earlier element of it is still being handled; more ends the stream. */
export const MAX_QUEUED_INPUT_BYTES = 1024 * 1024;
/**
 * Above this much queued input the transports stop reading the session's input (back-pressure:
 * ConnEvents.inputBacklogged) until it is back under half; MAX_QUEUED_INPUT_BYTES, four times
 * it, is then only reached by a transport that does not stop (one stanza over at most).
 */
export const INPUT_HIGH_BYTES = MAX_QUEUED_INPUT_BYTES / 4;

export interface CoreDeps {
  readonly hosts: readonly string[];
  readonly log: Log;
  readonly metrics: CoreMetrics;
  /** Seconds a stream may stay unauthenticated (Prosody's c2s_timeout); then connection-timeout. */
  readonly authTimeout: number;
}

export interface Core {
  readonly ctx: ModuleContext;
  /** The sessions, read only (metrics, tests). */
  readonly sessions: SessionsView;
  /** A transport accepted a connection: make its session. */
  connect(conn: Conn): Session;
  /** Closes every session with `system-shutdown` (RFC 6120 §4.9.3.19). */
  shutdown(): void;
  /**
   * A rolling restart (CLUSTER=redis): every session that may hibernate
   * (XEP-0198 resumable) loses its transport (Conn.drop) and hibernates, to
   * be resumed on another node; every other one is closed with
   * `system-shutdown`. Hibernating sessions are left as they are.
   */
  dropTransports(): void;
  /** Resolves once every session's and account's queued work, and every route that went async, has run (shutdown). */
  idle(): Promise<void>;
  /**
   * A rolling restart's end (roll.ts): the sessions still here are left in
   * the cluster as they are, for a resumption on another node or the
   * survivor's timeout. Each gets its session-end line here (reason
   * 'released'), as this process will not see its end; nothing else of an
   * end is done (no hook, no hand-over, no presence).
   */
  released(): void;
}

/**
 * The transport-agnostic XMPP core: stream (re)opening, feature
 * advertisement, dispatch of first-level elements to nonza handlers or to
 * the stanza pipeline (in arrival order per session, also while a handler
 * awaits), `from` stamping, and the session life cycle (lifecycle.ts).
 */
export function createCore(deps: CoreDeps): Core {
  const hosts = new Set(deps.hosts);
  const hooks = new Pipeline<CoreEvents>();
  const sessions = new SessionManager();
  const { log, metrics } = deps;
  const components = new ComponentRegistry();
  // A failure while routing is answered to the stanza: its own stanza error, or internal-server-error
  // after logging it. It never ends the sender's stream: it may be another session's or a store's fault.
  const router = new Router(hooks, hosts, components, sessions, (event, err) => {
    if (err instanceof StreamErrorException && event.origin) return event.origin.close(err.error);
    if (err instanceof StanzaErrorException) return router.bounce(event, err.condition, err.text);
    metrics.internalError();
    log.error({ err, session: event.origin?.logId }, 'unexpected error while routing a stanza');
    router.bounce(event, 'internal-server-error');
  });
  const iq = new IqRegistry();
  const nonzas = new NonzaRegistry();
  const disco = new DiscoRegistry();
  const queues = new WorkQueues((err) => unexpected(err, undefined));
  // A stanza for a component is the component's to deliver (registry.ts).
  hooks.deliver('route/component', (event) => {
    return delivered(components.lookup(event.to)?.handle(event));
  }, PRIORITY.route.standard);

  function unexpected(err: unknown, session: Session | undefined): void {
    metrics.internalError();
    log.error({ err, session: session?.logId }, 'unexpected error while handling a stanza');
    session?.close('internal-server-error');
  }

  /** The one place an error from a handler becomes protocol: a stanza error, a stream error, or internal-server-error. */
  function fail(session: Session, stanza: XmlElement | undefined, err: unknown): void {
    if (err instanceof StanzaErrorException && stanza) {
      // RFC 6120 §8.3.1 and §8.2.3: an error is never answered, nor an IQ result (as router.bounce).
      const type = stanza.attr('type');
      if (type !== 'error' && !(stanza.name === 'iq' && type === 'result')) session.send(stanzaErrorReply(stanza, err.condition, err.text, err.type));
      return;
    }
    if (err instanceof StreamErrorException) {
      session.close(err.error);
      return;
    }
    unexpected(err, session);
  }

  const lifecycle = createLifecycle({ hooks, sessions, log, metrics, destroy: (s, r, ended) => destroy(s, r, ended) });

  const ctx: ModuleContext = {
    hooks, sessions, router, iq, nonzas, disco, components, hosts, log, metrics, queues, lifecycle,
    guard(session, stanza, work) {
      work().catch((err: unknown) => fail(session, stanza, err));
    },
  };

  function openStream(session: Session, attrs: Readonly<Record<string, string>>): void | Promise<unknown> {
    // RFC 7622 §3.2: 'localhost.' is localhost (the final dot stripped, case and IDNA mapped);
    // a to that is no domainpart stays as given, and is host-unknown below.
    const to = attrs.to === undefined ? undefined : tryNormalizeDomain(attrs.to) ?? attrs.to;
    const host = to ?? session.host ?? deps.hosts[0]!;
    // RFC 6120 §4.7.4: the response's xml:lang (and the stanzas stamped with it) must be a BCP 47 tag; another value is ignored.
    const lang = attrs['xml:lang'];
    if (lang !== undefined && LANGUAGE_TAG.test(lang)) session.lang = lang;
    session.streamFrom = attrs.from;
    session.streamId = randomId(16);
    session.notopen = false;
    // RFC 6120 §4.7.2: the response's to is the bare JID of the client's from (none without one, or an unparseable one).
    let peer: string | undefined;
    if (attrs.from !== undefined) try { peer = parseJid(attrs.from).bare; } catch { /* not a JID: no to */ }
    // RFC 6120 §4.9.1.2: the header goes out before any stream error.
    session.conn?.open({ id: session.streamId, from: hosts.has(host) ? host : deps.hosts[0]!, to: peer, version: '1.0', lang: session.lang });
    // RFC 6120 §4.9.3.6; after SASL the host may not change (§6.4.6).
    if (!hosts.has(host) || (session.host !== undefined && session.host !== host)) {
      throw new StreamErrorException({ condition: 'host-unknown', text: `this server does not serve ${host}` });
    }
    // RFC 7395 §3.3.1 requires version='1.0'; RFC 6120 §4.7.5 answers others with unsupported-version.
    if (attrs.version === undefined || !/^1\.\d+$/.test(attrs.version)) {
      throw new StreamErrorException({ condition: 'unsupported-version', text: "version='1.0' is required" });
    }
    session.host = host;
    const features = x('stream:features', { 'xmlns:stream': NS.STREAM });
    const gathered = hooks.run('stream-features', { session, features });
    if (isPromise(gathered)) return gathered.then(() => session.write(features));
    session.write(features);
  }

  /** Sessions already logged for a restamped `from` (one debug line per session, not per stanza). */
  const restampLogged = new WeakSet<Session>();

  /**
   * RFC 6120 §8.1.2.1: the server stamps `from` with the bound full JID. A
   * `from` naming another account is a forgery and ends the stream
   * (§4.9.3.9 invalid-from). A `from` naming this account with another
   * resource is only a stale client view, not a forgery: Converse.js, after
   * a page reload that resumed the session (XEP-0198 §5), still uses the
   * random resource it picked before learning that no bind happens. Like
   * Prosody, that is stamped and the stanza goes on.
   */
  function stampFrom(session: Session, stanza: XmlElement): void {
    const from = stanza.attr('from');
    if (from !== undefined && from !== session.full_jid) {
      let jid: Jid | undefined;
      try { jid = parseJid(from); } catch { /* unparseable: invalid-from below */ }
      if (jid?.bare !== session.jid!.bare) throw new StreamErrorException({ condition: 'invalid-from', text: 'from does not match the bound JID' });
      if (jid.resource !== '' && jid.full !== session.full_jid) noteRestamp(session, from);
    }
    stanza.setAttr('from', session.full_jid);
  }

  function noteRestamp(session: Session, from: string): void {
    metrics.fromRestamped();
    if (restampLogged.has(session)) return;
    restampLogged.add(session);
    log.debug({ session: session.logId, jid: session.full_jid, from: from.slice(0, 128) }, 'client from names another resource of this account: stamped with the bound JID');
  }

  function handleStanza(session: Session, stanza: XmlElement): void | Promise<unknown> {
    const kind = stanza.name as 'message' | 'presence' | 'iq';
    metrics.stanzaIn(kind, session.transport);
    session.stanzasIn++;
    hooks.run('stanza-received', { session, stanza });
    if (session.type !== 'c2s') throw new StreamErrorException({ condition: 'not-authorized', text: 'authenticate first' });
    if (session.full_jid === undefined) return handleUnbound(session, stanza);
    stampFrom(session, stanza);
    // RFC 6120 §4.7.4: a stanza without xml:lang is delivered with the language of the stream it came on.
    if (stanza.attr('xml:lang') === undefined) stanza.setAttr('xml:lang', session.lang);
    if (kind === 'iq') validateIq(stanza);
    const rawTo = stanza.attr('to');
    let to: Jid | undefined;
    if (rawTo !== undefined) {
      try { to = parseJid(rawTo); } catch (err) {
        if (err instanceof JidError) throw new StanzaErrorException('jid-malformed', `cannot parse to='${rawTo.slice(0, 64)}'`);
        throw err;
      }
      stanza.setAttr('to', to.full);
    }
    const checked = hooks.run('stanza-in', { session, stanza });
    if (isPromise(checked)) return checked.then((outcome) => routeIn(session, stanza, to, outcome));
    return routeIn(session, stanza, to, checked);
  }

  /** After the stanza-in filters: a veto answers the sender (XEP-0191's <blocked/>), a drop ends it, else it is routed. */
  function routeIn(session: Session, stanza: XmlElement, to: Jid | undefined, outcome: Outcome): void | Promise<unknown> {
    if (isVeto(outcome)) {
      const type = stanza.attr('type');
      if (type === 'error' || (stanza.name === 'iq' && type === 'result')) return;
      const reply = stanzaErrorReply(stanza, outcome.veto, outcome.text, outcome.errorType);
      if (outcome.appCondition) reply.getChild('error')!.append(outcome.appCondition);
      session.send(reply);
      return;
    }
    if (outcome !== 'undelivered') return;
    return to === undefined ? router.routeNoTo(session, stanza) : router.route(session, stanza, to);
  }

  /** Before binding only the IQs that allow it (bind, legacy session) are served (RFC 6120 §7.1). */
  function handleUnbound(session: Session, stanza: XmlElement): void | Promise<unknown> {
    if (stanza.name === 'iq') {
      validateIq(stanza);
      const payload = stanza.firstElement;
      const entry = payload && iq.lookup('host', stanza.attr('type')!, payload.ns);
      if (entry?.beforeBind) return router.run('iq/host', { origin: session, stanza, to: parseJid(session.host!) });
    }
    throw new StanzaErrorException('not-authorized', 'bind a resource first');
  }

  /** One element of a session, with its errors turned into protocol; a promise while a handler awaits. */
  function processElement(session: Session, el: XmlElement): void | Promise<void> {
    const stanza = isClientStanza(el) ? el : undefined;
    // A stanza the client sent before its session ended (queued behind a handler that awaited,
    // then the stream closed) was accepted: it is still routed, only answers to the client go nowhere.
    if (session.destroyed && (stanza === undefined || session.full_jid === undefined)) return;
    try {
      if (session.notopen) throw new StreamErrorException({ condition: 'undefined-condition', text: 'the stream is not open: send <open/> first' });
      const nonza = stanza ? undefined : nonzas.lookup(el);
      let out: void | Promise<unknown>;
      if (nonza) out = nonza(session, el);
      else if (stanza) out = handleStanza(session, stanza);
      else throw new StreamErrorException({ condition: 'unsupported-stanza-type', text: `<${el.name}/> in ${el.ns || 'no namespace'} is not supported` });
      if (isPromise(out)) return out.then(noop, (err: unknown) => fail(session, stanza, err));
    } catch (err) {
      fail(session, stanza, err);
    }
  }

  /** Bytes of input queued per session behind a handler that awaits (bounded: MAX_QUEUED_INPUT_BYTES). */
  const queuedBytes = new WeakMap<Session, number>();

  /** Sessions whose transport was told to stop feeding input (INPUT_HIGH_BYTES), told again at half. */
  const inputPaused = new WeakSet<Session>();

  /** Runs `work` for `session` in arrival order: at once when nothing of it is pending, else queued. */
  function inOrder(session: Session, el: XmlElement | undefined, work: () => void | Promise<void>): void {
    if (!queues.sessions.busy(session)) {
      queues.sessions.after(session, work);
      return;
    }
    const bytes = el ? el.toString().length : 0;
    const held = (queuedBytes.get(session) ?? 0) + bytes;
    queuedBytes.set(session, held);
    if (held > INPUT_HIGH_BYTES) inputPaused.add(session);
    queues.sessions.after(session, () => {
      const left = (queuedBytes.get(session) ?? bytes) - bytes;
      queuedBytes.set(session, left);
      if (left <= INPUT_HIGH_BYTES / 2 && inputPaused.delete(session)) session.conn?.inputRoom?.();
      return work();
    });
    // What it sent is still handled in order; only the stream ends.
    if (held > MAX_QUEUED_INPUT_BYTES) session.close({ condition: 'policy-violation', text: `more than ${MAX_QUEUED_INPUT_BYTES} bytes sent while the server was still busy with this session` });
  }

  /**
   * Whose a transport event of `session`, queued when it had seen `resumptions` resumptions, is
   * now (XEP-0198 §5): the session's, while the transport that sent it is still its own; none once
   * a resumption replaced that transport (a stanza uncounted by <resumed h/>, sent again by the
   * client; the old transport's close or loss is not the resumed session's); on a carrier retired
   * by a resumption, the resumed session's, whose transport sent it.
   */
  function eventOwner(session: Session, resumptions: number): Session | undefined {
    if (session.resumptions !== resumptions) return undefined;
    const into = session.resumedInto;
    if (into === undefined) return session;
    return into.session.resumptions === into.resumptions ? into.session : undefined;
  }

  /** Runs a transport event in order on whichever session eventOwner() says is its own by then. */
  function fromTransport(session: Session, el: XmlElement | undefined, run: (owner: Session) => void | Promise<void>): void {
    const resumptions = session.resumptions;
    inOrder(session, el, () => {
      const to = eventOwner(session, resumptions);
      if (to !== undefined) return run(to);
    });
  }

  const owner: SessionOwner = {
    dispatchOpen(session, attrs) {
      fromTransport(session, undefined, (to) => {
        // A carrier's restart after its <resume/> has nothing to open on the resumed session.
        if (to !== session) return;
        try {
          const out = openStream(session, attrs);
          if (isPromise(out)) return out.then(noop, (err: unknown) => fail(session, undefined, err));
        } catch (err) { fail(session, undefined, err); }
      });
    },
    // An element the carrier of a resumption still had queued is queued again on the resumed session.
    dispatchElement(session, el) {
      fromTransport(session, el, (to) => (to === session ? processElement(session, el) : owner.dispatchElement(to, el)));
    },
    // The end of the stream comes after what the client sent before it (its last <a/> above all,
    // or stream management would hand over stanzas the client has acknowledged).
    dispatchClose(session) {
      fromTransport(session, undefined, (to) => (to === session ? session.close() : owner.dispatchClose(to)));
    },
    filterOut(session, stanza) {
      metrics.stanzaOut(stanza.name as StanzaKind, session.transport);
      const outcome = hooks.run('stanza-out', { session, stanza });
      if (!isPromise(outcome)) return outcome !== 'undelivered';
      // Holding filters and writers are synchronous: a feature that awaits here is a bug, said
      // loudly; the stanza is written by whoever took it once the handler settles.
      outcome.catch((err: unknown) => unexpected(err, session));
      log.error({ session: session.logId }, 'a stanza-out handler returned a promise');
      return true;
    },
    closed(session, reason, _clean) {
      // Only a stream that is there gets the error: a hibernating session's end (a resume timeout, a
      // shutdown, the per-account cap) writes nothing and is counted by its end reason alone.
      if (reason && session.conn) metrics.streamError(reason.condition);
      session.conn?.close(reason);
      destroy(session, reason);
    },
    lost(session, reason) {
      fromTransport(session, undefined, (to) => {
        if (to !== session) return owner.lost(to, reason);
        if (session.destroyed) return;
        if (lifecycle.hibernate(session, reason)) return;
        lifecycle.detach(session);
        destroy(session, { condition: 'connection-timeout', text: reason }, 'dropped');
      });
    },
    mayHibernate: (session) => lifecycle.mayHibernate(session),
    inputBacklogged: (session) => inputPaused.has(session),
    drained(session) {
      if (!session.destroyed) hooks.run('session-drained', { session });
    },
    undelivered(session, elements) {
      const stanzas = elements.filter(isStanza);
      if (stanzas.length === 0) return;
      const event = { session, stanzas };
      hooks.run('stanzas-undelivered', event);
      if (event.stanzas.length === 0) return;
      const at = Date.now();
      const items = event.stanzas.map((stanza) => ({ stanza, at }));
      // Not while the session is still routable: a message would come straight back to it.
      if (session.destroyed) handOver(ctx, session, items, UNDELIVERED_NOTE);
      else (session.undeliveredStanzas ??= []).push(...items);
    },
  };

  // One timer per unauthenticated stream: a WebSocket that never logs in is otherwise kept open by its pings forever.
  const authTimers = new WeakMap<Session, NodeJS.Timeout>();

  // `ended` before the session is torn down: a hibernating session (conn null) that times out is a resume timeout.
  function destroy(session: Session, reason: StreamError | undefined, ended = endReason(session, reason)): void {
    if (session.destroyed) return;
    session.destroyed = true;
    clearTimeout(authTimers.get(session));
    sessions.remove(session);
    try {
      const done = hooks.run('session-destroyed', { session, reason });
      if (isPromise(done)) done.catch((err: unknown) => log.error({ err, session: session.logId }, 'error in session-destroyed handler'));
    } catch (err) {
      log.error({ err, session: session.logId }, 'error in session-destroyed handler');
    }
    if (session.undeliveredStanzas) {
      handOver(ctx, session, session.undeliveredStanzas, UNDELIVERED_NOTE);
      session.undeliveredStanzas = undefined;
    }
    // Its end line was written already if a rolling restart left it to the cluster (released()).
    if (!released.has(session)) logEnd(session, ended, reason);
  }

  /** Sessions a rolling restart left to the cluster (their end line written). */
  const released = new WeakSet<Session>();

  /** The one session-end line (and xmpp_sessions_ended_total) of a session. */
  function logEnd(session: Session, ended: SessionEndReason, reason: { condition: string; text?: string } | undefined): void {
    const seconds = (Date.now() - session.startedAt) / 1000;
    metrics.sessionEnded(session.transport, seconds, ended);
    log.info({
      event: 'session-end', session: session.logId, jid: session.full_jid, ip: session.ip,
      reason: reason?.condition ?? 'closed', text: reason?.text, seconds, stanzasIn: session.stanzasIn, stanzasOut: session.stanzasOut,
    }, 'session ended');
  }

  let shuttingDown = false;
  return {
    ctx,
    sessions,
    connect(conn) {
      const session = new Session(conn, owner);
      sessions.add(session);
      const timer = setTimeout(() => {
        if (session.type !== 'c2s') session.close({ condition: 'connection-timeout', text: `not authenticated within ${deps.authTimeout} s` });
      }, deps.authTimeout * 1000);
      timer.unref();
      authTimers.set(session, timer);
      metrics.sessionStarted(conn.transport);
      log.info({ event: 'session-start', session: session.logId, transport: conn.transport, ip: conn.ip, secure: conn.secure }, 'session started');
      // A transport that still took a connection after the shutdown began: refused at once.
      if (shuttingDown) session.close({ condition: 'system-shutdown', text: 'the server is shutting down' });
      return session;
    },
    shutdown() {
      shuttingDown = true;
      hooks.run('server-shutdown', {});
      for (const session of [...sessions.all]) session.close({ condition: 'system-shutdown', text: 'the server is shutting down' });
    },
    dropTransports() {
      for (const session of [...sessions.all]) {
        if (session.destroyed || session.conn === null) continue;
        if (lifecycle.mayHibernate(session)) session.conn.drop();
        else session.close({ condition: 'system-shutdown', text: 'the server is shutting down' });
      }
    },
    released() {
      for (const session of [...sessions.all]) {
        if (session.destroyed || released.has(session)) continue;
        released.add(session);
        logEnd(session, 'released', { condition: 'released', text: 'left in the cluster for a resumption on another node' });
      }
    },
    async idle() {
      // Queued work may route, and a route may queue work: until both are quiet.
      while (queues.size + router.pending > 0) await Promise.all([queues.idle(), router.idle()]);
    },
  };
}

/** RFC 6120 §8.2.3: id is required; get/set carry exactly one payload, result at most one. */
function validateIq(stanza: XmlElement): void {
  const type = stanza.attr('type');
  if (stanza.attr('id') === undefined) throw new StanzaErrorException('bad-request', 'an IQ needs an id');
  const elements = stanza.getChildren().length;
  if (type === 'get' || type === 'set') {
    if (elements !== 1) throw new StanzaErrorException('bad-request', 'an IQ get or set carries exactly one payload');
  } else if (type !== 'result' && type !== 'error') {
    throw new StanzaErrorException('bad-request', `unknown IQ type '${type ?? ''}'`);
  }
}

function noop(): void {}

/** xmpp_sessions_ended_total's reason: a bounded name for how the stream ended (never its text). */
function endReason(session: Session, reason: StreamError | undefined): SessionEndReason {
  if (reason === undefined) return 'closed';
  if (reason.kicked) return 'kicked';
  switch (reason.condition) {
    case 'conflict': return 'conflict';
    case 'system-shutdown': return 'shutdown';
    // XEP-0198 §5: a hibernating session (no transport) times out when nobody resumed it.
    case 'connection-timeout': return session.conn === null ? 'resume-timeout' : 'timeout';
    default: return 'stream-error';
  }
}

/**
 * The rolling-restart tests' clients (roll-run.ts RollPeer): @xmpp/client
 * over WebSocket and StanzaJS over BOSH, both with XEP-0198 and their own
 * reconnect and resumption, as a web page runs them.
 */
import { createRequire } from 'node:module';
import * as XMPP from 'stanza';
import { client, xml, type XmppClient, type XmlEl } from './xmppjs.js';
import { sleep, within } from './eventually.js';
import type { RollPeer } from './roll-run.js';

export interface XmppjsPeer extends RollPeer { readonly xmpp: XmppClient }

/** @xmpp/client on `service` (a ws:// URL), started by the caller. */
export function xmppjsPeer(service: string, name: string): XmppjsPeer {
  // PLAIN (the cluster helper allows it on loopback): dozens of SCRAM computations at once in this one test
  // process would take seconds of its CPU and slow the resumptions down, which is not what is tested.
  const xmpp = client({
    service, domain: 'localhost', resource: 'r',
    credentials: (authenticate, mechanisms) => authenticate({ username: name, password: `${name}-pw` }, mechanisms.includes('PLAIN') ? 'PLAIN' : mechanisms[0]!),
  });
  const p: XmppjsPeer = {
    name, xmpp, received: [], arrivals: [], sent: [], bounced: [], resumed: 0, online: 0,
    jid: () => String(xmpp.jid),
    isOnline: () => xmpp.status === 'online',
    // A write that fails (the node just dropped us) stays in @xmpp/client's XEP-0198 queue and is resent on resumption.
    send: (to, id) => { xmpp.send(xml('message', { to, type: 'chat', id }, xml('body', {}, id))).catch(() => undefined); },
    presence: () => { xmpp.send(xml('presence')).catch(() => undefined); },
    async stop() { xmpp.reconnect.stop(); await xmpp.stop().catch(() => undefined); },
  };
  xmpp.on('stanza', (el: XmlEl) => {
    if (el.is('message') && el.attrs.type === 'chat' && el.attrs.id) {
      p.received.push(el.attrs.id);
      const delay = el.getChild('delay', 'urn:xmpp:delay');
      p.arrivals.push(`at ${Date.now()} over WebSocket, after ${p.resumed} resumptions${delay ? `, delayed by ${String(delay.attrs.from)} (${delay.text() || 'no reason'})` : ''}`);
    }
    if (el.is('message') && el.attrs.type === 'error' && el.attrs.id) p.bounced.push(el.attrs.id);
  });
  xmpp.on('status', (status) => { if (status === 'online') p.online++; });
  xmpp.on('error', () => undefined);
  xmpp.streamManagement.on('resumed', () => { p.resumed++; });
  return p;
}

export interface StanzaPeer extends RollPeer {
  readonly stanza: XMPP.Agent;
  /** Resolves once bound with XEP-0198 enabled. */
  start(): Promise<void>;
}

/**
 * StanzaJS 12 over BOSH only (`url`: nginx's /http-bind). When its sid is forgotten (a leaving node answers the held
 * requests empty, the next request gets <body type='terminate' condition='item-not-found'/>, XEP-0124 §17.2),
 * StanzaJS ends the transport, hibernates its XEP-0198 state (unacked stanzas kept), and its autoReconnect opens a
 * new BOSH session: SASL, then <resume/> (XEP-0198 §5), resending what the server's h says it did not get.
 */
export function stanzaPeer(url: string, name: string): StanzaPeer {
  const stanza = XMPP.createClient({
    jid: `${name}@localhost`, password: `${name}-pw`, resource: 'r',
    transports: { websocket: false, bosh: url },
    // Its backoff is 2^attempts seconds and the count is reset only by a fresh login, never by a resumption: a client
    // dropped three times would wait 8 s; 2 s at most keeps the roll short without changing what is tested.
    autoReconnect: true, maxReconnectBackoff: 2,
  });
  // What each BOSH response this client processed carried (sid, rid, attempt), by message id, taken at its 'message'.
  const processed = new Map<string, string[]>();
  // Each message StanzaJS sent again from its XEP-0198 queue (<resumed h/> did not count it), or gave up on (a
  // resumption failed: its unacked stanzas are 'failed', not sent again), by id.
  const resent = new Map<string, string[]>();
  const transports = patchBosh(stanza, processed);
  keepResentTracked(stanza.sm);
  let enabled = false;
  const p: StanzaPeer = {
    name, stanza, received: [], arrivals: [], sent: [], bounced: [], resumed: 0, online: 0,
    notes: (id) => [...(wireSeen.get(id) ?? []).map((w) => `on the wire: ${w}`), ...(resent.get(id) ?? [])],
    jid: () => stanza.jid,
    isOnline: () => stanza.sessionStarted && stanza.transport !== undefined,
    // Offline (no transport), StanzaJS keeps the message in its XEP-0198 queue and sends it after the resumption.
    send: (to, id) => { void stanza.sendMessage({ to, type: 'chat', id, body: id }); },
    presence: () => { void stanza.sendPresence(); },
    async stop() {
      if (!enabled) return;
      stanza.config.autoReconnect = false;
      // Its 'disconnected' can stay pending over BOSH (see im-clients.ts stop); the server ends the rest at teardown.
      await Promise.race([stanza.disconnect(), sleep(2000)]).catch(() => undefined);
      // No request or retry of any of its transports may outlive the test (its retries back off up to 30 s).
      for (const tr of transports) {
        tr.isEnded = true;
        for (const c of tr.channels) c.maxRetries = 0;
      }
    },
    async start() {
      const ready = new Promise<void>((resolve, reject) => {
        const onSm = (sm: XMPP.Stanzas.StreamManagement): void => {
          if (sm.type !== 'enabled') return;
          stanza.off('sm', onSm);
          enabled = true;
          resolve();
        };
        stanza.on('sm', onSm);
        stanza.once('auth:failed', () => reject(new Error(`StanzaJS authentication of ${name} failed`)));
      });
      stanza.connect();
      await within(ready, `${name}'s StanzaJS session over BOSH with XEP-0198`, 20_000);
    },
  };
  stanza.on('message', (m) => {
    if (m.type === 'chat' && m.id) {
      p.received.push(m.id);
      const response = processed.get(m.id)?.shift() ?? 'in no response processed';
      const delay = m.delay ? `, delayed by ${m.delay.from ?? '?'} (${m.delay.reason ?? 'no reason'})` : '';
      p.arrivals.push(`at ${Date.now()} over BOSH, ${response}, after ${p.resumed} resumptions${delay}`);
    }
    if (m.type === 'error' && m.id) p.bounced.push(m.id);
  });
  stanza.on('message:retry', (m) => {
    if (m.id) resent.set(m.id, [...(resent.get(m.id) ?? []), `${name} sent it again at ${Date.now()} after resumption ${p.resumed}`]);
  });
  stanza.on('message:failed', (m) => {
    if (m.id) resent.set(m.id, [...(resent.get(m.id) ?? []), `${name} gave it up at ${Date.now()} (StanzaJS 'message:failed': a resumption failed with it unacknowledged)`]);
  });
  stanza.on('session:started', () => { p.online++; });
  stanza.on('stream:management:resumed', () => { p.resumed++; });
  return p;
}


/** StanzaJS 12's XEP-0198 state (helpers/StreamManagement.js): what keepResentTracked touches. */
export interface StanzaSm {
  unacked: Array<[string, unknown]>;
  on(event: 'resend', listener: (e: { kind: string; stanza: unknown }) => void): unknown;
}

/**
 * Works around a bug of StanzaJS 12 (12.22.1) found by the rolling-restart test: on <resumed h/> its
 * StreamManagement empties its unacked queue and emits 'resend' for each stanza the server's h does not count, and
 * Client.js sends those with `replay` set, which skips sm.track(): they are no longer unacknowledged for it. So (1) a
 * second interruption before the server acknowledges them loses them (the next resumption has nothing to resend:
 * a client dropped by a leaving node, resumed on a node that stopped seconds later, lost 57 messages so), and (2)
 * the server's next <a h/>, which counts them, is taken off the stanzas sent after the resumption instead, which
 * are then not resent either. Listening after Client.js's own listener, this puts each one back, in order, ahead of
 * anything sent later: unacknowledged until the server's h counts it, as XEP-0198 §4 has it.
 */
export function keepResentTracked(sm: StanzaSm): void {
  sm.on('resend', ({ kind, stanza }) => { sm.unacked.push([kind, stanza]); });
}

/** The message ids in a BOSH response's text. */
function messageIds(body: string): string[] {
  return [...body.matchAll(/<message\b[^>]*?\sid=["']([^"']+)["']/g)].map((m) => m[1]!);
}

/**
 * Every BOSH response any StanzaJS client of this process got, by the message ids it carried: its sid, rid, which
 * attempt of that rid (StanzaJS sends a rid again after a timeout or a failure, and the server answers a repeated rid
 * with the response it kept, XEP-0124 §14.3), its status and when. Kept by wrapping StanzaJS's platform fetch, which
 * its BOSH transport looks up at each call.
 */
const wireSeen = new Map<string, string[]>();
/** The same note, by the response's text, for the transport's process() to find. */
const wireNotes = new Map<string, string[]>();
{
  const platform = createRequire(import.meta.url)('stanza/platform/node') as { fetch: typeof fetch };
  const attempts = new Map<string, number>();
  const fetchIt = platform.fetch;
  platform.fetch = async (url, init) => {
    const body = typeof init?.body === 'string' ? init.body : '';
    const key = `sid=${/\ssid=["']([^"']*)["']/.exec(body)?.[1] ?? '(new)'} rid=${/\srid=["']([^"']*)["']/.exec(body)?.[1] ?? '?'}`;
    const attempt = (attempts.get(key) ?? 0) + 1;
    attempts.set(key, attempt);
    const sentAt = Date.now();
    const res = await fetchIt(url, init);
    const text = await res.text();
    const note = `response to ${key} (attempt ${attempt}, sent at ${sentAt}, status ${res.status}, read at ${Date.now()})`;
    const ids = messageIds(text);
    if (ids.length > 0) {
      for (const id of ids) wireSeen.set(id, [...(wireSeen.get(id) ?? []), note]);
      wireNotes.set(text, [...(wireNotes.get(text) ?? []), note]);
    }
    return new Response(text, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

/** StanzaJS 12's BOSH transport's internals that patchBosh touches (transports/bosh.js). */
interface BoshInternals {
  isEnded: boolean;
  process(result: string): void;
  maxWaitTime: number;
  queue: Array<[unknown, () => void]>;
  channels: Array<{ maxRetries: number; maxTimeout: number }>;
  _write(chunk: unknown, encoding: unknown, done: () => void): void;
  _writev(chunks: unknown, done: () => void): void;
  on(event: string, listener: () => void): void;
}
type BoshFactory = new (...args: unknown[]) => BoshInternals;

/** The `wait` asked for (XEP-0124 §7.1), so that a held request, and StanzaJS's 1.1 × wait timeout, end soon. */
const WAIT_S = 10;

/**
 * Wraps StanzaJS 12's BOSH transport class for this client; returns the transports it made. Works around two bugs
 * found by the rolling-restart test:
 * - a write still queued when the transport ends (its sid answered with item-not-found, right as the client sends)
 *   never gets its callback, so StanzaJS's outgoing queue never drains and the reconnect that waits for that drain
 *   never comes: the session stayed hibernated until its node gave up (2 runs of 3). Completing those writes loses
 *   nothing: StanzaJS tracked each stanza in its XEP-0198 unacked queue before writing it, and resends what the
 *   server's h on <resumed/> does not count;
 * - a request failing after its retries ends the transport with end(err); on a transport already ended that is a
 *   write after end, an 'error' nobody listens to, which crashed the test process.
 */
function patchBosh(stanza: XMPP.Agent, processed: Map<string, string[]>): Set<BoshInternals> {
  const made = new Set<BoshInternals>();
  const holder = stanza as unknown as { transports: Record<string, BoshFactory> };
  const Bosh = holder.transports.bosh!;
  // A constructor returning an object: `new` (Client.connect) gets the patched instance.
  holder.transports.bosh = function make(...args: unknown[]) {
    const tr = new Bosh(...args);
    made.add(tr);
    const transport = made.size;
    // The trace only (roll-run.ts arrivals): which response, to which of this client's transports, carried each message.
    const processIt = tr.process.bind(tr);
    tr.process = (result) => {
      const ids = messageIds(result);
      if (ids.length > 0) {
        const notes = wireNotes.get(result);
        const note = `${notes?.shift() ?? 'a response not seen on the wire'} processed by transport #${transport}${tr.isEnded ? ' (ended)' : ''}`;
        if (notes?.length === 0) wireNotes.delete(result);
        for (const id of ids) processed.set(id, [...(processed.get(id) ?? []), note]);
      }
      processIt(result);
    };
    tr.maxWaitTime = WAIT_S;
    for (const c of tr.channels) c.maxTimeout = 1100 * WAIT_S;
    const write = tr._write.bind(tr);
    const writev = tr._writev.bind(tr);
    tr._write = (chunk, encoding, done) => { if (tr.isEnded) done(); else write(chunk, encoding, done); };
    tr._writev = (chunks, done) => { if (tr.isEnded) done(); else writev(chunks, done); };
    tr.on('end', () => { for (const [, done] of tr.queue.splice(0)) done(); });
    tr.on('error', () => undefined);
    return tr;
  } as unknown as BoshFactory;
  return made;
}

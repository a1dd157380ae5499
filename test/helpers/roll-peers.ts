/**
 * The rolling-restart tests' clients (roll-run.ts RollPeer): @xmpp/client
 * over WebSocket and StanzaJS over BOSH, both with XEP-0198 and their own
 * reconnect and resumption, as a web page runs them.
 */
import * as XMPP from 'stanza';
import type { Test } from 'tap';
import { client, xml, type XmppClient, type XmlEl } from './xmppjs.js';
import { within } from './eventually.js';
import type { RollPeer } from './roll-run.js';

export interface XmppjsPeer extends RollPeer { readonly xmpp: XmppClient }

/** @xmpp/client on `service` (a ws:// URL), started by the caller, stopped at `t`'s teardown. */
export function xmppjsPeer(t: Test, service: string, name: string): XmppjsPeer {
  // PLAIN (the cluster helper allows it on loopback): dozens of SCRAM computations at once in this one test
  // process would take seconds of its CPU and slow the resumptions down, which is not what is tested.
  const xmpp = client({
    service, domain: 'localhost', resource: 'r',
    credentials: (authenticate, mechanisms) => authenticate({ username: name, password: `${name}-pw` }, mechanisms.includes('PLAIN') ? 'PLAIN' : mechanisms[0]!),
  });
  const p: XmppjsPeer = {
    name, xmpp, received: [], sent: [], bounced: [], resumed: 0, online: 0,
    jid: () => String(xmpp.jid),
    isOnline: () => xmpp.status === 'online',
    // A write that fails (the node just dropped us) stays in @xmpp/client's XEP-0198 queue and is resent on resumption.
    send: (to, id) => { xmpp.send(xml('message', { to, type: 'chat', id }, xml('body', {}, id))).catch(() => undefined); },
    presence: () => { xmpp.send(xml('presence')).catch(() => undefined); },
  };
  xmpp.on('stanza', (el: XmlEl) => {
    if (el.is('message') && el.attrs.type === 'chat' && el.attrs.id) p.received.push(el.attrs.id);
    if (el.is('message') && el.attrs.type === 'error' && el.attrs.id) p.bounced.push(el.attrs.id);
  });
  xmpp.on('status', (status) => { if (status === 'online') p.online++; });
  xmpp.on('error', () => undefined);
  xmpp.streamManagement.on('resumed', () => { p.resumed++; });
  t.teardown(async () => { xmpp.reconnect.stop(); await xmpp.stop().catch(() => undefined); });
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
export function stanzaPeer(t: Test, url: string, name: string): StanzaPeer {
  const stanza = XMPP.createClient({
    jid: `${name}@localhost`, password: `${name}-pw`, resource: 'r',
    transports: { websocket: false, bosh: url },
    // Its backoff is 2^attempts seconds and the count is reset only by a fresh login, never by a resumption: a client
    // dropped three times would wait 8 s; 2 s at most keeps the roll short without changing what is tested.
    autoReconnect: true, maxReconnectBackoff: 2,
  });
  let enabled = false;
  const p: StanzaPeer = {
    name, stanza, received: [], sent: [], bounced: [], resumed: 0, online: 0,
    jid: () => stanza.jid,
    isOnline: () => stanza.sessionStarted && stanza.transport !== undefined,
    // Offline (no transport), StanzaJS keeps the message in its XEP-0198 queue and sends it after the resumption.
    send: (to, id) => { void stanza.sendMessage({ to, type: 'chat', id, body: id }); },
    presence: () => { void stanza.sendPresence(); },
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
    if (m.type === 'chat' && m.id) p.received.push(m.id);
    if (m.type === 'error' && m.id) p.bounced.push(m.id);
  });
  stanza.on('session:started', () => { p.online++; });
  stanza.on('--transport-disconnected', () => releaseEndedWrites(stanza.transport));
  stanza.on('stream:management:resumed', () => { p.resumed++; });
  t.teardown(async () => {
    if (!enabled) return;
    stanza.config.autoReconnect = false;
    await Promise.race([stanza.disconnect(), new Promise((resolve) => setTimeout(resolve, 2000))]).catch(() => undefined);
  });
  return p;
}

/** StanzaJS 12's BOSH transport's internals that releaseEndedWrites touches. */
interface BoshInternals {
  isEnded?: boolean;
  queue?: Array<[unknown, () => void]>;
  _write?: (chunk: unknown, encoding: unknown, done: () => void) => void;
  _writev?: (chunks: unknown, done: () => void) => void;
}

/**
 * Works around a StanzaJS 12 BOSH bug: a write still queued when the transport ends (its sid answered with
 * item-not-found, right as the client sends) never gets its callback, so StanzaJS's outgoing queue never drains and
 * the reconnect that waits for that drain never comes (found by this test: the client stayed hibernated on the server
 * until its node's drain gave up). Completing those writes loses nothing: StanzaJS tracked each stanza in its
 * XEP-0198 unacked queue before writing it, and resends what the server's h on <resumed/> does not count.
 */
function releaseEndedWrites(transport: unknown): void {
  const bosh = transport as BoshInternals | undefined;
  if (!bosh?.isEnded || !bosh.queue) return;
  bosh._write = (_chunk, _encoding, done) => done();
  bosh._writev = (_chunks, done) => done();
  for (const [, done] of bosh.queue.splice(0)) done();
}

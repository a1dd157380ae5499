/**
 * Driving @xmpp/client (xmpp.js) 0.14 from tests, in Node, over RFC 7395
 * WebSocket.
 *
 * xmpp.js ships no TypeScript declarations, so the parts of its API the
 * tests use are described by the local interfaces below and the module is
 * loaded with a dynamic import whose specifier tsc does not resolve.
 */
import type { Test } from 'tap';
import WebSocket from 'ws';
import type { TestServer } from './server.js';
import { eventually, Mailbox, sleep, within } from './eventually.js';

// xmpp.js uses the WHATWG global WebSocket, which Node 20 only has behind a
// flag; `ws` implements the same API (addEventListener, MessageEvent.data).
if (typeof globalThis.WebSocket === 'undefined') {
  (globalThis as { WebSocket?: unknown }).WebSocket = WebSocket;
}

export const WAIT_MS = 5000;
export const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
export const NS_STREAM = 'http://etherx.jabber.org/streams';
export const NS_FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';
export const NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind';
export const NS_SM = 'urn:xmpp:sm:3';
export const NS_DELAY = 'urn:xmpp:delay';

export interface XmlEl {
  name: string;
  attrs: Record<string, string | undefined>;
  is(name: string, xmlns?: string): boolean;
  getChild(name: string, xmlns?: string): XmlEl | undefined;
  getChildren(name: string, xmlns?: string): XmlEl[];
  getChildText(name: string, xmlns?: string): string | null;
  text(): string;
  toString(): string;
}
export interface XmppJid { toString(): string; local: string; domain: string; resource: string }
type Authenticate = (credentials: { username: string; password: string }, mechanism: string) => Promise<void>;
export interface XmppClientOptions {
  service: string;
  domain: string;
  resource?: string;
  username?: string;
  password?: string;
  /** @xmpp/sasl: called with the mechanisms both sides support; picks one. */
  credentials?: (authenticate: Authenticate, mechanisms: string[]) => Promise<void>;
}
/** @xmpp/stream-management's state object (an EventEmitter: 'resumed', 'ack', 'fail'). */
export interface XmppStreamManagement {
  /** The smid from <enabled/>; a non-empty id makes the next stream try <resume/>. */
  id: string;
  /** Stanzas received since <enabled/> (the client's h). */
  inbound: number;
  /** Own stanzas the server has acknowledged (the server's last h). */
  outbound: number;
  /** Own stanzas sent and not yet acknowledged. */
  outbound_q: Array<{ stanza: XmlEl; stamp: string }>;
  enabled: boolean;
  on(event: 'resumed', listener: () => void): this;
  on(event: 'ack' | 'fail', listener: (stanza: XmlEl) => void): this;
  once(event: 'resumed', listener: () => void): this;
}
/** @xmpp/websocket's Socket: an EventEmitter around the WHATWG WebSocket (here a `ws` WebSocket). */
export interface XmppSocket { socket: WebSocket | null }
export interface XmppClient {
  status: string;
  jid: XmppJid | null;
  socket: XmppSocket | null;
  start(): Promise<XmppJid>;
  stop(): Promise<XmlEl | undefined>;
  send(el: XmlEl): Promise<void>;
  on(event: 'element' | 'stanza' | 'nonza' | 'send', listener: (el: XmlEl) => void): this;
  off(event: 'stanza', listener: (el: XmlEl) => void): this;
  on(event: 'error', listener: (err: Error & { condition?: string }) => void): this;
  on(event: 'status', listener: (status: string) => void): this;
  iqCaller: { request(el: XmlEl, timeout?: number): Promise<XmlEl> };
  reconnect: { delay: number; stop(): void; on(event: 'reconnecting' | 'reconnected', listener: () => void): unknown };
  streamManagement: XmppStreamManagement;
  saslFactory: { _mechs: Array<{ name: string }> };
}
interface XmppClientModule {
  client(options: XmppClientOptions): XmppClient;
  xml(name: string, attrs?: Record<string, string>, ...children: Array<XmlEl | string>): XmlEl;
}
const XMPP_CLIENT = '@xmpp/client';
const mod = (await import(XMPP_CLIENT)) as XmppClientModule;
export const client = mod.client;
export const xml = mod.xml;

export { sleep, within };

/** Every <message/> a client receives, read in order with a bounded wait. */
export class Inbox extends Mailbox<XmlEl> {}

export interface XmppJsClient {
  xmpp: XmppClient;
  /** Every element the library put on the wire, and every one it read. */
  sent: XmlEl[];
  received: XmlEl[];
  errors: Error[];
  inbox: Inbox;
}

export type ClientOptions = Omit<XmppClientOptions, 'service' | 'domain'>;

/** A new xmpp.js client for `server`, recording its traffic; stopped (reconnect off) at teardown. */
export function createClient(tt: Test, server: TestServer, opts: ClientOptions): XmppJsClient {
  const xmpp = client({ service: server.wsUrl, domain: 'localhost', ...opts });
  const s: XmppJsClient = { xmpp, sent: [], received: [], errors: [], inbox: new Inbox() };
  xmpp.on('send', (el) => s.sent.push(el));
  xmpp.on('element', (el) => s.received.push(el));
  xmpp.on('stanza', (el) => { if (el.is('message')) s.inbox.push(el); });
  // Without a listener an 'error' event would throw; tests assert on what they expect instead.
  xmpp.on('error', (err) => s.errors.push(err));
  tt.teardown(async () => {
    xmpp.reconnect.stop();
    if (xmpp.status !== 'offline') await within(xmpp.stop(), 'xmpp.js stop() in teardown').catch(() => undefined);
  });
  return s;
}

/** Starts `s` and waits for it to be online (bound); explains a failure with the frames received. */
export async function start(s: XmppJsClient, who: string): Promise<string> {
  try {
    const jid = await within(s.xmpp.start(), `xmpp.js login of ${who}`);
    return jid.toString();
  } catch (err) {
    const frames = s.received.map(String).join(' ') || 'none';
    throw new Error(`xmpp.js login of ${who} failed in status '${s.xmpp.status}': ${String(err)}; elements received: ${frames}`, { cause: err });
  }
}

export async function login(tt: Test, server: TestServer, opts: ClientOptions): Promise<XmppJsClient & { jid: string }> {
  const s = createClient(tt, server, opts);
  const jid = await start(s, opts.username ?? 'a custom credentials callback');
  return { ...s, jid };
}

export async function ping(s: XmppJsClient): Promise<XmlEl> {
  const iq = xml('iq', { type: 'get', to: 'localhost', id: `ping-${Math.random().toString(36).slice(2)}` }, xml('ping', { xmlns: 'urn:xmpp:ping' }));
  const reply = await within(s.xmpp.iqCaller.request(iq, WAIT_MS), 'the ping reply');
  if (reply.attrs.id !== iq.attrs.id) throw new Error(`ping reply carries id ${reply.attrs.id}, not ${iq.attrs.id}`);
  return reply;
}

/**
 * Sends initial presence and waits for the server to reflect it back to this
 * resource (RFC 6121 §4.2.2), which proves it has been processed.
 *
 * No IQ round-trip on purpose: xmpp.js 0.14 does not count the replies to its
 * own IQ requests in its XEP-0198 h (@xmpp/iq/caller's middleware runs before
 * @xmpp/stream-management's and does not call next() for a matched reply), so
 * after a ping its h is one short and a resumption replays a stanza the
 * client already handled. Clients whose h must be exact avoid iqCaller.
 */
export async function becomeAvailable(s: XmppJsClient): Promise<void> {
  const me = String(s.xmpp.jid);
  const reflected = nextReceived(s, (el) => el.is('presence') && el.attrs.from === me && el.attrs.type === undefined, `the server to reflect ${me}'s initial presence`);
  await s.xmpp.send(xml('presence'));
  await reflected;
}

/** Resolves with the first element `s` receives from now on that matches `pred`. */
export function nextReceived(s: XmppJsClient, pred: (el: XmlEl) => boolean, what: string, ms = WAIT_MS): Promise<XmlEl> {
  const from = s.received.length;
  return within((async () => {
    for (;;) {
      const hit = s.received.slice(from).find(pred);
      if (hit) return hit;
      await sleep(10);
    }
  })(), what, ms);
}

/** Waits until stream management is enabled (xmpp.js emits no event for <enabled/>). */
export async function smEnabled(s: XmppJsClient): Promise<string> {
  await eventually(() => s.xmpp.streamManagement.enabled && s.xmpp.streamManagement.id !== '', { message: `<enabled/> for ${String(s.xmpp.jid)}; received: ${s.received.filter((el) => el.attrs.xmlns === NS_SM).map(String).join(' ') || 'no SM nonza'}` });
  return s.xmpp.streamManagement.id;
}

/** Whether `el` is a resource-binding IQ request. */
export function isBindRequest(el: XmlEl): boolean {
  return el.is('iq') && el.attrs.type === 'set' && el.getChild('bind', NS_BIND) !== undefined;
}

/**
 * Kills the client's transport the way a closing tab or a dropped network
 * does: the TCP connection goes away without <close/> or a WebSocket close
 * handshake.
 */
export function cutOff(s: XmppJsClient): void {
  const ws = s.xmpp.socket?.socket;
  if (!ws) throw new Error(`xmpp.js has no live WebSocket to cut (status '${s.xmpp.status}')`);
  ws.terminate();
}

/** The session the server holds for this full JID, if any. */
export function serverSession(server: TestServer, fullJid: string): { conn: unknown; destroyed: boolean } | undefined {
  const m = /^([^@]+)@([^/]+)\/(.+)$/.exec(fullJid);
  if (!m) throw new Error(`not a full JID: ${fullJid}`);
  return server.app.sessions.get(m[2]!, m[1]!, m[3]!);
}

/** Waits until the server's session for `fullJid` has lost its transport (is hibernating). */
export async function serverHibernates(server: TestServer, fullJid: string): Promise<void> {
  await eventually(() => { const s = serverSession(server, fullJid); return s !== undefined && s.conn === null; }, { message: `the server to notice that ${fullJid} lost its transport` });
}

/** Waits until the server no longer holds a session for `fullJid`. */
export async function serverForgets(server: TestServer, fullJid: string, ms = WAIT_MS): Promise<void> {
  await eventually(() => serverSession(server, fullJid) === undefined, { timeout: ms, message: `the server to drop ${fullJid}` });
}

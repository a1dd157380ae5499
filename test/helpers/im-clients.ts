/**
 * Real client libraries as small adapters for the IM interop tests:
 * @xmpp/client (xmpp.js 0.14, WebSocket only), strophe.js 5 and StanzaJS 12
 * over WebSocket or BOSH, each reduced to what the scenarios need
 * (roster get/set, presence, chat, stop) and recording what it received.
 * The scenarios that use them are in im-scenarios.ts.
 */
import type { Test } from 'tap';
import { Strophe, $iq, $msg, $pres } from 'strophe.js';
import * as XMPP from 'stanza';
import { installNodeXhr } from './node-xhr.js';
import type { TestServer } from './server.js';
import { NS_DELAY, login as xmppjsLogin, xml, type XmlEl } from './xmppjs.js';
import { eventually, within } from './eventually.js';

installNodeXhr();
Strophe.setLogLevel(Strophe.LogLevel.FATAL);
const NS_ROSTER = 'jabber:iq:roster';
export const WAIT_MS = 5000;

interface Delay { from: string | undefined; stamp: number }
export type ImEvent =
  | { kind: 'presence'; from: string; type: string; show: string | undefined }
  | { kind: 'message'; from: string; type: string; body: string | undefined; delay: Delay | undefined }
  | { kind: 'push'; jid: string; subscription: string; name: string | undefined };
export interface Item { jid: string; subscription: string; ask?: string | undefined; name?: string | undefined }

/** What a client received, searchable with bounded waits. */
export class Events {
  readonly list: ImEvent[] = [];
  push(e: ImEvent): void { this.list.push(e); }
  mark(): number { return this.list.length; }
  of<K extends ImEvent['kind']>(kind: K, since = 0): Array<Extract<ImEvent, { kind: K }>> {
    return this.list.slice(since).filter((e): e is Extract<ImEvent, { kind: K }> => e.kind === kind);
  }
  async until<K extends ImEvent['kind']>(kind: K, pred: (e: Extract<ImEvent, { kind: K }>) => boolean, what: string, since = 0): Promise<Extract<ImEvent, { kind: K }>> {
    return eventually(() => this.of(kind, since).find(pred), {
      timeout: WAIT_MS, message: () => `${what}; got ${JSON.stringify(this.list.slice(since))}`,
    });
  }
}

/** The little each library has to do for the scenarios. */
export interface ImClient {
  readonly jid: string;
  readonly events: Events;
  rosterGet(): Promise<Item[]>;
  rosterSet(jid: string, name: string): Promise<void>;
  presence(attrs?: { to?: string; type?: string; show?: string }): void;
  chat(to: string, body: string): void;
  stop(): Promise<void>;
}
export type Connect = (t: Test, user: string, resource: string) => Promise<ImClient>;
export type Transport = 'bosh' | 'websocket';

const defined = (attrs: Record<string, string | undefined>): Record<string, string> =>
  Object.fromEntries(Object.entries(attrs).filter(([, v]) => v !== undefined)) as Record<string, string>;

/** Fails unless the server holds `fullJid` as a session on `transport` (so a test cannot pass on the wrong transport). */
export function assertTransport(server: TestServer, fullJid: string, transport: Transport): void {
  // Behind a balancer (test/helpers/e2e.ts) the sessions live in other processes: the library's own transport
  // check stands (xmpp.js speaks WebSocket only; strophe.js's is checked in connectStrophe).
  if ((server as Partial<TestServer>).app === undefined) return;
  const [bare, resource] = fullJid.split('/') as [string, string];
  const [local, domain] = bare.split('@') as [string, string];
  const actual = server.app.sessions.get(domain, local, resource)?.transport;
  if (actual !== transport) throw new Error(`${fullJid} is on ${String(actual)}, not ${transport}`);
}

// xmpp.js (WebSocket only)

interface XmppIqCallee { set(ns: string, name: string, handler: (ctx: { stanza: XmlEl; element: XmlEl }) => unknown): void }

export const connectXmppjs = (server: TestServer): Connect => async (t, user, resource) => {
  const s = await xmppjsLogin(t, server, { username: user, password: 'pw', resource });
  assertTransport(server, s.jid, 'websocket');
  const events = new Events();
  s.xmpp.on('stanza', (el) => {
    if (el.is('presence')) {
      events.push({ kind: 'presence', from: el.attrs.from!, type: el.attrs.type ?? 'available', show: el.getChildText('show') ?? undefined });
    } else if (el.is('message')) {
      const d = el.getChild('delay', NS_DELAY);
      events.push({ kind: 'message', from: el.attrs.from!, type: el.attrs.type ?? 'normal', body: el.getChildText('body') ?? undefined, delay: d ? { from: d.attrs.from, stamp: Date.parse(d.attrs.stamp ?? '') } : undefined });
    }
  });
  (s.xmpp as unknown as { iqCallee: XmppIqCallee }).iqCallee.set(NS_ROSTER, 'query', ({ element }) => {
    for (const i of element.getChildren('item')) events.push({ kind: 'push', jid: i.attrs.jid!, subscription: i.attrs.subscription!, name: i.attrs.name });
    return true;
  });
  // Not iqCaller: xmpp.js 0.14 leaves the replies iqCaller matches out of its XEP-0198 h (see
  // becomeAvailable in xmppjs.ts). With h short, the server rightly takes the last stanzas as unacked
  // and, at logout, stores them offline, so the next login would get them again.
  let iqs = 0;
  const request = (el: XmlEl): Promise<XmlEl> => {
    const id = `im-${++iqs}`;
    el.attrs.id = id;
    const reply = new Promise<XmlEl>((resolve, reject) => {
      const onStanza = (st: XmlEl): void => {
        if (!st.is('iq') || st.attrs.id !== id) return;
        s.xmpp.off('stanza', onStanza);
        if (st.attrs.type === 'result') resolve(st);
        else reject(new Error(`xmpp.js IQ failed: ${String(st)}`));
      };
      s.xmpp.on('stanza', onStanza);
    });
    void s.xmpp.send(el);
    return within(reply, 'an IQ reply at xmpp.js');
  };
  return {
    jid: s.jid,
    events,
    async rosterGet() {
      const reply = await request(xml('iq', { type: 'get' }, xml('query', { xmlns: NS_ROSTER })));
      return (reply.getChild('query', NS_ROSTER)?.getChildren('item') ?? []).map((i) => ({ jid: i.attrs.jid!, subscription: i.attrs.subscription!, ask: i.attrs.ask, name: i.attrs.name }));
    },
    async rosterSet(jid, name) {
      await request(xml('iq', { type: 'set' }, xml('query', { xmlns: NS_ROSTER }, xml('item', { jid, name }))));
    },
    presence({ show, ...attrs } = {}) { void s.xmpp.send(xml('presence', defined(attrs), ...(show ? [xml('show', {}, show)] : []))); },
    chat(to, body) { void s.xmpp.send(xml('message', { to, type: 'chat' }, xml('body', {}, body))); },
    async stop() { s.xmpp.reconnect.stop(); await within(s.xmpp.stop(), 'xmpp.js stop()'); },
  };
};

// strophe.js (BOSH or WebSocket)

/** The DOM surface (xmldom) of the elements strophe.js hands out; the project's tsconfig has no DOM lib. */
export interface DomEl {
  getAttribute(name: string): string | null;
  getElementsByTagName(name: string): ArrayLike<DomEl>;
  namespaceURI: string | null;
  textContent: string | null;
}

export const connectStrophe = (server: TestServer, transport: Transport): Connect => async (t, user, resource) => {
  const conn = transport === 'bosh'
    ? new Strophe.Connection(`${server.httpUrl}/http-bind`)
    : new Strophe.Connection(server.wsUrl, { protocol: 'ws' });
  const events = new Events();
  const statuses: number[] = [];
  const connected = new Promise<void>((resolve, reject) => {
    conn.connect(`${user}@localhost/${resource}`, 'pw', (status: number) => {
      statuses.push(status);
      if (status === Strophe.Status.CONNECTED) resolve();
      else if ([Strophe.Status.AUTHFAIL, Strophe.Status.CONNFAIL, Strophe.Status.DISCONNECTED].includes(status)) reject(new Error(`strophe.js login failed with status ${status}`));
    });
  });
  t.teardown(() => { if (conn.connected) conn.disconnect(); });
  await within(connected, `strophe.js login of ${user} over ${transport}`);
  if ((transport === 'bosh') !== (conn._proto instanceof Strophe.Bosh)) throw new Error(`strophe.js is not on its ${transport} transport`);
  assertTransport(server, conn.jid, transport);
  conn.addHandler((p: DomEl) => {
    events.push({ kind: 'presence', from: p.getAttribute('from')!, type: p.getAttribute('type') ?? 'available', show: p.getElementsByTagName('show')[0]?.textContent ?? undefined });
    return true;
  }, null, 'presence');
  conn.addHandler((m: DomEl) => {
    const body = m.getElementsByTagName('body')[0]?.textContent ?? undefined;
    const d = Array.from(m.getElementsByTagName('delay')).find((e) => e.namespaceURI === NS_DELAY);
    events.push({
      kind: 'message', from: m.getAttribute('from')!, type: m.getAttribute('type') ?? 'normal', body,
      delay: d ? { from: d.getAttribute('from') ?? undefined, stamp: Date.parse(d.getAttribute('stamp') ?? '') } : undefined,
    });
    return true;
  }, null, 'message');
  conn.addHandler((iq: DomEl) => {
    for (const i of Array.from(iq.getElementsByTagName('item'))) {
      events.push({ kind: 'push', jid: i.getAttribute('jid')!, subscription: i.getAttribute('subscription')!, name: i.getAttribute('name') ?? undefined });
    }
    conn.send($iq({ type: 'result', id: iq.getAttribute('id')! }));
    return true;
  }, NS_ROSTER, 'iq', 'set');
  const sendIQ = (el: ReturnType<typeof $iq>) => within(new Promise<DomEl>((resolve, reject) => {
    conn.sendIQ(el, (r: unknown) => resolve(r as DomEl), (e: unknown) => reject(new Error(`strophe.js IQ failed: ${e ? Strophe.serialize(e as never) : 'timeout'}`)), WAIT_MS);
  }), 'an IQ reply at strophe.js');
  return {
    jid: conn.jid,
    events,
    async rosterGet() {
      const reply = await sendIQ($iq({ type: 'get' }).c('query', { xmlns: NS_ROSTER }));
      return Array.from(reply.getElementsByTagName('item')).map((i) => ({
        jid: i.getAttribute('jid')!, subscription: i.getAttribute('subscription')!, ask: i.getAttribute('ask') ?? undefined, name: i.getAttribute('name') ?? undefined,
      }));
    },
    async rosterSet(jid, name) { await sendIQ($iq({ type: 'set' }).c('query', { xmlns: NS_ROSTER }).c('item', { jid, name })); },
    presence({ show, ...attrs } = {}) {
      const p = $pres(defined(attrs));
      conn.send(show ? p.c('show').t(show) : p);
    },
    chat(to, body) { conn.send($msg({ to, type: 'chat' }).c('body').t(body)); },
    async stop() {
      // strophe.js sends <presence type='unavailable'/> with its terminate body (BOSH) or before </close> (WebSocket).
      conn.disconnect();
      await eventually(() => statuses.includes(Strophe.Status.DISCONNECTED), {
        timeout: WAIT_MS, message: () => `strophe.js to disconnect; statuses: ${statuses.join(', ')}`,
      });
    },
  };
};

// StanzaJS (BOSH or WebSocket)

export const connectStanza = (server: TestServer, transport: Transport): Connect => async (t, user, resource) => {
  const transports = transport === 'bosh'
    ? { websocket: false, bosh: `${server.httpUrl}/http-bind` }
    : { websocket: server.wsUrl, bosh: false };
  const client = XMPP.createClient({ jid: `${user}@localhost`, password: 'pw', resource, transports });
  const events = new Events();
  client.on('presence', (p) => events.push({ kind: 'presence', from: p.from, type: p.type ?? 'available', show: p.show }));
  client.on('message', (m) => {
    events.push({ kind: 'message', from: m.from, type: m.type ?? 'normal', body: m.body, delay: m.delay ? { from: m.delay.from, stamp: m.delay.timestamp.getTime() } : undefined });
  });
  client.on('roster:update', (iq) => {
    for (const i of iq.roster.items ?? []) events.push({ kind: 'push', jid: i.jid, subscription: i.subscription ?? '', name: i.name });
  });
  t.teardown(() => { if (client.sessionStarted) void client.disconnect(); });
  const started = new Promise<void>((resolve, reject) => {
    client.once('session:started', () => resolve());
    client.once('auth:failed', () => reject(new Error('StanzaJS authentication failed')));
  });
  client.connect();
  await within(started, `the StanzaJS session of ${user} over ${transport}`);
  const expected = transport === 'bosh' ? 'BOSH' : 'WSConnection'; // StanzaJS 12's transport classes
  if (client.transport?.constructor.name !== expected) throw new Error(`StanzaJS is on ${String(client.transport?.constructor.name)}, not ${expected}`);
  assertTransport(server, client.jid, transport);
  return {
    jid: client.jid,
    events,
    async rosterGet() {
      const roster = await within(client.getRoster(), 'the roster at StanzaJS');
      return roster.items.map((i) => ({ jid: i.jid, subscription: i.subscription ?? '', ask: i.pending ? 'subscribe' : undefined, name: i.name }));
    },
    async rosterSet(jid, name) { await within(client.updateRosterItem({ jid, name } as XMPP.Stanzas.RosterItem), 'a roster set at StanzaJS'); },
    presence(attrs = {}) { client.sendPresence(attrs as XMPP.Stanzas.Presence); },
    chat(to, body) { client.sendMessage({ to, type: 'chat', body }); },
    async stop() {
      // Over BOSH, 'bosh:terminate' (the server's terminate body) is the end: StanzaJS's 'disconnected'
      // can stay pending there, when it wrote an SM <r/> racing its terminate: stanza 12.22.1's
      // transports/bosh.js fireRequests() returns once the transport has ended (line 281) without calling the
      // queued writes' callbacks, so Client.js's outgoing queue never drains (README, "BOSH": StanzaJS 12).
      const ended = new Promise<void>((resolve) => client.once(transport === 'bosh' ? 'bosh:terminate' : 'disconnected', () => resolve()));
      void client.disconnect();
      await within(ended, `StanzaJS disconnect over ${transport}`);
    },
  };
};

/**
 * Interop over BOSH (XEP-0124/0206) and across transports: rosters,
 * subscriptions, presence, chat and offline messages with real client
 * libraries on a real port: strophe.js 5 and StanzaJS 12 over BOSH, and
 * Converse.js-style pairs where a BOSH user and a WebSocket user
 * (@xmpp/client or strophe.js) are each other's contacts.
 *
 * The BOSH scenario, run once per library:
 *
 *   bob logs in and leaves; alice asks for bob's presence while he is away;
 *   bob logs in again, gets the request after his initial presence,
 *   approves it and asks back; alice approves; both see each other's
 *   presence; they chat; a second resource of bob's gets a roster push;
 *   bob leaves and alice sees him go; alice writes to him while he is
 *   offline; at his next login he gets those messages once each, stamped
 *   with a XEP-0203 delay, and alice sees him come back.
 *
 * strophe.js's Node entry installs DOMParser, XMLSerializer, document and
 * `ws` but not XMLHttpRequest, which its BOSH transport uses; NodeXhr below
 * (the same shim as in bosh-strophe.test.ts) is the smallest one it needs,
 * over Node's fetch. StanzaJS uses fetch itself. xmpp.js has no BOSH
 * transport, so it only appears on the WebSocket side.
 */
import t, { type Test } from 'tap';
import { Strophe, $iq, $msg, $pres } from 'strophe.js';
import * as XMPP from 'stanza';
import { startServer, type TestServer } from '../helpers/server.js';
import { NS_DELAY, login as xmppjsLogin, sleep, xml, type XmlEl } from '../helpers/xmppjs.js';

Strophe.setLogLevel(Strophe.LogLevel.FATAL);
const NS_ROSTER = 'jabber:iq:roster';
const WAIT_MS = 5000;

interface DomParserLike { parseFromString(text: string, type: string): unknown }

/** The XMLHttpRequest surface strophe.js's BOSH transport uses, over fetch. */
class NodeXhr {
  readyState = 0;
  status = 0;
  responseText = '';
  responseXML: unknown = null;
  withCredentials = false;
  onreadystatechange: (() => void) | null = null;
  #method = 'POST';
  #url = '';
  #headers: Record<string, string> = {};
  #responseHeaders = '';
  readonly #abort = new AbortController();

  overrideMimeType(): void {}
  open(method: string, url: string): void {
    this.#method = method;
    this.#url = url;
    this.readyState = 1;
  }
  setRequestHeader(name: string, value: string): void { this.#headers[name] = value; }
  getAllResponseHeaders(): string { return this.#responseHeaders; }
  abort(): void { this.#abort.abort(); }

  send(body?: string): void {
    fetch(this.#url, { method: this.#method, headers: this.#headers, body, signal: this.#abort.signal })
      .then(async (res) => {
        this.responseText = await res.text();
        this.status = res.status;
        this.#responseHeaders = [...res.headers].map(([k, v]) => `${k}: ${v}`).join('\r\n');
        const Parser = (globalThis as unknown as { DOMParser: new () => DomParserLike }).DOMParser;
        this.responseXML = new Parser().parseFromString(this.responseText, 'text/xml');
      })
      .catch(() => { this.status = 0; })
      .finally(() => {
        if (this.#abort.signal.aborted) return;
        this.readyState = 4;
        this.onreadystatechange?.();
      });
  }
}
(globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = NodeXhr;

// ------------------------------------------------------------- the adapters

interface Delay { from: string | undefined; stamp: number }
type Event =
  | { kind: 'presence'; from: string; type: string; show: string | undefined }
  | { kind: 'message'; from: string; type: string; body: string | undefined; delay: Delay | undefined }
  | { kind: 'push'; jid: string; subscription: string; name: string | undefined };
interface Item { jid: string; subscription: string; ask?: string | undefined; name?: string | undefined }

/** What a client received, searchable with bounded waits. */
class Events {
  readonly list: Event[] = [];
  push(e: Event): void { this.list.push(e); }
  mark(): number { return this.list.length; }
  of<K extends Event['kind']>(kind: K, since = 0): Array<Extract<Event, { kind: K }>> {
    return this.list.slice(since).filter((e): e is Extract<Event, { kind: K }> => e.kind === kind);
  }
  async until<K extends Event['kind']>(kind: K, pred: (e: Extract<Event, { kind: K }>) => boolean, what: string, since = 0): Promise<Extract<Event, { kind: K }>> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const hit = this.of(kind, since).find(pred);
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}; got ${JSON.stringify(this.list.slice(since))}`);
      await sleep(10);
    }
  }
}

/** The little each library has to do for the scenarios. */
interface ImClient {
  readonly jid: string;
  readonly events: Events;
  rosterGet(): Promise<Item[]>;
  rosterSet(jid: string, name: string): Promise<void>;
  presence(attrs?: { to?: string; type?: string; show?: string }): void;
  chat(to: string, body: string): void;
  stop(): Promise<void>;
}
type Connect = (t: Test, user: string, resource: string) => Promise<ImClient>;
type Transport = 'bosh' | 'websocket';

function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`)), WAIT_MS); });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const defined = (attrs: Record<string, string | undefined>): Record<string, string> =>
  Object.fromEntries(Object.entries(attrs).filter(([, v]) => v !== undefined)) as Record<string, string>;

/** Fails unless the server holds `fullJid` as a session on `transport` (so a test cannot pass on the wrong transport). */
function assertTransport(server: TestServer, fullJid: string, transport: Transport): void {
  const [bare, resource] = fullJid.split('/') as [string, string];
  const [local, domain] = bare.split('@') as [string, string];
  const actual = server.app.core.ctx.sessions.get(domain, local, resource)?.transport;
  if (actual !== transport) throw new Error(`${fullJid} is on ${String(actual)}, not ${transport}`);
}

// xmpp.js (WebSocket only)

interface XmppIqCallee { set(ns: string, name: string, handler: (ctx: { stanza: XmlEl; element: XmlEl }) => unknown): void }

const connectXmppjs = (server: TestServer): Connect => async (t, user, resource) => {
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
  const request = (el: XmlEl) => within(s.xmpp.iqCaller.request(el, WAIT_MS), 'an IQ reply at xmpp.js');
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
interface DomEl {
  getAttribute(name: string): string | null;
  getElementsByTagName(name: string): ArrayLike<DomEl>;
  namespaceURI: string | null;
  textContent: string | null;
}

const connectStrophe = (server: TestServer, transport: Transport): Connect => async (t, user, resource) => {
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
      const deadline = Date.now() + WAIT_MS;
      while (!statuses.includes(Strophe.Status.DISCONNECTED)) {
        if (Date.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for strophe.js to disconnect; statuses: ${statuses.join(', ')}`);
        await sleep(10);
      }
    },
  };
};

// StanzaJS (BOSH or WebSocket)

const connectStanza = (server: TestServer, transport: Transport): Connect => async (t, user, resource) => {
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
  const expected = transport === 'bosh' ? 'BOSH' : 'WebSocket';
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
      // can stay pending there, when it wrote an SM <r/> racing its terminate (the write's callback never
      // runs once the transport has ended, so its outgoing queue never drains).
      const ended = new Promise<void>((resolve) => client.once(transport === 'bosh' ? 'bosh:terminate' : 'disconnected', () => resolve()));
      void client.disconnect();
      await within(ended, `StanzaJS disconnect over ${transport}`);
    },
  };
};

// ------------------------------------------------------------------ scenarios

let server: TestServer;
t.before(async () => {
  // A short BOSH wait (as in bosh-strophe/bosh-stanza) keeps idle long-polls from outliving the tests.
  server = await startServer({ ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '10' });
  for (const p of ['s', 'z', 'm', 'n']) for (const u of ['alice', 'bob']) await server.addUser(`${p}${u}`, 'pw');
});
t.teardown(() => server.close());

/** Waits until the server no longer holds the session (so "offline" is true on the server too). */
async function serverDrops(fullJid: string): Promise<void> {
  const [bare, resource] = fullJid.split('/') as [string, string];
  const [local, domain] = bare.split('@') as [string, string];
  const deadline = Date.now() + WAIT_MS;
  while (server.app.core.ctx.sessions.get(domain, local, resource)) {
    if (Date.now() > deadline) throw new Error(`the server still holds ${fullJid}`);
    await sleep(10);
  }
}

const pairs = (items: Item[]) => items.map((i) => [i.jid, i.subscription]);

/** Mutual subscription started by `a`, with `b` online: both end with subscription both and see each other available. */
async function befriend(t: Test, a: ImClient, b: ImClient): Promise<void> {
  const aBare = a.jid.split('/')[0]!;
  const bBare = b.jid.split('/')[0]!;
  const seenA = a.events.mark();
  const seenB = b.events.mark();
  a.presence({ to: bBare, type: 'subscribe' });
  const request = await b.events.until('presence', (e) => e.type === 'subscribe', 'the subscription request at the contact', seenB);
  t.equal(request.from, aBare, 'the request comes from the bare JID');
  b.presence({ to: aBare, type: 'subscribed' });
  b.presence({ to: aBare, type: 'subscribe' });
  await a.events.until('presence', (e) => e.type === 'subscribed' && e.from === bBare, 'the approval at the requester', seenA);
  await a.events.until('presence', (e) => e.type === 'subscribe' && e.from === bBare, 'the request back at the requester', seenA);
  a.presence({ to: bBare, type: 'subscribed' });
  await a.events.until('presence', (e) => e.type === 'available' && e.from === b.jid, 'the contact\'s presence at the requester', seenA);
  await b.events.until('presence', (e) => e.type === 'available' && e.from === a.jid, 'the requester\'s presence at the contact', seenB);
  await a.events.until('push', (e) => e.jid === bBare && e.subscription === 'both', 'the requester\'s push: both', seenA);
  await b.events.until('push', (e) => e.jid === aBare && e.subscription === 'both', 'the contact\'s push: both', seenB);
  t.same(pairs(await a.rosterGet()), [[bBare, 'both']], 'the requester\'s roster: both');
  t.same(pairs(await b.rosterGet()), [[aBare, 'both']], 'the contact\'s roster: both');
}

/** One message each way; each arrives from the sender's full JID, undelayed. */
async function chatBothWays(t: Test, a: ImClient, b: ImClient, tag: string): Promise<void> {
  const bBare = b.jid.split('/')[0]!;
  a.chat(bBare, `hello from ${tag} a`);
  const atB = await b.events.until('message', (e) => e.body === `hello from ${tag} a`, 'the message at the second user');
  t.same([atB.from, atB.type, atB.delay], [a.jid, 'chat', undefined], 'a chat message from the sender\'s full JID, not delayed');
  b.chat(a.jid, `hello from ${tag} b`);
  const atA = await a.events.until('message', (e) => e.body === `hello from ${tag} b`, 'the reply at the first user');
  t.same([atA.from, atA.type, atA.delay], [b.jid, 'chat', undefined], 'a chat message from the replier\'s full JID, not delayed');
}

async function boshScenario(t: Test, connect: Connect, p: string): Promise<void> {
  const alice = `${p}alice@localhost`;
  const bob = `${p}bob@localhost`;

  const bob1 = await connect(t, `${p}bob`, 'first');
  bob1.presence();
  await bob1.events.until('presence', (e) => e.from === bob1.jid, 'bob\'s own presence reflected');
  await bob1.stop();
  await serverDrops(bob1.jid);

  const a = await connect(t, `${p}alice`, 'desk');
  t.same(await a.rosterGet(), [], 'alice starts with an empty roster');
  a.presence();
  await a.events.until('presence', (e) => e.from === a.jid, 'alice\'s own presence reflected');
  a.presence({ to: bob, type: 'subscribe' });
  const asked = await a.events.until('push', (e) => e.jid === bob, 'alice\'s push for the pending request');
  t.equal(asked.subscription, 'none', 'alice: a pending request shows as subscription none');

  const b = await connect(t, `${p}bob`, 'laptop');
  t.same(await b.rosterGet(), [], 'the request is not a roster item of bob\'s');
  const mark = b.events.mark();
  b.presence();
  const request = await b.events.until('presence', (e) => e.type === 'subscribe', 'the request that arrived while bob was offline', mark);
  t.equal(request.from, alice, 'delivered after initial presence, from alice\'s bare JID');

  b.presence({ to: alice, type: 'subscribed' });
  b.presence({ to: alice, type: 'subscribe' });
  await a.events.until('presence', (e) => e.type === 'subscribed' && e.from === bob, 'bob\'s approval at alice');
  await a.events.until('presence', (e) => e.type === 'subscribe' && e.from === bob, 'bob\'s request at alice');
  a.presence({ to: bob, type: 'subscribed' });
  await a.events.until('presence', (e) => e.type === 'available' && e.from === b.jid, 'bob\'s presence at alice');
  await b.events.until('presence', (e) => e.type === 'available' && e.from === a.jid, 'alice\'s presence at bob');
  await a.events.until('push', (e) => e.jid === bob && e.subscription === 'both', 'alice\'s push: both');
  t.same(pairs(await a.rosterGet()), [[bob, 'both']], 'alice: both');
  t.same(pairs(await b.rosterGet()), [[alice, 'both']], 'bob: both');

  await chatBothWays(t, a, b, 'the BOSH scenario');

  const b2 = await connect(t, `${p}bob`, 'phone');
  await b2.rosterGet();
  await b.rosterSet(alice, 'Alice');
  const push = await b2.events.until('push', (e) => e.jid === alice, 'the roster push at bob\'s second resource');
  t.same([push.name, push.subscription], ['Alice', 'both'], 'the second resource sees the new name and the subscription');

  const seen = a.events.mark();
  await b.stop();
  await a.events.until('presence', (e) => e.type === 'unavailable' && e.from === b.jid, 'bob going offline, at alice', seen);
  await b2.stop();
  await serverDrops(b.jid);
  await serverDrops(b2.jid);

  // bob is offline on every resource: messages to him are stored.
  const sentAt = Date.now();
  a.chat(bob, 'while you were away 1');
  a.chat(bob, 'while you were away 2');
  // Let the messages reach the server and be stored before bob comes back, so they cannot be delivered live.
  await sleep(300);
  t.same(a.events.of('message', seen), [], 'alice gets no bounce or error back');

  const b3 = await connect(t, `${p}bob`, 'tablet');
  t.same((await b3.rosterGet()).map((i) => [i.jid, i.subscription, i.name]), [[alice, 'both', 'Alice']], 'the roster survived the logout');
  const back = a.events.mark();
  b3.presence();
  const first = await b3.events.until('message', (e) => e.body === 'while you were away 1', 'the first offline message at bob\'s next login');
  const second = await b3.events.until('message', (e) => e.body === 'while you were away 2', 'the second offline message at bob\'s next login');
  for (const m of [first, second]) {
    t.equal(m.from, a.jid, `"${m.body}" is from alice's full JID`);
    t.equal(m.delay?.from, 'localhost', `"${m.body}" carries a XEP-0203 delay from the server`);
    t.ok(m.delay !== undefined && m.delay.stamp >= sentAt - 1000 && m.delay.stamp <= Date.now(), `"${m.body}" is stamped when it first arrived`);
  }
  t.same(b3.events.of('message').map((e) => [e.type, e.body]), [['chat', 'while you were away 1'], ['chat', 'while you were away 2']], 'in the order sent, as chat messages');
  await a.events.until('presence', (e) => e.type === 'available' && e.from === b3.jid, 'bob back online, at alice', back);
  await sleep(200);
  t.equal(b3.events.of('message').length, 2, 'each offline message exactly once');

  await b3.stop();
  await a.stop();
}

t.test('strophe.js over BOSH: two users subscribe while one is offline, see each other, chat, get a roster push on a second resource and offline messages at the next login', async (t) => {
  await boshScenario(t, connectStrophe(server, 'bosh'), 's');
});

t.test('StanzaJS over BOSH: two users subscribe while one is offline, see each other, chat, get a roster push on a second resource and offline messages at the next login', async (t) => {
  await boshScenario(t, connectStanza(server, 'bosh'), 'z');
});

t.test('Converse.js-style: a strophe.js user over BOSH and an xmpp.js user over WebSocket add each other, see presence come and go, and chat both ways', async (t) => {
  // Like Converse: fetch the roster, send initial presence, add the contact with a name, then ask for a subscription.
  const a = await connectStrophe(server, 'bosh')(t, 'malice', 'converse');
  t.same(await a.rosterGet(), [], 'the BOSH user starts with an empty roster');
  a.presence();
  await a.events.until('presence', (e) => e.from === a.jid, 'the BOSH user\'s own presence reflected');
  const b = await connectXmppjs(server)(t, 'mbob', 'web');
  t.same(await b.rosterGet(), [], 'the WebSocket user starts with an empty roster');
  b.presence();
  await b.events.until('presence', (e) => e.from === b.jid, 'the WebSocket user\'s own presence reflected');

  await a.rosterSet('mbob@localhost', 'Bob');
  const added = await a.events.until('push', (e) => e.jid === 'mbob@localhost', 'the push for the added contact');
  t.same([added.name, added.subscription], ['Bob', 'none'], 'the contact is added with its name, no subscription yet');
  await befriend(t, a, b);
  t.same((await a.rosterGet()).map((i) => i.name), ['Bob'], 'the name survives the subscription handshake');

  await chatBothWays(t, a, b, 'BOSH-and-WebSocket');

  let seen = a.events.mark();
  b.presence({ show: 'away' });
  const away = await a.events.until('presence', (e) => e.from === b.jid && e.show === 'away', 'the WebSocket user\'s away presence at the BOSH user', seen);
  t.equal(away.type, 'available', 'away is an available presence with <show/>');

  seen = a.events.mark();
  await b.stop();
  await a.events.until('presence', (e) => e.type === 'unavailable' && e.from === b.jid, 'the WebSocket user leaving, at the BOSH user', seen);

  seen = a.events.mark();
  const b2 = await connectXmppjs(server)(t, 'mbob', 'web2');
  b2.presence();
  await a.events.until('presence', (e) => e.type === 'available' && e.from === b2.jid, 'the WebSocket user back, at the BOSH user', seen);
  await b2.events.until('presence', (e) => e.type === 'available' && e.from === a.jid, 'the BOSH user\'s presence at the returning WebSocket user');

  seen = b2.events.mark();
  await a.stop();
  await b2.events.until('presence', (e) => e.type === 'unavailable' && e.from === a.jid, 'the BOSH user leaving, at the WebSocket user', seen);
  await b2.stop();
});

t.test('Converse.js-style: a StanzaJS user over BOSH and a strophe.js user over WebSocket add each other, see presence, and chat both ways', async (t) => {
  const a = await connectStanza(server, 'bosh')(t, 'nalice', 'converse');
  await a.rosterGet();
  a.presence();
  await a.events.until('presence', (e) => e.from === a.jid, 'the BOSH user\'s own presence reflected');
  const b = await connectStrophe(server, 'websocket')(t, 'nbob', 'web');
  await b.rosterGet();
  b.presence();
  await b.events.until('presence', (e) => e.from === b.jid, 'the WebSocket user\'s own presence reflected');

  await befriend(t, a, b);
  await chatBothWays(t, a, b, 'StanzaJS-and-strophe.js');

  const seen = a.events.mark();
  await b.stop();
  await a.events.until('presence', (e) => e.type === 'unavailable' && e.from === b.jid, 'the WebSocket user leaving, at the BOSH user', seen);
  await a.stop();
});

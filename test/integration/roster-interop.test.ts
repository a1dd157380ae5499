/**
 * Interop: rosters, subscriptions and presence with real client libraries
 * over RFC 7395 WebSocket on a real port: @xmpp/client (xmpp.js 0.14),
 * strophe.js 5 and StanzaJS 12. One scenario, run over one small adapter
 * per library:
 *
 *   bob logs in and leaves; alice asks for bob's presence while he is away;
 *   bob logs in again, gets the request after his initial presence,
 *   approves it and asks back; alice approves; both see each other's
 *   presence; they chat; a second resource of bob's gets a roster push;
 *   bob leaves and alice sees him go.
 */
import t, { type Test } from 'tap';
import { Strophe, $iq, $msg, $pres } from 'strophe.js';
import * as XMPP from 'stanza';
import { startServer, type TestServer } from '../helpers/server.js';
import { login as xmppjsLogin, xml, type XmlEl } from '../helpers/xmppjs.js';

Strophe.setLogLevel(Strophe.LogLevel.ERROR);
const NS_ROSTER = 'jabber:iq:roster';
const WAIT_MS = 5000;

type Event =
  | { kind: 'presence'; from: string; type: string }
  | { kind: 'message'; from: string; body: string }
  | { kind: 'push'; jid: string; subscription: string; name: string | undefined };
interface Item { jid: string; subscription: string; ask?: string | undefined; name?: string | undefined }

/** What a client received, searchable with bounded waits. */
class Events {
  readonly list: Event[] = [];
  push(e: Event): void { this.list.push(e); }
  mark(): number { return this.list.length; }
  async until<K extends Event['kind']>(kind: K, pred: (e: Extract<Event, { kind: K }>) => boolean, what: string, since = 0): Promise<Extract<Event, { kind: K }>> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const hit = this.list.slice(since).find((e): e is Extract<Event, { kind: K }> => e.kind === kind && pred(e as Extract<Event, { kind: K }>));
      if (hit) return hit;
      if (Date.now() > deadline) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}; got ${JSON.stringify(this.list.slice(since))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** The little each library has to do for the scenario. */
interface ImClient {
  readonly jid: string;
  readonly events: Events;
  rosterGet(): Promise<Item[]>;
  rosterSet(jid: string, name: string): Promise<void>;
  presence(attrs?: { to?: string; type?: string }): void;
  chat(to: string, body: string): void;
  stop(): Promise<void>;
}
type Connect = (t: Test, user: string, resource: string) => Promise<ImClient>;

function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`)), WAIT_MS); });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

// ------------------------------------------------------------------- xmpp.js

interface XmppIqCallee { set(ns: string, name: string, handler: (ctx: { stanza: XmlEl; element: XmlEl }) => unknown): void }

const connectXmppjs = (server: TestServer): Connect => async (t, user, resource) => {
  const s = await xmppjsLogin(t, server, { username: user, password: 'pw', resource });
  const events = new Events();
  s.xmpp.on('stanza', (el) => {
    if (el.is('presence')) events.push({ kind: 'presence', from: el.attrs.from!, type: el.attrs.type ?? 'available' });
    else if (el.is('message') && el.getChildText('body') !== null) events.push({ kind: 'message', from: el.attrs.from!, body: el.getChildText('body')! });
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
    presence(attrs = {}) { void s.xmpp.send(xml('presence', Object.fromEntries(Object.entries(attrs).filter(([, v]) => v !== undefined)) as Record<string, string>)); },
    chat(to, body) { void s.xmpp.send(xml('message', { to, type: 'chat' }, xml('body', {}, body))); },
    async stop() { s.xmpp.reconnect.stop(); await within(s.xmpp.stop(), 'xmpp.js stop()'); },
  };
};

// ---------------------------------------------------------------- strophe.js

interface DomEl {
  getAttribute(name: string): string | null;
  getElementsByTagName(name: string): ArrayLike<DomEl>;
  textContent: string | null;
}

const connectStrophe = (server: TestServer): Connect => async (t, user, resource) => {
  const conn = new Strophe.Connection(server.wsUrl, { protocol: 'ws' });
  const events = new Events();
  const connected = new Promise<void>((resolve, reject) => {
    conn.connect(`${user}@localhost/${resource}`, 'pw', (status: number) => {
      if (status === Strophe.Status.CONNECTED) resolve();
      else if (status === Strophe.Status.AUTHFAIL || status === Strophe.Status.CONNFAIL) reject(new Error(`strophe.js login failed with status ${status}`));
    });
  });
  t.teardown(() => { if (conn.connected) conn.disconnect(); });
  await within(connected, `strophe.js login of ${user}`);
  conn.addHandler((p: DomEl) => {
    events.push({ kind: 'presence', from: p.getAttribute('from')!, type: p.getAttribute('type') ?? 'available' });
    return true;
  }, null, 'presence');
  conn.addHandler((m: DomEl) => {
    const body = m.getElementsByTagName('body')[0]?.textContent;
    if (body != null) events.push({ kind: 'message', from: m.getAttribute('from')!, body });
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
    presence(attrs = {}) { conn.send($pres(Object.fromEntries(Object.entries(attrs).filter(([, v]) => v !== undefined)) as Record<string, string>)); },
    chat(to, body) { conn.send($msg({ to, type: 'chat' }).c('body').t(body)); },
    async stop() {
      const done = new Promise<void>((resolve) => conn.addHandler(() => { resolve(); return false; }, null, 'close'));
      conn.disconnect();
      await within(Promise.race([done, new Promise<void>((r) => setTimeout(r, 500))]), 'strophe.js disconnect');
    },
  };
};

// ------------------------------------------------------------------ StanzaJS

const connectStanza = (server: TestServer): Connect => async (t, user, resource) => {
  const client = XMPP.createClient({ jid: `${user}@localhost`, password: 'pw', resource, transports: { websocket: server.wsUrl, bosh: false } });
  const events = new Events();
  client.on('presence', (p) => events.push({ kind: 'presence', from: p.from, type: p.type ?? 'available' }));
  client.on('message', (m) => { if (m.body !== undefined) events.push({ kind: 'message', from: m.from, body: m.body }); });
  client.on('roster:update', (iq) => {
    for (const i of iq.roster.items ?? []) events.push({ kind: 'push', jid: i.jid, subscription: i.subscription ?? '', name: i.name });
  });
  t.teardown(() => { if (client.sessionStarted) void client.disconnect(); });
  const started = new Promise<void>((resolve, reject) => {
    client.once('session:started', () => resolve());
    client.once('auth:failed', () => reject(new Error('StanzaJS authentication failed')));
  });
  client.connect();
  await within(started, `the StanzaJS session of ${user}`);
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
      const ended = new Promise<void>((resolve) => client.once('disconnected', () => resolve()));
      void client.disconnect();
      await within(ended, 'StanzaJS disconnect');
    },
  };
};

// ------------------------------------------------------------------ scenario

let server: TestServer;
t.before(async () => {
  server = await startServer({ ALLOW_INSECURE_PLAIN: 'true' });
  for (const p of ['x', 's', 'z']) for (const u of ['alice', 'bob']) await server.addUser(`${p}${u}`, 'pw');
});
t.teardown(() => server.close());

/** Waits until the server no longer holds the session (so "offline" is true on the server too). */
async function serverDrops(fullJid: string): Promise<void> {
  const [bare, resource] = fullJid.split('/') as [string, string];
  const [local, domain] = bare.split('@') as [string, string];
  const deadline = Date.now() + WAIT_MS;
  while (server.app.core.ctx.sessions.get(domain, local, resource)) {
    if (Date.now() > deadline) throw new Error(`the server still holds ${fullJid}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function scenario(t: Test, connect: Connect, p: string): Promise<void> {
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
  t.same((await a.rosterGet()).map((i) => [i.jid, i.subscription]), [[bob, 'both']], 'alice: both');
  t.same((await b.rosterGet()).map((i) => [i.jid, i.subscription]), [[alice, 'both']], 'bob: both');

  a.chat(bob, 'hello bob');
  t.equal((await b.events.until('message', (e) => e.body === 'hello bob', 'alice\'s message at bob')).from, a.jid);
  b.chat(a.jid, 'hello alice');
  t.equal((await a.events.until('message', (e) => e.body === 'hello alice', 'bob\'s message at alice')).from, b.jid);

  const b2 = await connect(t, `${p}bob`, 'phone');
  await b2.rosterGet();
  await b.rosterSet(alice, 'Alice');
  const push = await b2.events.until('push', (e) => e.jid === alice, 'the roster push at bob\'s second resource');
  t.same([push.name, push.subscription], ['Alice', 'both'], 'the second resource sees the new name and the subscription');

  const seen = a.events.mark();
  await b.stop();
  await a.events.until('presence', (e) => e.type === 'unavailable' && e.from === b.jid, 'bob going offline, at alice', seen);
  await b2.stop();
  await a.stop();
}

t.test('xmpp.js: two users subscribe while one is offline, see each other, chat, and a second resource gets a roster push', async (t) => {
  await scenario(t, connectXmppjs(server), 'x');
});

t.test('strophe.js: two users subscribe while one is offline, see each other, chat, and a second resource gets a roster push', async (t) => {
  await scenario(t, connectStrophe(server), 's');
});

t.test('StanzaJS: two users subscribe while one is offline, see each other, chat, and a second resource gets a roster push', async (t) => {
  await scenario(t, connectStanza(server), 'z');
});

/**
 * Interop: the gateway driven by a real third-party client library,
 * @xmpp/client (xmpp.js) 0.14, over RFC 7395 WebSocket.
 *
 * xmpp.js ships no TypeScript declarations, so the few parts of its API used
 * here are described by the local interfaces below and the module is loaded
 * with a dynamic import whose specifier tsc does not resolve.
 */
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { startServer, type TestServer } from '../helpers/server.js';

// xmpp.js uses the WHATWG global WebSocket, which Node 20 only has behind a
// flag; `ws` implements the same API (addEventListener, MessageEvent.data).
if (typeof globalThis.WebSocket === 'undefined') {
  (globalThis as { WebSocket?: unknown }).WebSocket = WebSocket;
}

interface XmlEl {
  name: string;
  attrs: Record<string, string | undefined>;
  is(name: string, xmlns?: string): boolean;
  getChild(name: string, xmlns?: string): XmlEl | undefined;
  getChildren(name: string, xmlns?: string): XmlEl[];
  getChildText(name: string, xmlns?: string): string | null;
  text(): string;
  toString(): string;
}
interface XmppJid { toString(): string; local: string; domain: string; resource: string }
type Authenticate = (credentials: { username: string; password: string }, mechanism: string) => Promise<void>;
interface XmppClientOptions {
  service: string;
  domain: string;
  resource?: string;
  username?: string;
  password?: string;
  /** @xmpp/sasl: called with the mechanisms both sides support; picks one. */
  credentials?: (authenticate: Authenticate, mechanisms: string[]) => Promise<void>;
}
interface XmppClient {
  status: string;
  jid: XmppJid | null;
  start(): Promise<XmppJid>;
  stop(): Promise<XmlEl | undefined>;
  send(el: XmlEl): Promise<void>;
  on(event: 'element' | 'stanza' | 'nonza' | 'send', listener: (el: XmlEl) => void): this;
  on(event: 'error', listener: (err: Error & { condition?: string }) => void): this;
  iqCaller: { request(el: XmlEl, timeout?: number): Promise<XmlEl> };
  reconnect: { stop(): void };
  saslFactory: { _mechs: Array<{ name: string }> };
}
interface XmppClientModule {
  client(options: XmppClientOptions): XmppClient;
  xml(name: string, attrs?: Record<string, string>, ...children: Array<XmlEl | string>): XmlEl;
}
const XMPP_CLIENT = '@xmpp/client';
const { client, xml } = (await import(XMPP_CLIENT)) as XmppClientModule;

const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const NS_STREAM = 'http://etherx.jabber.org/streams';
const NS_FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';
const WAIT_MS = 5000;

/** Rejects with a clear message if `p` has not settled within `ms`. */
async function within<T>(p: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Every <message/> a client receives, read in order with a bounded wait. */
class Inbox {
  readonly items: XmlEl[] = [];
  #read = 0;
  #wake: (() => void) | undefined;

  push(el: XmlEl): void {
    this.items.push(el);
    this.#wake?.();
  }

  async next(what: string): Promise<XmlEl> {
    const deadline = Date.now() + WAIT_MS;
    while (this.#read >= this.items.length) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${WAIT_MS} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => { clearTimeout(timer); resolve(); };
      });
      this.#wake = undefined;
    }
    return this.items[this.#read++]!;
  }
}

interface XmppJsClient {
  xmpp: XmppClient;
  /** Every element the library put on the wire, and every one it read. */
  sent: XmlEl[];
  received: XmlEl[];
  errors: Error[];
  inbox: Inbox;
}

function createClient(tt: Test, server: TestServer, opts: Omit<XmppClientOptions, 'service' | 'domain'>): XmppJsClient {
  const xmpp = client({ service: server.wsUrl, domain: 'localhost', ...opts });
  const s: XmppJsClient = { xmpp, sent: [], received: [], errors: [], inbox: new Inbox() };
  xmpp.on('send', (el) => s.sent.push(el));
  xmpp.on('element', (el) => s.received.push(el));
  xmpp.on('stanza', (el) => { if (el.is('message')) s.inbox.push(el); });
  // Without a listener an 'error' event would throw; the tests assert on start()'s rejection instead.
  xmpp.on('error', (err) => s.errors.push(err));
  tt.teardown(async () => {
    xmpp.reconnect.stop();
    if (xmpp.status !== 'offline') await within(xmpp.stop(), 'xmpp.js stop() in teardown').catch(() => undefined);
  });
  return s;
}

async function login(tt: Test, server: TestServer, opts: Omit<XmppClientOptions, 'service' | 'domain'>): Promise<XmppJsClient & { jid: string }> {
  const s = createClient(tt, server, opts);
  const who = opts.username ?? 'a custom credentials callback';
  try {
    const jid = await within(s.xmpp.start(), `xmpp.js login of ${who}`);
    return { ...s, jid: jid.toString() };
  } catch (err) {
    const frames = s.received.map(String).join(' ') || 'none';
    throw new Error(`xmpp.js login of ${who} failed in status '${s.xmpp.status}': ${String(err)}; elements received: ${frames}`, { cause: err });
  }
}

function authMechanism(s: XmppJsClient): string | undefined {
  return s.sent.find((el) => el.is('auth', NS_SASL))?.attrs.mechanism;
}

function offeredMechanisms(s: XmppJsClient): string[] {
  const features = s.received.find((el) => el.is('features', NS_STREAM) && el.getChild('mechanisms', NS_SASL));
  return features?.getChild('mechanisms', NS_SASL)?.getChildren('mechanism').map((m) => m.text()) ?? [];
}

async function ping(tt: Test, s: XmppJsClient): Promise<XmlEl> {
  const iq = xml('iq', { type: 'get', to: 'localhost', id: `ping-${Math.random().toString(36).slice(2)}` }, xml('ping', { xmlns: 'urn:xmpp:ping' }));
  const reply = await within(s.xmpp.iqCaller.request(iq, WAIT_MS), 'the ping reply');
  tt.equal(reply.attrs.id, iq.attrs.id, 'the reply carries the ping id');
  return reply;
}

/** Sends initial presence; the ping round-trip after it proves the server has processed it. */
async function becomeAvailable(tt: Test, s: XmppJsClient): Promise<void> {
  await s.xmpp.send(xml('presence'));
  await ping(tt, s);
}

/** The session the server holds for this full JID, if any. */
function serverSession(server: TestServer, fullJid: string): unknown {
  const m = /^([^@]+)@([^/]+)\/(.+)$/.exec(fullJid);
  if (!m) throw new Error(`not a full JID: ${fullJid}`);
  return server.app.core.ctx.sessions.get(m[2]!, m[1]!, m[3]!);
}

async function serverForgets(server: TestServer, fullJid: string): Promise<boolean> {
  const deadline = Date.now() + WAIT_MS;
  while (serverSession(server, fullJid) !== undefined) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

let server: TestServer;
t.before(async () => {
  server = await startServer();
  await server.addUser('alice', 'alice-pw');
  await server.addUser('bob', 'bob-pw');
});
t.teardown(() => server.close());

t.test('xmpp.js logs in with SCRAM-SHA-1 when that mechanism is forced, binds the requested resource and gets a ping result', async (t) => {
  let supported: string[] = [];
  const s = await login(t, server, {
    resource: 'xmppjs-sha1',
    credentials: async (authenticate, mechanisms) => {
      supported = mechanisms;
      await authenticate({ username: 'alice', password: 'alice-pw' }, 'SCRAM-SHA-1');
    },
  });
  t.ok(supported.includes('SCRAM-SHA-1'), `xmpp.js saw SCRAM-SHA-1 among the usable mechanisms (${supported.join(', ')})`);
  t.equal(authMechanism(s), 'SCRAM-SHA-1', '<auth/> on the wire names SCRAM-SHA-1');
  t.ok(s.received.some((el) => el.is('success', NS_SASL)), 'the server answered with <success/>');
  t.equal(s.jid, 'alice@localhost/xmppjs-sha1', 'bound JID is alice@localhost/<requested resource>');
  t.equal(s.xmpp.status, 'online');

  const pong = await ping(t, s);
  t.equal(pong.attrs.type, 'result', 'the ping is answered with type=result');
  t.equal(pong.attrs.from, 'localhost', 'the answer comes from the server');
  t.same(s.errors, [], 'no errors were emitted');
});

t.test('xmpp.js logs in with its default mechanism choice and gets a server-assigned resource', async (t) => {
  const s = await login(t, server, { username: 'alice', password: 'alice-pw' });
  t.same(offeredMechanisms(s), ['SCRAM-SHA-256', 'SCRAM-SHA-1'], 'the server offers both SCRAM mechanisms and no PLAIN without TLS');
  // xmpp.js 0.14 implements SCRAM-SHA-1, PLAIN and ANONYMOUS but not
  // SCRAM-SHA-256 (see @xmpp/client/index.js), so SCRAM-SHA-1 is the best it
  // can pick; should a later version register SCRAM-SHA-256, it must pick that.
  const clientMechanisms = s.xmpp.saslFactory._mechs.map((m) => m.name);
  t.ok(clientMechanisms.includes('SCRAM-SHA-1'), `xmpp.js registers SCRAM-SHA-1 (${clientMechanisms.join(', ')})`);
  const expected = clientMechanisms.includes('SCRAM-SHA-256') ? 'SCRAM-SHA-256' : 'SCRAM-SHA-1';
  t.equal(authMechanism(s), expected, `<auth/> on the wire names ${expected}, the strongest mechanism both sides support`);
  t.match(s.jid, /^alice@localhost\/[^/]+$/, 'bound JID is alice@localhost/<generated resource>');
  const pong = await ping(t, s);
  t.equal(pong.attrs.type, 'result');
});

t.test('two xmpp.js clients exchange three chat messages each way, in order, stamped with the sender full JID', async (t) => {
  const alice = await login(t, server, { username: 'alice', password: 'alice-pw', resource: 'chat-a' });
  const bob = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'chat-b' });
  t.equal(alice.jid, 'alice@localhost/chat-a');
  t.equal(bob.jid, 'bob@localhost/chat-b');
  // RFC 6121: a bare-JID message goes to available resources only.
  await becomeAvailable(t, alice);
  await becomeAvailable(t, bob);

  const toBob = ['one', 'two & <three>', 'three ✓'];
  for (const [i, body] of toBob.entries()) {
    // The client sets no 'from': the server must stamp it.
    await alice.xmpp.send(xml('message', { to: 'bob@localhost', type: 'chat', id: `a${i}` }, xml('body', {}, body)));
  }
  for (const [i, body] of toBob.entries()) {
    const m = await bob.inbox.next(`bob's message #${i + 1} from alice`);
    t.equal(m.attrs.type, 'chat', `message #${i + 1} is a chat message`);
    t.equal(m.getChildText('body'), body, `bob gets alice's message #${i + 1} in order`);
    t.equal(m.attrs.from, alice.jid, 'from is alice\'s full JID');
    t.equal(m.attrs.id, `a${i}`, 'the id is kept');
  }

  // Reply to the address the message came from, as a chat client does.
  const replyTo = bob.inbox.items[0]!.attrs.from!;
  const toAlice = ['uno', 'dos', 'tres'];
  for (const [i, body] of toAlice.entries()) {
    await bob.xmpp.send(xml('message', { to: replyTo, type: 'chat', id: `b${i}` }, xml('body', {}, body)));
  }
  for (const [i, body] of toAlice.entries()) {
    const m = await alice.inbox.next(`alice's message #${i + 1} from bob`);
    t.equal(m.getChildText('body'), body, `alice gets bob's message #${i + 1} in order`);
    t.equal(m.attrs.from, bob.jid, 'from is bob\'s full JID');
    t.equal(m.attrs.to, alice.jid, 'to is alice\'s full JID');
  }
  t.equal(alice.inbox.items.length, 3, 'alice got exactly three messages');
  t.equal(bob.inbox.items.length, 3, 'bob got exactly three messages');
});

t.test('xmpp.js fails to log in with a wrong password with a not-authorized SASLError, without hanging', async (t) => {
  const s = createClient(t, server, { username: 'alice', password: 'wrong-pw', resource: 'bad' });
  const err = await within(s.xmpp.start().then(() => undefined, (e: unknown) => e), 'the rejection of start() with a wrong password');
  t.ok(err instanceof Error, 'start() rejects');
  t.equal((err as Error).name, 'SASLError', 'with the library\'s SASL error');
  t.equal((err as Error & { condition?: string }).condition, 'not-authorized', 'whose condition is not-authorized');
  t.equal(authMechanism(s), 'SCRAM-SHA-1', 'the attempt was a SCRAM exchange');
  t.notOk(s.received.some((el) => el.is('success', NS_SASL)), 'the server never sent <success/>');
  t.equal(serverSession(server, 'alice@localhost/bad'), undefined, 'no resource was bound');
  s.xmpp.reconnect.stop();
  await within(s.xmpp.stop(), 'stop() after the failed login');
  t.equal(s.xmpp.status, 'offline');
});

t.test('xmpp.js disconnects cleanly: its <close/> is answered with <close/> and the server drops the session', async (t) => {
  const s = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'leaving' });
  t.ok(serverSession(server, s.jid), 'the server holds the bound session');
  s.xmpp.reconnect.stop();
  const closeEl = await within(s.xmpp.stop(), 'xmpp.js stop()');
  t.ok(closeEl?.is('close', NS_FRAMING), `the server answered with <close xmlns='${NS_FRAMING}'/>`);
  t.equal(s.xmpp.status, 'offline', 'the client is offline');
  t.ok(await serverForgets(server, s.jid), 'the server no longer holds bob@localhost/leaving');
  t.same(s.errors, [], 'no errors were emitted');
});

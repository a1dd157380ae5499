/**
 * Interop: the gateway driven by a real third-party client library,
 * strophe.js 5, over RFC 7395 WebSocket; and strophe.js talking to xmpp.js
 * through the gateway.
 *
 * strophe.js 5's Node entry (the "node" export condition) installs the
 * browser globals it needs itself: `ws` as WebSocket and @xmldom/xmldom's
 * DOMParser, XMLSerializer and document. Nothing else has to be set up.
 */
import t, { type Test } from 'tap';
import { Strophe, $iq, $msg, $pres } from 'strophe.js';
import { withUsers } from '../helpers/server.js';
import { eventually, Mailbox, Wake, waitUntil, within } from '../helpers/eventually.js';
import { serverSession } from '../helpers/xmppjs.js';

Strophe.setLogLevel(Strophe.LogLevel.ERROR);

const { Status } = Strophe;
const STATUS_NAME: Record<number, string> = Object.fromEntries(Object.entries(Status).map(([k, v]) => [v, k]));
const WAIT_MS = 5000;

/** The DOM surface (xmldom) of the elements strophe.js hands out; the project's tsconfig has no DOM lib. */
interface DomEl {
  nodeName: string;
  namespaceURI: string | null;
  textContent: string | null;
  getAttribute(name: string): string | null;
  getElementsByTagName(name: string): ArrayLike<DomEl>;
}

function bodyOf(el: DomEl): string | null {
  return el.getElementsByTagName('body')[0]?.textContent ?? null;
}

// ---------------------------------------------------------------- strophe.js

type Mechanism = typeof Strophe.SASLSHA1;
interface StatusEvent { status: number; name: string; condition: string | null; elem: DomEl | undefined }

/** A strophe.js connection with its status changes, raw frames and incoming messages recorded. */
class StropheClient {
  readonly conn: InstanceType<typeof Strophe.Connection>;
  readonly statuses: StatusEvent[] = [];
  readonly rawIn: string[] = [];
  readonly rawOut: string[] = [];
  readonly inbox = new Mailbox<DomEl>();
  readonly #statusChanged = new Wake();

  constructor(url: string, mechanisms?: Mechanism[]) {
    this.conn = new Strophe.Connection(url, { protocol: 'ws' });
    if (mechanisms) this.conn.registerSASLMechanisms(mechanisms);
    this.conn.rawInput = (data: string) => { this.rawIn.push(data); };
    this.conn.rawOutput = (data: string) => { this.rawOut.push(data); };
  }

  /** Resolves with the first terminal status of the login: CONNECTED, AUTHFAIL, CONNFAIL, ERROR or DISCONNECTED. */
  async connect(jid: string, password: string): Promise<StatusEvent> {
    const terminal = new Set<number>([Status.CONNECTED, Status.AUTHFAIL, Status.CONNFAIL, Status.ERROR, Status.DISCONNECTED]);
    this.conn.connect(jid, password, (status: number, condition: string | null, elem?: unknown) => {
      if (status === Status.CONNECTED) {
        this.conn.addHandler((stanza: unknown) => { this.inbox.push(stanza as DomEl); return true; }, null, 'message');
      }
      this.statuses.push({ status, name: STATUS_NAME[status] ?? String(status), condition, elem: elem as DomEl | undefined });
      this.#statusChanged.notify();
    });
    return this.waitStatus((s) => terminal.has(s.status), `strophe.js login of ${jid} to finish`);
  }

  async waitStatus(pred: (s: StatusEvent) => boolean, what: string): Promise<StatusEvent> {
    return eventually(() => this.statuses.find(pred), {
      timeout: WAIT_MS, wake: this.#statusChanged,
      message: () => `${what}; statuses so far: ${this.statuses.map((s) => s.name).join(', ') || 'none'}`,
    });
  }

  /** The mechanism named by the <auth/> this client put on the wire. */
  get authMechanism(): string | undefined {
    for (const frame of this.rawOut) {
      const m = /^<auth\b[^>]*\bmechanism=["']([^"']+)["']/.exec(frame);
      if (m) return m[1];
    }
    return undefined;
  }

  async ping(): Promise<DomEl> {
    const id = this.conn.getUniqueId('ping');
    const reply = new Promise<DomEl>((resolve, reject) => {
      this.conn.sendIQ(
        $iq({ type: 'get', to: 'localhost', id }).c('ping', { xmlns: 'urn:xmpp:ping' }),
        (stanza: unknown) => resolve(stanza as DomEl),
        (stanza: unknown) => reject(new Error(stanza ? `ping answered with an error: ${Strophe.serialize(stanza as never)}` : 'ping timed out')),
        WAIT_MS,
      );
    });
    return within(reply, 'the ping reply');
  }

  /** Initial presence; the ping after it proves the server has processed it (one stream is handled in order). */
  async becomeAvailable(): Promise<void> {
    this.conn.send($pres());
    await this.ping();
  }

  sendChat(to: string, body: string, id: string): void {
    this.conn.send($msg({ to, type: 'chat', id }).c('body').t(body));
  }

  async disconnect(): Promise<StatusEvent> {
    this.conn.disconnect();
    return this.waitStatus((s) => s.status === Status.DISCONNECTED, 'strophe.js to report DISCONNECTED');
  }

  get connected(): boolean {
    return this.statuses.some((s) => s.status === Status.CONNECTING) && !this.statuses.some((s) => s.status === Status.DISCONNECTED);
  }
}

function stropheClient(tt: Test, mechanisms?: Mechanism[]): StropheClient {
  const c = new StropheClient(server.wsUrl, mechanisms);
  tt.teardown(async () => {
    if (c.connected) await c.disconnect().catch(() => undefined);
  });
  return c;
}

async function stropheLogin(tt: Test, jid: string, password: string, mechanisms?: Mechanism[]): Promise<StropheClient> {
  const c = stropheClient(tt, mechanisms);
  const outcome = await c.connect(jid, password);
  if (outcome.status !== Status.CONNECTED) {
    throw new Error(`strophe.js login of ${jid} ended in ${outcome.name} (${outcome.condition ?? 'no condition'}); frames in: ${c.rawIn.join(' ')}`);
  }
  return c;
}

// ------------------------------------------------------------------- xmpp.js
// (for the cross-library test; xmpp.js ships no type declarations)

interface XmlEl {
  name: string;
  attrs: Record<string, string | undefined>;
  is(name: string, xmlns?: string): boolean;
  getChildText(name: string, xmlns?: string): string | null;
}
interface XmppClient {
  status: string;
  start(): Promise<{ toString(): string }>;
  stop(): Promise<unknown>;
  send(el: XmlEl): Promise<void>;
  on(event: 'stanza', listener: (el: XmlEl) => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  iqCaller: { request(el: XmlEl, timeout?: number): Promise<XmlEl> };
  reconnect: { stop(): void };
}
interface XmppClientModule {
  client(options: { service: string; domain: string; resource?: string; username: string; password: string }): XmppClient;
  xml(name: string, attrs?: Record<string, string>, ...children: Array<XmlEl | string>): XmlEl;
}
const XMPP_CLIENT = '@xmpp/client';
const { client, xml } = (await import(XMPP_CLIENT)) as XmppClientModule;

async function xmppjsLogin(tt: Test, username: string, password: string, resource: string): Promise<{ xmpp: XmppClient; jid: string; inbox: Mailbox<XmlEl> }> {
  const xmpp = client({ service: server.wsUrl, domain: 'localhost', resource, username, password });
  const inbox = new Mailbox<XmlEl>();
  xmpp.on('stanza', (el) => { if (el.is('message')) inbox.push(el); });
  xmpp.on('error', () => undefined); // start() rejects with it
  tt.teardown(async () => {
    xmpp.reconnect.stop();
    if (xmpp.status !== 'offline') await within(xmpp.stop(), 'xmpp.js stop() in teardown').catch(() => undefined);
  });
  const jid = await within(xmpp.start(), `xmpp.js login of ${username}`);
  return { xmpp, jid: jid.toString(), inbox };
}

// --------------------------------------------------------------------- tests

const server = await withUsers(t, ['alice', 'bob']);

t.test('strophe.js logs in with SCRAM-SHA-1 when it is the only registered mechanism, binds the requested resource and gets a ping result', async (t) => {
  const c = await stropheLogin(t, 'alice@localhost/strophe-sha1', 'alice-pw', [Strophe.SASLSHA1]);
  t.equal(c.authMechanism, 'SCRAM-SHA-1', '<auth/> on the wire names SCRAM-SHA-1');
  t.equal(c.conn._sasl_mechanism?.mechname, 'SCRAM-SHA-1', 'strophe.js used its SCRAM-SHA-1 mechanism (and verified the server signature)');
  t.equal(c.conn.jid, 'alice@localhost/strophe-sha1', 'bound JID is alice@localhost/<requested resource>');
  t.ok(c.conn.authenticated, 'strophe.js considers the session authenticated');

  const pong = await c.ping();
  t.equal(pong.getAttribute('type'), 'result', 'the ping is answered with type=result');
  t.equal(pong.getAttribute('from'), 'localhost', 'the answer comes from the server');
});

t.test('strophe.js logs in with its default mechanisms and picks SCRAM-SHA-256, with a server-assigned resource', async (t) => {
  const c = await stropheLogin(t, 'alice@localhost', 'alice-pw');
  t.equal(c.authMechanism, 'SCRAM-SHA-256', '<auth/> on the wire names SCRAM-SHA-256');
  t.equal(c.conn._sasl_mechanism?.mechname, 'SCRAM-SHA-256');
  t.match(c.conn.jid, /^alice@localhost\/[^/]+$/, 'bound JID is alice@localhost/<generated resource>');
  const pong = await c.ping();
  t.equal(pong.getAttribute('type'), 'result');
});

t.test('two strophe.js clients exchange three chat messages each way, in order, stamped with the sender full JID', async (t) => {
  const alice = await stropheLogin(t, 'alice@localhost/chat-a', 'alice-pw');
  const bob = await stropheLogin(t, 'bob@localhost/chat-b', 'bob-pw');
  t.equal(alice.conn.jid, 'alice@localhost/chat-a');
  t.equal(bob.conn.jid, 'bob@localhost/chat-b');
  // RFC 6121: a bare-JID message goes to available resources only.
  await alice.becomeAvailable();
  await bob.becomeAvailable();

  const toBob = ['one', 'two & <three>', 'three ✓'];
  toBob.forEach((body, i) => alice.sendChat('bob@localhost', body, `a${i}`));
  for (const [i, body] of toBob.entries()) {
    const m = await bob.inbox.next(`bob's message #${i + 1} from alice`);
    t.equal(m.getAttribute('type'), 'chat', `message #${i + 1} is a chat message`);
    t.equal(bodyOf(m), body, `bob gets alice's message #${i + 1} in order`);
    t.equal(m.getAttribute('from'), 'alice@localhost/chat-a', 'from is alice\'s full JID');
    t.equal(m.getAttribute('id'), `a${i}`, 'the id is kept');
  }

  const replyTo = bob.inbox.items[0]!.getAttribute('from')!;
  const toAlice = ['uno', 'dos', 'tres'];
  toAlice.forEach((body, i) => bob.sendChat(replyTo, body, `b${i}`));
  for (const [i, body] of toAlice.entries()) {
    const m = await alice.inbox.next(`alice's message #${i + 1} from bob`);
    t.equal(bodyOf(m), body, `alice gets bob's message #${i + 1} in order`);
    t.equal(m.getAttribute('from'), 'bob@localhost/chat-b', 'from is bob\'s full JID');
    t.equal(m.getAttribute('to'), 'alice@localhost/chat-a', 'to is alice\'s full JID');
  }
  t.equal(alice.inbox.items.length, 3, 'alice got exactly three messages');
  t.equal(bob.inbox.items.length, 3, 'bob got exactly three messages');
});

t.test('strophe.js fails to log in with a wrong password with AUTHFAIL and a not-authorized failure, without hanging', async (t) => {
  const c = stropheClient(t);
  const outcome = await c.connect('alice@localhost/bad', 'wrong-pw');
  t.equal(outcome.name, 'AUTHFAIL', 'the login ends in Strophe.Status.AUTHFAIL');
  t.equal(outcome.elem?.nodeName, 'failure', 'triggered by the server\'s <failure/>');
  t.equal(outcome.elem?.namespaceURI, 'urn:ietf:params:xml:ns:xmpp-sasl');
  t.equal(outcome.elem?.getElementsByTagName('not-authorized').length, 1, 'whose condition is not-authorized');
  t.equal(c.authMechanism, 'SCRAM-SHA-256', 'the attempt was a SCRAM exchange');
  t.notOk(c.statuses.some((s) => s.status === Status.CONNECTED), 'strophe.js never reported CONNECTED');
  t.equal(serverSession(server, 'alice@localhost/bad'), undefined, 'no resource was bound');
  const end = await c.disconnect();
  t.equal(end.name, 'DISCONNECTED');
});

t.test('strophe.js disconnects cleanly and the server drops the session', async (t) => {
  const c = await stropheLogin(t, 'bob@localhost/leaving', 'bob-pw');
  t.ok(serverSession(server, 'bob@localhost/leaving'), 'the server holds the bound session');
  const end = await c.disconnect();
  t.equal(end.name, 'DISCONNECTED', 'strophe.js reports DISCONNECTED');
  t.ok(c.rawOut.some((f) => /^<close\b[^>]*xmlns=["']urn:ietf:params:xml:ns:xmpp-framing["']/.test(f)), 'strophe.js sent the RFC 7395 <close/>');
  t.ok(await waitUntil(() => serverSession(server, 'bob@localhost/leaving') === undefined), 'the server no longer holds bob@localhost/leaving');
});

t.test('a strophe.js client and an xmpp.js client chat with each other through the gateway', async (t) => {
  const alice = await stropheLogin(t, 'alice@localhost/strophe', 'alice-pw');
  const bob = await xmppjsLogin(t, 'bob', 'bob-pw', 'xmppjs');
  t.equal(alice.conn.jid, 'alice@localhost/strophe');
  t.equal(bob.jid, 'bob@localhost/xmppjs');
  await alice.becomeAvailable();
  await bob.xmpp.send(xml('presence'));
  // The ping round-trip proves bob's presence was processed before alice writes to his bare JID.
  const pong = await within(bob.xmpp.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })), WAIT_MS), 'bob\'s ping reply');
  t.equal(pong.attrs.type, 'result');

  const toBob = ['hello from strophe', 'second', 'third'];
  toBob.forEach((body, i) => alice.sendChat('bob@localhost', body, `s${i}`));
  for (const [i, body] of toBob.entries()) {
    const m = await bob.inbox.next(`xmpp.js bob's message #${i + 1}`);
    t.equal(m.getChildText('body'), body, `xmpp.js gets strophe.js message #${i + 1} in order`);
    t.equal(m.attrs.from, 'alice@localhost/strophe', 'from is the strophe.js full JID');
    t.equal(m.attrs.type, 'chat');
  }

  const toAlice = ['hello from xmpp.js', 'second', 'third'];
  for (const [i, body] of toAlice.entries()) {
    await bob.xmpp.send(xml('message', { to: 'alice@localhost', type: 'chat', id: `x${i}` }, xml('body', {}, body)));
  }
  for (const [i, body] of toAlice.entries()) {
    const m = await alice.inbox.next(`strophe.js alice's message #${i + 1}`);
    t.equal(bodyOf(m), body, `strophe.js gets xmpp.js message #${i + 1} in order`);
    t.equal(m.getAttribute('from'), 'bob@localhost/xmppjs', 'from is the xmpp.js full JID');
    t.equal(m.getAttribute('type'), 'chat');
  }
});

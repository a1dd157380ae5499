/**
 * The page-reload promise with strophe.js 5, whose XEP-0198 support is
 * native (since 4.1; opt in with `enableStreamManagement`). It persists its
 * SM state (smid, h, the bound JID, unacked stanzas) through a pluggable
 * storage backend, sessionStorage in a browser; here a Map of strings plays
 * sessionStorage, the only thing that survives from one page load to the next.
 *
 * strophe.js 5's Node entry installs `ws` and @xmldom/xmldom as the browser
 * globals it needs.
 */
import t, { type Test } from 'tap';
import { Strophe, $msg, $pres, type SMState, type SMStorageBackend } from 'strophe.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { NS_BIND, NS_SM, WAIT_MS, login, ping, serverHibernates, serverSession, sleep, waitFor, xml } from '../helpers/xmppjs.js';

Strophe.setLogLevel(Strophe.LogLevel.FATAL);
const { Status } = Strophe;
const SETTLE_MS = 500;

/** The DOM surface (xmldom) of the elements strophe.js hands out; the project's tsconfig has no DOM lib. */
interface DomEl { getAttribute(name: string): string | null }

/** sessionStorage, as far as strophe.js uses it: strings under keys, outliving any one page. */
class TabStorage implements SMStorageBackend {
  constructor(private readonly store: Map<string, string>) {}
  load(key: string): SMState | null {
    const s = this.store.get(key);
    return s === undefined ? null : (JSON.parse(s) as SMState);
  }
  save(key: string, state: SMState): void { this.store.set(key, JSON.stringify(state)); }
  clear(key: string): void { this.store.delete(key); }
}

/** One page load: a strophe.js connection with SM on, its frames and the stanzas its handlers saw. */
class Page {
  readonly conn: InstanceType<typeof Strophe.Connection>;
  readonly rawIn: string[] = [];
  readonly rawOut: string[] = [];
  readonly messages: DomEl[] = [];
  readonly presences: DomEl[] = [];
  readonly statuses: string[] = [];

  constructor(url: string, sessionStorage: Map<string, string>) {
    this.conn = new Strophe.Connection(url, {
      protocol: 'ws', enableStreamManagement: true, streamManagement: { storage: new TabStorage(sessionStorage) },
    });
    this.conn.rawInput = (data: string) => { this.rawIn.push(data); };
    this.conn.rawOutput = (data: string) => { this.rawOut.push(data); };
  }

  /** Logs in (or resumes); resolves on CONNECTED, rejects on any other terminal status. */
  async connect(jid: string, password: string): Promise<void> {
    const names: Record<number, string> = Object.fromEntries(Object.entries(Status).map(([k, v]) => [v, k]));
    const outcome = new Promise<void>((resolve, reject) => {
      this.conn.connect(jid, password, (status: number, condition: string | null) => {
        this.statuses.push(names[status] ?? String(status));
        if (status === Status.CONNECTED) {
          // As an application does: handlers are registered once connected.
          this.conn.addHandler((el: unknown) => { this.messages.push(el as DomEl); return true; }, null, 'message');
          this.conn.addHandler((el: unknown) => { this.presences.push(el as DomEl); return true; }, null, 'presence');
          resolve();
        } else if ([Status.AUTHFAIL, Status.CONNFAIL, Status.ERROR, Status.DISCONNECTED].includes(status)) {
          reject(new Error(`strophe.js ended in ${names[status]} (${condition ?? 'no condition'}); frames in: ${this.rawIn.join(' ')}`));
        }
      });
    });
    const timer = sleep(WAIT_MS).then(() => { throw new Error(`strophe.js login of ${jid} timed out; statuses: ${this.statuses.join(', ')}; frames in: ${this.rawIn.join(' ')}`); });
    await Promise.race([outcome, timer]);
  }

  sent(pattern: RegExp): string[] { return this.rawOut.filter((f) => pattern.test(f)); }

  /** The page goes away: the TCP connection dies, no <close/>, no WebSocket close handshake. */
  unload(): void {
    const ws = (this.conn._proto as unknown as { socket: { terminate(): void } | null }).socket;
    if (!ws) throw new Error('strophe.js has no live WebSocket');
    ws.terminate();
  }
}

function ids(els: DomEl[]): string[] {
  return els.map((m) => m.getAttribute('id') ?? '(no id)');
}

function page(tt: Test, server: TestServer, sessionStorage: Map<string, string>): Page {
  const p = new Page(server.wsUrl, sessionStorage);
  tt.teardown(() => { if (p.conn.connected) p.conn.disconnect(); });
  return p;
}

let server: TestServer;
t.before(async () => {
  server = await startServer();
  await server.addUser('alice', 'alice-pw');
  await server.addUser('bob', 'bob-pw');
});
t.teardown(() => server.close());

t.test('a reloaded strophe.js page resumes from its sessionStorage: no bind, the same server session, and exactly the 3 messages it missed', async (t) => {
  const me = 'alice@localhost/strophe-tab';
  const sessionStorage = new Map<string, string>();
  const page1 = page(t, server, sessionStorage);
  await page1.connect(me, 'alice-pw');
  await waitFor(() => page1.conn.isStreamManagementEnabled(), 'strophe.js to get <enabled/>');
  t.equal(page1.conn.sm?.state.resumeSupported, true, 'the server granted a resumable session');
  page1.conn.send($pres());
  await waitFor(() => page1.presences.some((p) => p.getAttribute('from') === me), 'the server to reflect page 1\'s presence');

  const bob = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'sender-s' });
  await bob.xmpp.send(xml('message', { to: me, type: 'chat', id: 'seen' }, xml('body', {}, 'read before the reload')));
  await waitFor(() => page1.messages.length === 1, 'the message before the reload');
  const h = page1.conn.sm!.state.hIn;
  await waitFor(() => page1.sent(new RegExp(`^<a [^>]*h="${h}"`)).length > 0, `page 1 to answer the server's <r/> with h=${h}`);
  t.pass(`page 1 acknowledged h=${h}, which includes the message`);
  const session = serverSession(server, me);
  t.ok(session, 'the server holds the session');

  page1.unload();
  await serverHibernates(server, me);
  const missed: string[] = [];
  for (let i = 1; i <= 3; i++) {
    missed.push(`missed-${i}`);
    await bob.xmpp.send(xml('message', { to: me, type: 'chat', id: `missed-${i}` }, xml('body', {}, `missed message ${i}`)));
  }
  await ping(bob);
  t.ok([...sessionStorage.keys()].some((k) => k.startsWith('strophe-sm:')), 'page 1 left its SM state in sessionStorage');

  // The reloaded page: a new connection object; only sessionStorage carries over.
  const page2 = page(t, server, sessionStorage);
  await page2.connect('alice@localhost', 'alice-pw');
  t.ok(page2.conn.hasResumed(), 'strophe.js reports the session as resumed');
  t.equal(page2.conn.jid, me, 'with the full JID page 1 had bound');
  t.equal(page2.sent(/^<resume /).length, 1, 'page 2 sent one <resume/>');
  t.ok(page2.rawIn.some((f) => f.startsWith('<resumed ') && f.includes(NS_SM)), 'the server answered <resumed/>');
  t.same(page2.sent(new RegExp(NS_BIND)), [], 'page 2 never sent a bind request');

  await waitFor(() => page2.messages.length >= 3, 'the 3 missed messages', WAIT_MS).catch((err: unknown) => {
    throw new Error(`${String(err)}; got ${ids(page2.messages).join(', ') || 'nothing'}; frames in: ${page2.rawIn.join(' ')}`, { cause: err });
  });
  await sleep(SETTLE_MS);
  t.same(ids(page2.messages), missed, 'page 2 got exactly the 3 messages it missed, in order, and not the one acknowledged before');
  t.equal(serverSession(server, me), session, 'the server session object is the one page 1 bound');

  page2.conn.send($msg({ to: bob.jid, type: 'chat', id: 'after-reload' }).c('body').t('reloaded'));
  const reply = await bob.inbox.next('page 2\'s message');
  t.equal(reply.attrs.from, me, 'bob sees page 2 as the same full JID');
});

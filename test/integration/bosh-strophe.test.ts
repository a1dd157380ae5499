/**
 * Interop: strophe.js 5 over BOSH (its default transport for http:// URLs)
 * against the gateway, talking to a WebSocket client through it, and
 * re-attaching to a live BOSH session after a "page reload" (Strophe's
 * attach(), which Converse's keepalive builds on).
 *
 * strophe.js's BOSH transport needs XMLHttpRequest, which Node lacks:
 * ../helpers/node-xhr.ts provides one over fetch.
 */
import t, { type Test } from 'tap';
import { Strophe, $msg, $pres } from 'strophe.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { installNodeXhr } from '../helpers/node-xhr.js';
import { Mailbox, waitUntil } from '../helpers/eventually.js';

/** The DOM surface (xmldom) of the elements strophe.js hands out; the project's tsconfig has no DOM lib. */
interface DomEl {
  getAttribute(name: string): string | null;
  getElementsByTagName(name: string): ArrayLike<{ textContent: string | null }>;
}
installNodeXhr();

Strophe.setLogLevel(Strophe.LogLevel.FATAL);
const { Status } = Strophe;
const WAIT_MS = 8000;

type Connection = InstanceType<typeof Strophe.Connection>;

/** Resolves with the first status in `wanted`, or rejects after WAIT_MS naming the statuses seen. */
function statusOf(what: string, wanted: number[], start: (cb: (status: number, condition: string | null) => void) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    const seen: string[] = [];
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; statuses: ${seen.join(', ')}`)), WAIT_MS);
    start((status, condition) => {
      seen.push(`${status}${condition ? `(${condition})` : ''}`);
      if (wanted.includes(status)) {
        clearTimeout(timer);
        resolve(status);
      }
    });
  });
}

/** Messages a Strophe connection receives, read with a bounded wait. */
function inbox(conn: Connection): () => Promise<DomEl> {
  const box = new Mailbox<DomEl>();
  conn.addHandler((stanza: unknown) => { box.push(stanza as DomEl); return true; }, null, 'message');
  return () => box.next('a message at strophe.js', WAIT_MS);
}

const bodyText = (el: DomEl) => el.getElementsByTagName('body')[0]?.textContent ?? null;

const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '10' });
const boshUrl = `${server.httpUrl}/http-bind`;

async function bob(tt: Test): Promise<{ ws: RawWsClient; jid: string }> {
  const ws = await RawWsClient.connect(server.wsUrl);
  tt.teardown(() => ws.close());
  return { ws, jid: await ws.login('bob', 'bob-pw', 'ws') };
}

async function stropheLogin(tt: Test, jid: string): Promise<Connection> {
  const conn = new Strophe.Connection(boshUrl);
  conn.registerSASLMechanisms([Strophe.SASLSHA1]);
  tt.teardown(() => { if (conn.connected) conn.disconnect(); });
  const status = await statusOf(`strophe.js login of ${jid}`, [Status.CONNECTED, Status.AUTHFAIL, Status.CONNFAIL, Status.DISCONNECTED],
    (cb) => conn.connect(jid, 'alice-pw', cb));
  if (status !== Status.CONNECTED) throw new Error(`strophe.js login ended in status ${status}`);
  return conn;
}

t.test('strophe.js logs in over BOSH with SCRAM-SHA-1 and exchanges messages with a WebSocket client', async (t) => {
  const b = await bob(t);
  const conn = await stropheLogin(t, 'alice@localhost/strophe-bosh');
  t.equal(conn._proto instanceof Strophe.Bosh, true, 'strophe.js chose BOSH');
  t.equal(conn._sasl_mechanism?.mechname, 'SCRAM-SHA-1', 'SCRAM-SHA-1 was used (and the server signature verified)');
  t.equal(conn.jid, 'alice@localhost/strophe-bosh');
  const session = server.app.sessions.get('localhost', 'alice', 'strophe-bosh');
  t.equal(session?.transport, 'bosh', 'the server sees a BOSH session');
  const next = inbox(conn);

  conn.send($pres());
  conn.send($msg({ to: b.jid, type: 'chat' }).c('body').t('from strophe over BOSH'));
  const atBob = await b.ws.until((el) => el.local === 'message');
  t.equal(atBob.getChildText('body'), 'from strophe over BOSH');
  t.equal(atBob.attr('from'), 'alice@localhost/strophe-bosh');

  b.ws.send(`<message xmlns='jabber:client' to='alice@localhost/strophe-bosh' type='chat'><body>from WebSocket</body></message>`);
  const atAlice = await next();
  t.equal(bodyText(atAlice), 'from WebSocket');
  t.equal(atAlice.getAttribute('from'), b.jid);

  const down = await statusOf('DISCONNECTED', [Status.DISCONNECTED], (cb) => {
    conn.connect_callback = cb;
    conn.disconnect();
  });
  t.equal(down, Status.DISCONNECTED);
  t.equal(server.app.sessions.get('localhost', 'alice', 'strophe-bosh'), undefined, 'terminate ended the session on the server');
});

t.test('after a page reload, strophe.js attach() with the saved sid, rid and JID continues the session', async (t) => {
  const b = await bob(t);
  const oldPage = await stropheLogin(t, 'alice@localhost/strophe-reload');
  const session = server.app.sessions.get('localhost', 'alice', 'strophe-reload');
  const proto = oldPage._proto as unknown as { sid: string; rid: number; _abortAllRequests(): void };
  // Let strophe.js settle into its idle long-poll, then unload the page: requests aborted, no terminate sent.
  await waitUntil(() => server.app.bosh.stats().held > 0, { timeout: WAIT_MS });
  const saved = { sid: proto.sid, rid: proto.rid, jid: oldPage.jid };
  proto._abortAllRequests();
  oldPage._doDisconnect();
  await waitUntil(() => server.app.bosh.stats().held === 0, { timeout: WAIT_MS });
  t.equal(server.app.bosh.stats().held, 0, 'the server noticed the aborted request');

  b.ws.send(`<message xmlns='jabber:client' to='${saved.jid}' type='chat'><body>sent during the reload</body></message>`);

  const newPage = new Strophe.Connection(boshUrl);
  t.teardown(() => { if (newPage.connected) newPage.disconnect(); });
  const next = inbox(newPage);
  const status = await statusOf('ATTACHED', [Status.ATTACHED], (cb) => newPage.attach(saved.jid, saved.sid, saved.rid, cb));
  t.equal(status, Status.ATTACHED);
  const msg = await next();
  t.equal(bodyText(msg), 'sent during the reload', 'the message that arrived between the pages is delivered');
  t.equal(server.app.sessions.get('localhost', 'alice', 'strophe-reload'), session, 'the same server session');

  newPage.send($msg({ to: b.jid, type: 'chat' }).c('body').t('attached'));
  const atBob = await b.ws.until((el) => el.local === 'message');
  t.equal(atBob.getChildText('body'), 'attached');
});

/**
 * A BOSH request whose connection closes before its answer (a network change, a proxy's timeout),
 * sent again with the same rid (XEP-0124 §14.3), on a real port over raw HTTP.
 *
 * The server counts such a request as answered with an empty <body/>, so that what comes later
 * waits for a live request instead of going to a dead socket. That empty body never went out, and
 * it was what the repeat got: the answer the client was waiting for then waited for its next
 * request. strophe.js sends no request before it is authenticated but the one its login needs, so
 * a SASL answer queued that way left the login hanging until the client gave up. The repeat now
 * gets what was queued since, at once, or the final body of a stream closed meanwhile; before
 * authentication with nothing queued yet, it is held as the first request was. After it, with
 * nothing queued, it gets the empty body at once, as before: the demo client's reload repeats its
 * open requests and waits for their answers (test/browser/demo-duplicate-tab.test.ts).
 */
import t, { type Test } from 'tap';
import { NS, x, type XmlElement } from '../../src/xml/index.js';
import { withUsers, type UsersServer } from '../helpers/server.js';
import { RawBoshClient, payloads, terminalCondition, type BoshResponse } from '../helpers/bosh-client.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { holdCalls } from '../helpers/hold-calls.js';
import { eventually } from '../helpers/eventually.js';
import { NodeXhr } from '../helpers/node-xhr.js';
import { Strophe } from 'strophe.js';

Strophe.setLogLevel(Strophe.LogLevel.FATAL);

const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, { ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '60', BOSH_MAX_HOLD: '2' });
const url = `${server.httpUrl}/http-bind`;

function client(tt: Test): RawBoshClient {
  const c = new RawBoshClient(url);
  tt.teardown(() => c.destroy());
  return c;
}

/** Posts `body` and closes its connection once `ready` resolves (the server is then holding it); resolves once the server has let it go. */
async function abandon(tt: Test, s: UsersServer, c: RawBoshClient, body: XmlElement, ready: () => Promise<unknown>): Promise<void> {
  const abort = new AbortController();
  const first = c.raw(body, { signal: abort.signal }).catch((err: Error) => err);
  await ready();
  abort.abort();
  tt.ok(await first instanceof Error, 'the client lost the connection of its request');
  await eventually(() => s.app.bosh.stats().held === 0, { message: 'the server to notice the closed connection' });
}

const ids = (res: BoshResponse): (string | undefined)[] => payloads(res.body).map((p) => p.attr('id'));

/** Alice logged in as `resource`, and an empty poll of hers held, whose connection then closed. */
async function abandonedPoll(tt: Test, resource: string): Promise<{ c: RawBoshClient; jid: string; poll: XmlElement }> {
  const c = client(tt);
  const jid = await c.login('alice', 'alice-pw', resource);
  const poll = c.body();
  await abandon(tt, server, c, poll, () => eventually(() => server.app.bosh.stats().held === 1, { message: 'the poll held' }));
  return { c, jid, poll };
}

/** Bob, logged in over WebSocket as `resource`; `say` sends `jid` a chat message with that id. */
async function bobAs(tt: Test, resource: string): Promise<{ say(jid: string, id: string): void }> {
  const bob = await RawWsClient.connect(server.wsUrl);
  tt.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', resource);
  return { say: (jid, id) => bob.send(`<message xmlns='jabber:client' to='${jid}' type='chat' id='${id}'><body>hi</body></message>`) };
}

/** Waits until the message just sent waits in alice's BOSH queue (no request held for it). */
const queued = (): Promise<unknown> => eventually(() => server.app.bosh.stats().queued > 0, { message: 'the message queued for the next request' });

const plainAuth = (user: string, password: string): XmlElement =>
  x('auth', { xmlns: NS.SASL, mechanism: 'PLAIN' }, Buffer.from(`\0${user}\0${password}`).toString('base64'));

/** A new session's SASL <auth/>, held while the account's lookup waits, its connection then closed; the lookup still waits. */
async function abandonedAuth(tt: Test): Promise<{ c: RawBoshClient; auth: XmlElement; release(): void }> {
  const c = client(tt);
  await c.create({ wait: 60 });
  const auth = c.body({}, plainAuth('alice', 'alice-pw'));
  const store = holdCalls(server.storage.users, 'get');
  tt.teardown(() => store.release());
  await abandon(tt, server, c, auth, () => store.entered);
  return { c, auth, release: () => store.release() };
}

t.test('a SASL <auth/> whose connection closed before the answer, sent again, gets the answer: the login goes on', async (t) => {
  const { c, auth, release } = await abandonedAuth(t);
  release();
  await eventually(() => server.app.bosh.stats().queued > 0, { message: 'the SASL answer queued for the next request' });
  const again = await c.raw(auth);
  t.ok(again.body?.getChild('success', NS.SASL), `the repeat gets <success/>, not the empty body that never went out (${again.text})`);
  t.equal(again.body?.attr('type'), undefined, 'and no terminate');
  const repeated = await c.raw(auth);
  t.equal(repeated.text, again.text, 'the buffer now holds the answer that went out (§14.3): sent again, byte for byte');
  const restarted = await c.restart();
  t.ok(restarted.body?.getChild('features', NS.STREAM)?.getChild('bind', NS.BIND), 'the restart offers bind');
  const bound = await c.send({}, x('iq', { xmlns: NS.CLIENT, type: 'set', id: 'b1' }, x('bind', { xmlns: NS.BIND }, x('resource', {}, 'after-abandon'))));
  t.match(bound.body?.getChild('iq', NS.CLIENT)?.getChild('bind', NS.BIND)?.getChildText('jid'), /^alice@localhost\/after-abandon$/, 'and the session binds');
});

t.test('a SASL <auth/> whose connection closed before the answer, sent again before the answer is ready, is held until it is', async (t) => {
  const { c, auth, release } = await abandonedAuth(t);
  let answered = false;
  const again = c.raw(auth).finally(() => { answered = true; });
  await eventually(() => server.app.bosh.stats().held === 1, { message: 'the repeat held' });
  t.notOk(answered, 'no empty body for the repeat while the answer is not ready');
  release();
  const res = await again;
  t.ok(res.body?.getChild('success', NS.SASL), `the repeat gets <success/> once it is ready (${res.text})`);
});

t.test('a repeat held again, sent once more while a newer request is held: the newer copy takes its place, and gets the answer', async (t) => {
  const c = client(t);
  // hold=2: the repeat and a newer request can both be held.
  await c.create({ wait: 60, hold: 2 });
  const auth = c.body({}, plainAuth('alice', 'alice-pw'));
  const store = holdCalls(server.storage.users, 'get');
  t.teardown(() => store.release());
  await abandon(t, server, c, auth, () => store.entered);
  const second = c.raw(auth).catch((err: Error) => err);
  await eventually(() => server.app.bosh.stats().held === 1, { message: 'the repeat held again' });
  const newer = c.send().catch((err: Error) => err);
  await eventually(() => server.app.bosh.stats().held === 2, { message: 'a newer request held beside it' });
  const third = c.raw(auth);
  const replaced = await second;
  t.equal(replaced instanceof Error ? replaced.message : replaced.body?.attr('type'), 'error', 'the held copy gets a recoverable error (§17.3)');
  t.equal(server.app.bosh.stats().held, 2, 'the newer copy took its place: still two held, not three');
  store.release();
  const res = await third;
  t.ok(res.body?.getChild('success', NS.SASL), `the newer copy gets <success/> (${res.text})`);
  t.same(await c.raw(auth).then((r) => r.text), res.text, 'and the buffer holds it');
  void newer;
});

t.test('an empty request whose connection closed while held, sent again with nothing queued after login, is answered at once, empty', async (t) => {
  const { c, poll } = await abandonedPoll(t, 'poll-empty');
  // A reloaded page that repeats its open requests waits for their answers: not for `wait` (60 s here).
  const again = await c.raw(poll, { timeout: 5000 });
  t.equal(again.body?.attr('type'), undefined, `the repeat is answered, no terminate (${again.text})`);
  t.same(ids(again), [], 'with the empty body in the buffer');
  t.equal(server.app.bosh.stats().held, 0, 'and not held');
});

t.test('an empty request whose connection closed while held, sent again, gets the message that arrived meanwhile', async (t) => {
  const { c, jid, poll } = await abandonedPoll(t, 'poll-abandoned');
  (await bobAs(t, 'sender')).say(jid, 'meanwhile');
  await queued();
  const again = await c.raw(poll);
  t.same(ids(again), ['meanwhile'], `the repeat gets the message (${again.text})`);
  t.same(ids(await c.raw(poll)), ['meanwhile'], 'sent once more, the same response from the buffer');
  const next = await c.send({}, x('iq', { xmlns: NS.CLIENT, type: 'get', id: 'p1', to: 'localhost' }, x('ping', { xmlns: NS.PING })));
  t.same(ids(next), ['p1'], 'the session goes on');
});

t.test('a request whose connection closed while held, sent again after the server closed the stream, gets the terminate body', async (t) => {
  const { c, poll } = await abandonedPoll(t, 'closed-abandoned');
  // The server closes the stream while no request is held: a login with the same resource replaces the session.
  const ws = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => ws.close());
  await ws.login('alice', 'alice-pw', 'closed-abandoned');
  await eventually(() => server.app.sessions.get('localhost', 'alice', 'closed-abandoned')?.transport === 'websocket', { message: 'the BOSH session replaced' });
  const again = await c.raw(poll);
  t.equal(terminalCondition(again), 'remote-stream-error', `the repeat gets the terminate body (${again.text})`);
  t.ok(again.body?.getChild('error', NS.STREAM)?.getChild('conflict'), 'with the conflict inside');
  t.equal(terminalCondition(await c.send()), 'item-not-found', 'the BOSH session ended with it (§17.2 for a later rid)');
});

t.test('the repeat of an abandoned rid never carries what comes after a newer rid\'s payloads (a client reads responses in rid order)', async (t) => {
  const { c, jid, poll } = await abandonedPoll(t, 'order');
  const bob = await bobAs(t, 'order-sender');
  const newer = c.send();
  await eventually(() => server.app.bosh.stats().held === 1, { message: 'the newer poll held' });
  bob.say(jid, 'first');
  t.same(ids(await newer), ['first'], 'the newer rid carries the first message');
  bob.say(jid, 'second');
  await queued();
  const again = await c.raw(poll, { timeout: 5000 });
  t.same(ids(again), [], `the older rid sent again gets its empty body, not the second message (${again.text})`);
  t.same(ids(await c.send()), ['second'], 'which the next rid carries');
});

t.test('the repeat of an abandoned rid before authentication is not held behind a newer request', async (t) => {
  const c = client(t);
  // hold=2: both could stay held (with hold=1 the older is answered when the newer comes, §8).
  await c.create({ wait: 60, hold: 2 });
  const poll = c.body();
  await abandon(t, server, c, poll, () => eventually(() => server.app.bosh.stats().held === 1, { message: 'the poll held' }));
  let newerAnswered = false;
  const newer = c.send().finally(() => { newerAnswered = true; });
  await eventually(() => server.app.bosh.stats().held === 1, { message: 'the newer poll held' });
  const again = await c.raw(poll, { timeout: 5000 });
  t.same(ids(again), [], `the older rid is answered at once, empty (${again.text})`);
  t.notOk(newerAnswered, 'the newer request stays held, waiting for what comes');
  t.equal(server.app.bosh.stats().held, 1, 'one request held');
  // hold=2: the auth stays held (for what comes next), and the oldest held request, the newer poll, carries the answer.
  void c.send({}, plainAuth('alice', 'alice-pw')).catch(() => undefined);
  t.ok(payloads((await newer).body).some((p) => p.is('success', NS.SASL)), 'and the login goes on: the newer poll carries <success/>');
});

t.test("the repeat of an abandoned rid after the client's terminate gets its empty body: what is queued goes offline, not to a client that reads nothing more (§13)", async (t) => {
  const { c, jid, poll } = await abandonedPoll(t, 'after-terminate');
  (await bobAs(t, 'terminate-sender')).say(jid, 'unread');
  await queued();
  // The terminate's vCard set waits for the store: the core has not closed the stream when the old rid comes again.
  const store = holdCalls(server.storage.vcards, 'set');
  t.teardown(() => store.release());
  const terminated = c.terminate(x('iq', { xmlns: NS.CLIENT, type: 'set', id: 'v1' }, x('vCard', { xmlns: NS.VCARD })));
  await store.entered;
  const again = await c.raw(poll, { timeout: 5000 });
  t.same(ids(again), [], `the old rid gets the empty body (${again.text})`);
  store.release();
  t.equal(terminalCondition(await terminated), '', 'the terminate gets the terminate body');
  await eventually(async () => (await server.storage.offline.list('localhost', 'alice')).length > 0, { message: 'the message stored offline' });
  t.same((await server.storage.offline.list('localhost', 'alice')).map((m) => /id=["']([^"']+)/.exec(m.stanza)?.[1]), ['unread'], 'the message is stored offline, once');
});

t.test('strophe.js over BOSH: its SASL request lost on the way after the server took it, it sends the rid again and logs in', async (t) => {
  // A server of its own: "no request held" below is about this client's session alone.
  const own = await withUsers(t, { carol: 'carol-pw' }, { BOSH_MAX_WAIT: '60' });
  const store = holdCalls(own.storage.users, 'get');
  t.teardown(() => store.release());
  const lost: string[] = [];
  // The network as strophe.js sees it: its <auth/> reaches the server, whose answer waits for the account's lookup,
  // and then the connection is lost (status 0). strophe.js sends the same rid again (XEP-0124 §14.3).
  class LosingXhr extends NodeXhr {
    override send(body?: string): void {
      if (lost.length > 0 || body === undefined || !body.includes('<auth ')) return super.send(body);
      lost.push(body);
      const abort = new AbortController();
      fetch(`${own.httpUrl}/http-bind`, { method: 'POST', headers: { 'Content-Type': 'text/xml; charset=utf-8' }, body, signal: abort.signal })
        .catch(() => undefined);
      void (async () => {
        await store.entered;
        abort.abort();
        await eventually(() => own.app.bosh.stats().held === 0, { message: 'the server to notice the lost connection' });
        store.release();
        await eventually(() => own.app.bosh.stats().queued > 0, { message: 'the SASL answer queued' });
        this.status = 0;
        this.readyState = 4;
        this.onreadystatechange?.();
      })();
    }
  }
  const globals = globalThis as { XMLHttpRequest?: unknown };
  const before = globals.XMLHttpRequest;
  globals.XMLHttpRequest = LosingXhr;
  // strophe.js's timers may still make a request after the test: a working XMLHttpRequest stays.
  t.teardown(() => { globals.XMLHttpRequest = before ?? NodeXhr; });
  const conn = new Strophe.Connection(`${own.httpUrl}/http-bind`);
  const sent: string[] = [];
  conn.rawOutput = (data: string) => { sent.push(data); };
  t.teardown(() => { if (conn.connected) conn.disconnect(); });
  const statuses: number[] = [];
  const connected = new Promise<void>((resolve, reject) => {
    conn.connect('carol@localhost/strophe-lost-auth', 'carol-pw', (status: number) => {
      statuses.push(status);
      if (status === Strophe.Status.CONNECTED) resolve();
      else if ([Strophe.Status.AUTHFAIL, Strophe.Status.CONNFAIL, Strophe.Status.DISCONNECTED].includes(status)) reject(new Error(`login failed with status ${status}`));
    });
  });
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no login within 15 s; statuses ${statuses.join(',')}; sent ${sent.join(' ')}`)), 15_000).unref());
  await Promise.race([connected, timeout]);
  t.equal(lost.length, 1, 'the <auth/> request was lost once');
  const rid = /rid=["'](\d+)["']/.exec(lost[0]!)?.[1];
  t.equal(sent.filter((f) => f.includes(`rid="${rid}"`) || f.includes(`rid='${rid}'`)).length, 2, `strophe.js sent rid ${rid} twice (§14.3)`);
  t.equal(conn.jid, 'carol@localhost/strophe-lost-auth', 'and is logged in and bound');
  conn.disconnect();
  await eventually(() => statuses.includes(Strophe.Status.DISCONNECTED), { message: 'strophe.js to disconnect' });
});

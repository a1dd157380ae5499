/**
 * One core under two transports: a BOSH user and a WebSocket user talk to
 * each other, and a reloaded page continues its BOSH session from nothing
 * but sid, rid and JID, with nothing lost.
 */
import t, { type Test } from 'tap';
import http from 'node:http';
import { NS, x } from '../../src/xml/index.js';
import { type TestServer, withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { RawBoshClient, payloads } from '../helpers/bosh-client.js';
import { eventually } from '../helpers/eventually.js';

/** `wait`: BOSH_MAX_WAIT; the reload tests use 60 so that only noticing the dropped request can free it. */
async function server(tt: Test, wait = 2): Promise<TestServer> {
  return withUsers(tt, { alice: 'alice-secret', bob: 'bob-secret' }, { ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: String(wait) });
}

async function ws(tt: Test, s: TestServer, user: string, password: string, resource: string): Promise<{ c: RawWsClient; jid: string }> {
  const c = await RawWsClient.connect(s.wsUrl);
  tt.teardown(() => c.close());
  return { c, jid: await c.login(user, password, resource) };
}

function bosh(tt: Test, s: TestServer, opts: { sid?: string; rid?: number; agent?: http.Agent } = {}): RawBoshClient {
  const c = new RawBoshClient(`${s.httpUrl}/http-bind`, opts);
  tt.teardown(() => c.destroy());
  return c;
}

const chat = (to: string, body: string) => x('message', { xmlns: NS.CLIENT, to, type: 'chat' }, x('body', {}, body));

t.test('a WebSocket user and a BOSH user exchange messages both ways', async (t) => {
  const s = await server(t);
  const bob = await ws(t, s, 'bob', 'bob-secret', 'ws');
  const alice = bosh(t, s);
  const aliceJid = await alice.login('alice', 'alice-secret', 'bosh');
  t.equal(s.app.sessions.get('localhost', 'alice', 'bosh')?.transport, 'bosh', 'the BOSH session is a core session');

  await alice.send({}, chat(bob.jid, 'hello over BOSH'));
  const atBob = await bob.c.until((el) => el.local === 'message');
  t.equal(atBob.getChildText('body'), 'hello over BOSH');
  t.equal(atBob.attr('from'), aliceJid, 'from is the BOSH resource');

  // A request is held: the message from the WebSocket side answers it at once.
  const held = alice.send();
  await eventually(() => s.app.bosh.stats().held === 1, { timeout: 8000, message: 'the BOSH request is held' });
  bob.c.send(`<message xmlns='jabber:client' to='${aliceJid}' type='chat'><body>hello over WebSocket</body></message>`);
  const res = await held;
  const atAlice = payloads(res.body).find((p) => p.local === 'message');
  t.equal(atAlice?.getChildText('body'), 'hello over WebSocket');
  t.equal(atAlice?.attr('from'), bob.jid);
  t.equal(atAlice?.ns, NS.CLIENT);
  await alice.terminate();
});

t.test('a reloaded page that knows only sid, rid and JID continues the session and gets what arrived meanwhile', async (t) => {
  const s = await server(t, 60);
  const bob = await ws(t, s, 'bob', 'bob-secret', 'ws');
  // The first page: logs in, becomes available, and has a request held when it unloads.
  const oldPage = bosh(t, s);
  const jid = await oldPage.login('alice', 'alice-secret', 'reload');
  await oldPage.send({}, x('presence', { xmlns: NS.CLIENT }));
  const session = s.app.sessions.get('localhost', 'alice', 'reload');
  const inFlight = oldPage.send().catch((err: Error) => err);
  await eventually(() => s.app.bosh.stats().held === 1, { timeout: 8000, message: 'the old page has a request held' });
  const saved = { sid: oldPage.sid!, rid: oldPage.rid, jid };
  oldPage.destroy(); // unload: every socket of the page is closed
  t.ok((await inFlight) instanceof Error, 'the held request died with the page');
  await eventually(() => s.app.bosh.stats().held === 0, { timeout: 8000, message: 'the server notices the dropped request' });

  // Meanwhile, with no request held, a message and a presence arrive.
  bob.c.send(`<message xmlns='jabber:client' to='${jid}' type='chat'><body>while you were away</body></message>`);
  await eventually(() => s.app.bosh.stats().queued === 1, { timeout: 8000, message: 'the message is queued in the BOSH session' });

  // The new page: a fresh HTTP agent, nothing but what sessionStorage kept.
  const newPage = bosh(t, s, { sid: saved.sid, rid: saved.rid, agent: new http.Agent({ keepAlive: true }) });
  const res = await newPage.send();
  const msg = payloads(res.body).find((p) => p.local === 'message');
  t.equal(msg?.getChildText('body'), 'while you were away', 'the message is delivered to the new page');
  t.equal(s.app.sessions.get('localhost', 'alice', 'reload'), session, 'the same XMPP session goes on');
  t.equal(session?.available, true, 'still available: no presence was lost');

  const sent = newPage.send({}, chat(bob.jid, 'back'));
  const back = await bob.c.until((el) => el.local === 'message');
  t.equal(back.getChildText('body'), 'back');
  t.equal(back.attr('from'), saved.jid, 'from the same full JID');
  await newPage.terminate();
  await sent;
});

t.test('a reload that repeats the rid of the dropped request gets the queued stanzas in its answer (§14.3: the empty one never went out)', async (t) => {
  const s = await server(t, 60);
  const bob = await ws(t, s, 'bob', 'bob-secret', 'ws');
  const oldPage = bosh(t, s);
  const jid = await oldPage.login('alice', 'alice-secret', 'reload2');
  const droppedRid = oldPage.rid;
  const inFlight = oldPage.send().catch((err: Error) => err);
  await eventually(() => s.app.bosh.stats().held === 1, { timeout: 8000, message: 'the old page has a request held' });
  oldPage.destroy();
  await inFlight;
  await eventually(() => s.app.bosh.stats().held === 0, { timeout: 8000, message: 'the server notices the dropped request' });
  bob.c.send(`<message xmlns='jabber:client' to='${jid}' type='chat'><body>queued</body></message>`);
  await eventually(() => s.app.bosh.stats().queued === 1, { timeout: 8000, message: 'the message is queued' });
  const newPage = bosh(t, s, { sid: oldPage.sid!, rid: droppedRid, agent: new http.Agent({ keepAlive: true }) });
  const repeat = await newPage.send();
  t.equal(payloads(repeat.body).find((p) => p.local === 'message')?.getChildText('body'), 'queued',
    'the dropped rid is answered with the queued message, not the empty body it counted as answered with');
  t.equal(s.app.bosh.stats().queued, 0, 'nothing is left waiting');
  await newPage.terminate();
});

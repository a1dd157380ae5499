/**
 * XEP-0198 §5 resumption racing the transports' own events, while the old
 * session's queue is busy (a handler awaiting storage: a vCard get held at a
 * gate), so the <resume/> waits behind it:
 * - a stanza the old transport sends meanwhile is either counted by
 *   <resumed h/> or not handled at all (the client resends it): never twice;
 * - the old transport's loss does not hibernate the resumed session;
 * - the new transport's loss, before the resumption ran, hibernates the
 *   resumed session instead of leaving it on a dead transport;
 * - a stanza pipelined right behind <resume/> is handled on the resumed
 *   session and counted, not dropped;
 * and, with the input pump holding stanzas when the transport ends, an IQ get
 * of a resumable session is answered, so h counts what the client sent in order;
 * and an <r/> the old transport left unanswered does not time out the resumed stream.
 */
import t, { type Test } from 'tap';
import { NS } from '../../src/xml/index.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { SmPeer, chat, routed } from '../helpers/sm-peer.js';
import { eventually, sleep } from '../helpers/eventually.js';

const VCARD_GET = `<iq xmlns='jabber:client' type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>`;

/** A server whose vCard reads wait at a gate once `hold()` is called: a get then keeps the session's queue busy. */
async function gatedServer(t: Test, users: string[]) {
  const storage = createMemoryStorage();
  let gate: Promise<void> | undefined;
  let open = (): void => undefined;
  const get = storage.vcards.get.bind(storage.vcards);
  storage.vcards.get = async (h, u) => { if (gate) await gate; return get(h, u); };
  const server = await withUsers(t, users, { ALLOW_INSECURE_PLAIN: 'true' }, storage);
  return {
    server,
    hold() { gate = new Promise<void>((r) => { open = r; }); },
    release() { gate = undefined; open(); },
  };
}

async function bobOnline(t: Test, wsUrl: string): Promise<RawWsClient> {
  const bob = await RawWsClient.connect(wsUrl);
  await bob.login('bob', 'bob-pw', 'b');
  t.teardown(() => bob.close());
  return bob;
}

/** A new stream for alice that sends <resume/> for `smid` (its answer waits while the old queue is busy). */
async function resumeOn(t: Test, wsUrl: string, smid: string): Promise<RawWsClient> {
  const fresh = await RawWsClient.connect(wsUrl);
  t.teardown(() => fresh.close());
  await fresh.authenticate('alice', 'alice-pw');
  fresh.send(`<resume xmlns='${NS.SM}' previd='${smid}' h='0'/>`);
  return fresh;
}

/** alice's resumable session, its queue kept busy by a vCard get held at the gate: a <resume/> waits behind it. */
async function busyAlice(t: Test, g: Awaited<ReturnType<typeof gatedServer>>): Promise<SmPeer> {
  const old = await SmPeer.login(g.server.wsUrl, 'alice', 'alice-pw', 'tab', { autoAck: true });
  t.teardown(() => old.c.close());
  g.hold();
  old.c.send(VCARD_GET);
  await sleep(50);
  return old;
}

const smAnswer = (c: RawWsClient) => c.until((el) => el.ns === NS.SM && el.local !== 'r');
const times = (c: RawWsClient, id: string) => c.frames.filter((el) => el.local === 'message' && el.attr('id') === id).length;

t.test('a stanza the old transport sends after <resume/> is counted by <resumed h/> or not handled: the client resends it, bob gets it once', async (t) => {
  const g = await gatedServer(t, ['alice', 'bob']);
  const bob = await bobOnline(t, g.server.wsUrl);
  const old = await busyAlice(t, g);
  const fresh = await resumeOn(t, g.server.wsUrl, old.smid!);
  await sleep(50);
  old.c.send(chat('bob@localhost/b', 'late'));
  await sleep(50);
  g.release();
  const answer = await smAnswer(fresh);
  t.ok(answer.is('resumed', NS.SM), 'resumed');
  const h = Number(answer.attr('h'));
  // The client's queue was the get, then 'late': what h does not cover, it sends again (§5).
  if (h < 2) fresh.send(chat('bob@localhost/b', 'late'));
  await sleep(200);
  await routed(bob, 'p1');
  t.equal(times(bob, 'late'), 1, `bob gets 'late' once (resumed h=${h})`);
});

t.test("the old transport's loss, queued before the resumption ran, does not hibernate the resumed session", async (t) => {
  const g = await gatedServer(t, ['alice', 'bob']);
  const bob = await bobOnline(t, g.server.wsUrl);
  const old = await busyAlice(t, g);
  const fresh = await resumeOn(t, g.server.wsUrl, old.smid!);
  await sleep(50);
  old.c.ws.terminate();
  await sleep(100);
  g.release();
  t.ok((await smAnswer(fresh)).is('resumed', NS.SM), 'resumed');
  await sleep(100);
  t.ok(g.server.app.sessions.get('localhost', 'alice', 'tab')?.conn, 'the resumed session keeps its new transport');
  bob.send(chat('alice@localhost/tab', 'after'));
  t.ok(await fresh.until((el) => el.local === 'message' && el.attr('id') === 'after', 3000).catch(() => undefined), 'a message to alice reaches the resumed stream');
});

t.test('the new transport lost before the resumption ran: the resumed session hibernates, and a later resume gets what it holds', async (t) => {
  const g = await gatedServer(t, ['alice', 'bob']);
  const bob = await bobOnline(t, g.server.wsUrl);
  const old = await busyAlice(t, g);
  old.c.ws.terminate();
  await sleep(50);
  const fresh = await resumeOn(t, g.server.wsUrl, old.smid!);
  await sleep(50);
  fresh.ws.terminate(); // the reloaded page goes away too
  await sleep(100);
  g.release();
  await eventually(() => g.server.app.sessions.get('localhost', 'alice', 'tab')?.conn === null, { interval: 10, message: 'hibernation' });
  t.pass('hibernating, not on the dead transport');
  bob.send(chat('alice@localhost/tab', 'meanwhile'));
  await routed(bob, 'p1');
  const third = await RawWsClient.connect(g.server.wsUrl);
  t.teardown(() => third.close());
  await third.authenticate('alice', 'alice-pw');
  third.send(`<resume xmlns='${NS.SM}' previd='${old.smid}' h='0'/>`);
  t.ok((await smAnswer(third)).is('resumed', NS.SM), 'resumable');
  await third.until((el) => el.local === 'message' && el.attr('id') === 'meanwhile');
  t.pass('the message sent while it hibernated is resent');
});

t.test('a stanza pipelined behind <resume/> is handled on the resumed session and counted', async (t) => {
  const g = await gatedServer(t, ['alice', 'bob']);
  const bob = await bobOnline(t, g.server.wsUrl);
  const old = await busyAlice(t, g);
  const fresh = await resumeOn(t, g.server.wsUrl, old.smid!);
  fresh.send(chat('bob@localhost/b', 'pipelined'));
  await sleep(50);
  g.release();
  const answer = await smAnswer(fresh);
  t.ok(answer.is('resumed', NS.SM), 'resumed');
  fresh.send(`<r xmlns='${NS.SM}'/>`);
  const a = await fresh.until((el) => el.is('a', NS.SM));
  t.equal(Number(a.attr('h')), Number(answer.attr('h')) + 1, 'counted after <resumed h/>');
  await bob.until((el) => el.local === 'message' && el.attr('id') === 'pipelined');
  t.pass('delivered');
});

t.test('input held by the rate limit when the transport ends: an IQ get of a resumable session is answered, h counts in order', async (t) => {
  const s = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true', MAX_INBOUND_STANZAS_PER_SECOND: '3' });
  const bob = await bobOnline(t, s.wsUrl);
  const alice = await SmPeer.login(s.wsUrl, 'alice', 'alice-pw', 'tab', { autoAck: false });
  await sleep(1100); // a full bucket: 3 stanzas at once, the rest wait
  const to = 'bob@localhost/b';
  for (const id of ['f1', 'f2', 'f3']) alice.c.send(chat(to, id));
  alice.c.send(`<iq xmlns='jabber:client' type='get' id='G'><ping xmlns='urn:xmpp:ping'/></iq>`);
  alice.c.send(chat(to, 'M'));
  await sleep(30);
  alice.c.ws.terminate();
  await sleep(300);
  await routed(bob, 'p1');
  const { peer, answer } = await SmPeer.resume(s.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false });
  t.teardown(() => peer.c.close());
  t.ok(answer.is('resumed', NS.SM), 'resumed');
  const sent = ['f1', 'f2', 'f3', 'G', 'M'];
  const h = Number(answer.attr('h'));
  t.equal(h, sent.length, 'every stanza the client sent was handled');
  for (const id of sent.slice(h)) peer.c.send(id === 'G' ? `<iq xmlns='jabber:client' type='get' id='G'><ping xmlns='urn:xmpp:ping'/></iq>` : chat(to, id));
  await peer.c.until((el) => el.local === 'iq' && el.attr('id') === 'G' && el.attr('type') === 'result');
  t.pass('the get is answered, after the resumption');
  await sleep(300);
  await routed(bob, 'p2');
  t.equal(times(bob, 'M'), 1, 'M reaches bob once');
});

t.test("an <r/> the old transport left unanswered does not time the resumed stream out: it gets a full SM_ACK_TIMEOUT of its own", async (t) => {
  const s = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true', SM_ACK_TIMEOUT: '3', SM_ACK_FREQ: '1' });
  const bob = await bobOnline(t, s.wsUrl);
  const old = await SmPeer.login(s.wsUrl, 'alice', 'alice-pw', 'tab', { autoAck: false });
  t.teardown(() => old.c.close());
  bob.send(chat('alice@localhost/tab', 'unacked'));
  await old.c.until((el) => el.is('r', NS.SM));
  const asked = Date.now();
  await sleep(2000);
  // The old socket still looks alive; the page resumes on a new one and acknowledges nothing yet.
  const { peer, answer } = await SmPeer.resume(s.wsUrl, 'alice', 'alice-pw', old.smid!, { autoAck: false });
  t.teardown(() => peer.c.close());
  t.ok(answer.is('resumed', NS.SM), 'resumed');
  await sleep(Math.max(0, asked + 4000 - Date.now()));
  const errors = () => peer.c.frames.filter((el) => el.local === 'error' && el.ns === NS.STREAM);
  t.same(errors().map(String), [], 'still open 4 s after the old <r/>, 2 s after the resumption');
  t.equal(peer.c.closed, undefined);
  await eventually(() => errors().some((el) => el.getChild('connection-timeout') !== undefined), { timeout: 4000, message: 'the resumed stream times out on its own wait' });
  t.pass("then the resumed stream's own wait runs out: connection-timeout");
});

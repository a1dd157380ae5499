/**
 * The headline promise, kept by a real client library: a browser never loses
 * its session or a message when its connection drops or the page reloads.
 *
 * @xmpp/client (xmpp.js) 0.14 negotiates XEP-0198 by itself: it sends
 * <enable resume='true'/> after binding whenever the server offers <sm/>,
 * answers <r/> with <a/>, and on a new stream tries <resume/> whenever
 * `streamManagement.id` is set. Its reconnect module reopens the stream one
 * second after the transport dies.
 */
import t, { type Test } from 'tap';
import { withUsers } from '../helpers/server.js';
import {
  NS_DELAY, NS_SM, becomeAvailable, createClient, cutOff, isBindRequest, login, ping, serverForgets,
  serverHibernates, serverSession, sleep, smEnabled, within, xml,
  type ClientOptions, type XmlEl, type XmppJsClient,
} from '../helpers/xmppjs.js';
import { eventually } from '../helpers/eventually.js';

/** How long to keep listening after the last expected message, to catch duplicates. */
const SETTLE_MS = 500;

const server = await withUsers(t, ['alice', 'bob']);

function chat(to: string, id: string, body: string): XmlEl {
  return xml('message', { to, type: 'chat', id }, xml('body', {}, body));
}

/** Bob sends `n` chat messages to `to`; the ping afterwards proves the server has routed them all. */
async function bobSends(bob: XmppJsClient, to: string, prefix: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 1; i <= n; i++) {
    const id = `${prefix}-${i}`;
    await bob.xmpp.send(chat(to, id, `${prefix} message ${i}`));
    ids.push(id);
  }
  await ping(bob);
  return ids;
}

/** Reads `n` messages from `s`, then listens SETTLE_MS more; returns the ids of every message that arrived after `from`. */
async function collect(s: XmppJsClient, from: number, n: number, what: string): Promise<string[]> {
  for (let i = 0; i < n; i++) {
    await s.inbox.next(`${what}: message ${i + 1} of ${n}`).catch((err: unknown) => {
      throw new Error(`${String(err)}; got so far: ${s.inbox.items.slice(from).map((m) => m.attrs.id).join(', ') || 'nothing'}`, { cause: err });
    });
  }
  await sleep(SETTLE_MS);
  return s.inbox.items.slice(from).map((m) => m.attrs.id ?? '(no id)');
}

/**
 * XEP-0203: a delayed message is stamped with when the server first got it,
 * i.e. between just before bob sent it and his ping reply after it — not
 * when the session that could not take it gave up, a resume timeout later.
 */
function assertStampedOnArrival(t: Test, m: XmlEl, sentAt: number, routedBy: number): void {
  const delay = m.getChild('delay', NS_DELAY);
  t.ok(delay, `${m.attrs.id} carries a XEP-0203 delay stamp`);
  const stamp = Date.parse(delay?.attrs.stamp ?? '');
  // A stamp without milliseconds is rounded down to the second.
  t.ok(stamp >= sentAt - 1000 && stamp <= routedBy,
    `the stamp ${delay?.attrs.stamp} is when the message first arrived (${new Date(sentAt).toISOString()} .. ${new Date(routedBy).toISOString()})`);
}

function sentResume(s: XmppJsClient, from = 0): XmlEl | undefined {
  return s.sent.slice(from).find((el) => el.is('resume', NS_SM));
}

t.test('xmpp.js resumes after its socket dies: no new bind, the same server session, and the 5 messages of the gap exactly once, in order', async (t) => {
  const alice = await login(t, server, { username: 'alice', password: 'alice-pw', resource: 'drop' });
  const smid = await smEnabled(alice);
  const enabled = alice.received.find((el) => el.is('enabled', NS_SM));
  t.equal(enabled?.attrs.resume, 'true', 'the server granted a resumable session');
  await becomeAvailable(alice);
  const bob = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'sender-1' });
  const session = serverSession(server, alice.jid);
  t.ok(session, 'the server holds alice@localhost/drop');

  const resumed = new Promise<void>((resolve) => alice.xmpp.streamManagement.once('resumed', resolve));
  const sentAt = alice.sent.length;
  const inboxAt = alice.inbox.items.length;
  cutOff(alice);
  await serverHibernates(server, alice.jid);

  const gap = await bobSends(bob, alice.jid, 'gap', 5);
  // The reconnect module waits a second; the gap must really fall while alice is away.
  t.equal(serverSession(server, alice.jid)?.conn, null, 'all 5 messages were routed while alice had no transport');

  await within(resumed, "xmpp.js's 'resumed' event after its reconnect");
  const resume = sentResume(alice, sentAt);
  t.equal(resume?.attrs.previd, smid, 'xmpp.js sent <resume/> with the smid from <enabled/>');
  t.equal(alice.xmpp.status, 'online', 'the client is online again');

  const got = await collect(alice, inboxAt, 5, 'the messages bob sent during the gap');
  t.same(got, gap, 'alice got every message of the gap, once each, in order');
  for (const m of alice.inbox.items.slice(inboxAt)) {
    t.equal(m.attrs.from, bob.jid, `${m.attrs.id} is from bob's full JID`);
    t.equal(m.attrs.to, alice.jid, `${m.attrs.id} is to alice's full JID`);
  }
  t.same(alice.sent.slice(sentAt).filter(isBindRequest).map(String), [], 'no resource binding after the drop');
  t.equal(serverSession(server, alice.jid), session, 'the server session object is the one from before the drop');

  // The session really continues: alice can talk again on the resumed stream.
  await alice.xmpp.send(chat(bob.jid, 'back', 'I am back'));
  const reply = await bob.inbox.next('alice\'s message after the resumption');
  t.equal(reply.attrs.from, alice.jid, 'bob sees alice\'s message from the same full JID');
  t.same(alice.errors.map(String), [], 'xmpp.js emitted no errors');
});

t.test('a reloaded page resumes from nothing but the smid and counters it persisted: no bind, the same server session, and exactly the 3 messages it missed', async (t) => {
  const creds: ClientOptions = { username: 'alice', password: 'alice-pw', resource: 'reload' };
  const page1 = await login(t, server, creds);
  await smEnabled(page1);
  await becomeAvailable(page1);
  const bob = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'sender-2' });

  await bob.xmpp.send(chat(page1.jid, 'seen', 'read before the reload'));
  const seen = await page1.inbox.next('the message before the reload');
  t.equal(seen.attrs.id, 'seen');
  // The server asks for an ack after each stanza; xmpp.js answers <r/> with <a h/>.
  const h = page1.xmpp.streamManagement.inbound;
  await eventually(() => page1.sent.some((el) => el.is('a', NS_SM) && Number(el.attrs.h) === h), { message: `page 1 to acknowledge h=${h}` });
  t.pass(`page 1 acknowledged h=${h}, which includes the message`);

  // xmpp.js asks for an ack of its own stanzas 250 ms after sending; once the
  // server's <a/> is in, nothing of page 1's is waiting to be resent.
  await eventually(() => page1.xmpp.streamManagement.outbound_q.length === 0, { message: 'the server to acknowledge everything page 1 sent' });

  // What a page can keep across a reload (sessionStorage): strings and
  // numbers, nothing live. Besides smid and h, xmpp.js needs the count of its
  // own stanzas the server acknowledged (Converse.js persists the same three
  // numbers): on <resumed h/> it drops h - outbound entries from its outbound
  // queue, and a fresh instance with outbound 0 and an empty queue throws
  // there, abandons the resumed stream and tries to bind on it.
  const persisted = JSON.parse(JSON.stringify({
    smid: page1.xmpp.streamManagement.id,
    h: page1.xmpp.streamManagement.inbound,
    acked: page1.xmpp.streamManagement.outbound,
    ...creds,
  })) as { smid: string; h: number; acked: number; username: string; password: string; resource: string };
  const session = serverSession(server, page1.jid);
  t.ok(session, 'the server holds alice@localhost/reload');

  // The page unloads: no <close/>, and this instance never comes back.
  page1.xmpp.reconnect.stop();
  cutOff(page1);
  await serverHibernates(server, page1.jid);
  const missed = await bobSends(bob, page1.jid, 'missed', 3);

  // The reloaded page: a brand-new client that shares nothing with page 1.
  const page2 = createClient(t, server, { username: persisted.username, password: persisted.password, resource: persisted.resource });
  page2.xmpp.streamManagement.id = persisted.smid;
  page2.xmpp.streamManagement.inbound = persisted.h;
  page2.xmpp.streamManagement.outbound = persisted.acked;
  const resumed = new Promise<void>((resolve) => page2.xmpp.streamManagement.once('resumed', resolve));
  // xmpp.js 0.14's start() resolves on 'online', which a resumption does not
  // emit (it sets the status silently), so the 'resumed' event is awaited instead.
  page2.xmpp.start().catch((err: unknown) => { page2.errors.push(err as Error); });
  await within(resumed, () => `page 2's 'resumed' event; status '${page2.xmpp.status}', sent: ${page2.sent.map(String).join(' ')}; received: ${page2.received.map(String).join(' ')}; errors: ${page2.errors.map(String).join('; ')}`);

  const resume = sentResume(page2);
  t.equal(resume?.attrs.previd, persisted.smid, 'page 2 sent <resume/> with the persisted smid');
  t.equal(resume?.attrs.h, String(persisted.h), 'and the persisted h');
  t.ok(page2.received.some((el) => el.is('resumed', NS_SM) && el.attrs.previd === persisted.smid), 'the server answered <resumed previd/>');
  t.equal(page2.xmpp.status, 'online', 'page 2 is online');

  const got = await collect(page2, 0, 3, 'the messages sent during the reload');
  t.same(got, missed, 'page 2 got exactly the 3 messages it missed, in order, and not the one acknowledged before');
  for (const m of page2.inbox.items) t.equal(m.attrs.to, 'alice@localhost/reload', `${m.attrs.id} is addressed to the same full JID`);
  t.same(page2.sent.filter(isBindRequest).map(String), [], 'page 2 never sent a bind request');
  t.equal(serverSession(server, 'alice@localhost/reload'), session, 'the server session object is the one page 1 bound');

  await page2.xmpp.send(chat(bob.jid, 'after-reload', 'reloaded'));
  const reply = await bob.inbox.next('page 2\'s message');
  t.equal(reply.attrs.from, 'alice@localhost/reload', 'bob sees page 2 as the same full JID');
  t.same(page2.errors.map(String), [], 'xmpp.js emitted no errors on page 2');
});

t.test('a reload slower than the resume timeout gets <failed/>, binds afresh, and then receives the gap message exactly once from offline storage, with a delay stamp', async (t) => {
  const s = await withUsers(t, ['alice', 'bob'], { SM_RESUME_TIMEOUT: '1' });

  const creds: ClientOptions = { username: 'alice', password: 'alice-pw', resource: 'late' };
  const page1 = await login(t, s, creds);
  await smEnabled(page1);
  await becomeAvailable(page1);
  await eventually(() => page1.xmpp.streamManagement.outbound_q.length === 0, { message: 'the server to acknowledge everything page 1 sent' });
  const sm1 = page1.xmpp.streamManagement;
  const persisted = { smid: sm1.id, h: sm1.inbound, acked: sm1.outbound };
  const bob = await login(t, s, { username: 'bob', password: 'bob-pw', resource: 'sender-3' });

  page1.xmpp.reconnect.stop();
  cutOff(page1);
  await serverHibernates(s, page1.jid);
  const sentAt = Date.now();
  await bob.xmpp.send(chat(page1.jid, 'late-1', 'sent while the page was reloading'));
  await ping(bob);
  const routedBy = Date.now();
  // resume_timeout is 1 s: wait for the server to give the session up.
  await serverForgets(s, page1.jid);

  const page2 = createClient(t, s, creds);
  page2.xmpp.streamManagement.id = persisted.smid;
  page2.xmpp.streamManagement.inbound = persisted.h;
  page2.xmpp.streamManagement.outbound = persisted.acked;
  const jid = await within(page2.xmpp.start(), () => `page 2's fallback login; received: ${page2.received.map(String).join(' ')}`);
  const failed = page2.received.find((el) => el.is('failed', NS_SM));
  t.ok(failed, 'the server answered <resume/> with <failed/>');
  t.ok(failed?.getChild('item-not-found', 'urn:ietf:params:xml:ns:xmpp-stanzas'), 'with item-not-found');
  t.ok(page2.sent.some(isBindRequest), 'xmpp.js fell back to binding a resource');
  t.equal(jid.toString(), 'alice@localhost/late', 'and got the same resource back');
  await smEnabled(page2);

  await page2.xmpp.send(xml('presence'));
  let delivered: XmlEl | undefined;
  let waitError: unknown;
  try {
    delivered = await page2.inbox.next('the gap message, from offline storage, after initial presence');
  } catch (err) {
    waitError = err;
  }
  await sleep(SETTLE_MS);
  const bounces = bob.inbox.items.filter((m) => m.attrs.type === 'error');
  t.same(bounces.map(String), [], 'the message was not bounced back to bob');
  t.notOk(waitError, `page 2 received the message${waitError ? `: ${String(waitError)}` : ''}`);
  if (!delivered) return;
  t.equal(delivered.attrs.id, 'late-1', 'it is bob\'s message');
  t.equal(delivered.getChildText('body'), 'sent while the page was reloading');
  t.equal(delivered.attrs.from, bob.jid, 'from bob\'s full JID');
  assertStampedOnArrival(t, delivered, sentAt, routedBy);
  t.same(page2.inbox.items.map((m) => m.attrs.id), ['late-1'], 'exactly once');
});

t.test('when a reload is too slow but another tab is open, the stranded message reaches that tab once, stamped with when it first arrived', async (t) => {
  const s = await withUsers(t, ['alice', 'bob'], { SM_RESUME_TIMEOUT: '1' });
  const tab = await login(t, s, { username: 'alice', password: 'alice-pw', resource: 'closing' });
  await smEnabled(tab);
  await becomeAvailable(tab);
  const other = await login(t, s, { username: 'alice', password: 'alice-pw', resource: 'other-tab' });
  await becomeAvailable(other);
  const bob = await login(t, s, { username: 'bob', password: 'bob-pw', resource: 'sender-4' });
  const inboxAt = other.inbox.items.length;

  tab.xmpp.reconnect.stop();
  cutOff(tab);
  await serverHibernates(s, tab.jid);
  const sentAt = Date.now();
  await bob.xmpp.send(chat(tab.jid, 'stranded-1', 'for the tab that closed'));
  await ping(bob);
  const routedBy = Date.now();
  await serverForgets(s, tab.jid);

  const got = await collect(other, inboxAt, 1, 'the stranded message in the other tab');
  t.same(got, ['stranded-1'], 'the other tab got the stranded message exactly once');
  const m = other.inbox.items[inboxAt]!;
  t.equal(m.attrs.from, bob.jid, 'from bob\'s full JID');
  t.equal(m.getChildText('body'), 'for the tab that closed');
  assertStampedOnArrival(t, m, sentAt, routedBy);
  t.same(bob.inbox.items.filter((e) => e.attrs.type === 'error').map(String), [], 'nothing was bounced to bob');
});

/**
 * Offline delivery in pages (issue 10): however many messages are stored,
 * each arrives once, in order, at the next login — with real clients that
 * acknowledge (strophe.js, @xmpp/client) — and storage is empty after. A
 * session that ends halfway leaves exactly the rest, in storage only.
 */
import t, { type Test } from 'tap';
import { $pres } from 'strophe.js';
import { NS } from '../../src/xml/index.js';
import { withServer, withUsers } from '../helpers/server.js';
import { page, ids as domIds } from '../helpers/strophe-page.js';
import { SmPeer, chat } from '../helpers/sm-peer.js';
import { stanzaErrorCondition } from '../helpers/ws-client.js';
import { becomeAvailable, login, sleep, smEnabled } from '../helpers/xmppjs.js';
import { eventually, waitUntil } from '../helpers/eventually.js';

const SETTLE_MS = 500;
const WAIT_MS = 20_000;

const server = await withUsers(t, ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'henry', 'ivan', 'kim'], { ALLOW_INSECURE_PLAIN: 'true', SM_RESUME_TIMEOUT: '1' });

const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

/** Stores `n` chat messages for `user` as offline storage holds them. */
async function store(user: string, prefix: string, n: number): Promise<string[]> {
  const out = ids(prefix, n);
  for (const id of out) {
    const ok = await server.storage.offline.push('localhost', user, `<message xmlns="jabber:client" from="alice@localhost/desk" to="${user}@localhost" type="chat" id="${id}"><body>${id}</body></message>`, 100_000);
    if (!ok) throw new Error('offline store full');
  }
  return out;
}

async function storedIds(user: string): Promise<string[]> {
  return (await server.storage.offline.list('localhost', user)).map((m) => /id="([^"]+)"/.exec(m.stanza)?.[1] ?? '?');
}

async function storageEmpties(t: Test, user: string): Promise<void> {
  await waitUntil(async () => (await server.storage.offline.count('localhost', user)) === 0, { timeout: 2000 });
  t.equal(await server.storage.offline.count('localhost', user), 0, 'storage is empty after');
}

for (const n of [150, 1000]) {
  t.test(`${n} stored messages reach an @xmpp/client login once each, in order`, async (t) => {
    const user = n === 150 ? 'bob' : 'carol';
    const expected = await store(user, 'x', n);
    const bob = await login(t, server, { username: user, password: `${user}-pw`, resource: 'web' });
    await smEnabled(bob);
    await becomeAvailable(bob);
    await eventually(() => bob.inbox.items.length >= n, { timeout: WAIT_MS, message: `${n} messages` }).catch((err: unknown) => {
      throw new Error(`${String(err)}; got ${bob.inbox.items.length}`, { cause: err });
    });
    await sleep(SETTLE_MS);
    t.same(bob.inbox.items.map((m) => m.attrs.id), expected, 'every message once, in order');
    t.equal(bob.xmpp.status, 'online', 'the client is still online');
    t.same(bob.errors.map(String), [], 'no errors');
    await storageEmpties(t, user);
  });
}

t.test('150 stored messages reach a strophe.js login with stream management once each, in order', async (t) => {
  const expected = await store('dave', 's', 150);
  const p = page(t, server, new Map());
  await p.connect('dave@localhost/strophe', 'dave-pw');
  await eventually(() => p.conn.isStreamManagementEnabled(), { message: 'strophe.js to get <enabled/>' });
  p.conn.send($pres());
  await eventually(() => p.messages.length >= 150, { timeout: WAIT_MS, message: '150 messages' }).catch((err: unknown) => {
    throw new Error(`${String(err)}; got ${p.messages.length}`, { cause: err });
  });
  await sleep(SETTLE_MS);
  t.same(domIds(p.messages), expected, 'every message once, in order');
  t.ok(p.conn.connected, 'still connected');
  await storageEmpties(t, 'dave');
});

for (const resumable of [false, true]) {
  t.test(`a session that ends halfway through delivery (${resumable ? 'resume timeout' : 'not resumable'}) leaves exactly the rest, for the next login`, async (t) => {
    const user = resumable ? 'erin' : 'frank';
    await store(user, 'm', 150);
    const first = await SmPeer.login(server.wsUrl, user, `${user}-pw`, 'one', { autoAck: false, resume: resumable });
    first.c.send(`<presence xmlns='jabber:client'/>`);
    await eventually(() => first.messageIds().length === 50, { message: 'the first page' });
    await sleep(100);
    t.equal(first.messageIds().length, 50, 'one page at a time');
    first.ack(); // the whole first page (and the presence echo)
    await eventually(() => first.messageIds().length === 100, { message: 'the second page' });
    // h counts the stanzas since <enabled/>: up to m69 is 20 of the second page.
    const since = first.c.frames.slice(first.c.frames.findIndex((el) => el.is('enabled', NS.SM)) + 1);
    const stanzas = since.filter((el) => ['message', 'presence', 'iq'].includes(el.local));
    first.ack(stanzas.findIndex((el) => el.attr('id') === 'm69') + 1);
    await sleep(100);
    first.c.ws.terminate();
    await eventually(() => server.app.sessions.get('localhost', user, 'one') === undefined, { timeout: 5000, message: 'the session to end' });
    await sleep(200);
    t.same(await storedIds(user), ids('m', 150).slice(70), 'storage holds exactly the unacked rest, once, in order');

    const next = await SmPeer.login(server.wsUrl, user, `${user}-pw`, 'two', { autoAck: true });
    next.c.send(`<presence xmlns='jabber:client'/>`);
    await eventually(() => next.messageIds().length >= 80, { timeout: WAIT_MS, message: 'the rest' });
    await sleep(SETTLE_MS);
    t.same(next.messageIds(), ids('m', 150).slice(70), 'the next login gets the rest once, in order');
    await storageEmpties(t, user);
  });
}

t.test('a page acknowledged only by the <resume/> after a drop counts as delivered, and the rest follows on the resumed stream', async (t) => {
  const server30 = await withServer(t, { ALLOW_INSECURE_PLAIN: 'true', SM_RESUME_TIMEOUT: '30' }, server.storage);
  await store('ivan', 'r', 120);
  const first = await SmPeer.login(server30.wsUrl, 'ivan', 'ivan-pw', 'tab', { autoAck: false });
  first.c.send(`<presence xmlns='jabber:client'/>`);
  await eventually(() => first.messageIds().length === 50, { message: 'the first page' });
  await sleep(100);
  first.c.ws.terminate();
  await eventually(() => server30.app.sessions.get('localhost', 'ivan', 'tab')?.conn === null, { message: 'hibernation' });
  // The page handled before the drop is acknowledged by the h of <resume/> (XEP-0198 §5).
  const { peer, answer } = await SmPeer.resume(server30.wsUrl, 'ivan', 'ivan-pw', first.smid!, { autoAck: true, h: first.h });
  t.ok(answer.is('resumed', NS.SM), 'resumed');
  await eventually(() => peer.messageIds().length >= 70, { timeout: WAIT_MS, message: 'the other 70' }).catch((err: unknown) => {
    throw new Error(`${String(err)}; got ${peer.messageIds().join(', ')}`, { cause: err });
  });
  await sleep(SETTLE_MS);
  t.same([...first.messageIds(), ...peer.messageIds()], ids('r', 120), 'every message once, in order, across the drop');
  await storageEmpties(t, 'ivan');
});

// Every message for an account waits behind its offline delivery (order). A session that hibernates with a
// page unacked held that wait, and the account's other resources with it, for its whole resume time.
t.test('a session that hibernates with a stored page unacked holds nothing: another resource gets the rest and live messages at once, the resumed stream its page, each once', async (t) => {
  const server60 = await withServer(t, { ALLOW_INSECURE_PLAIN: 'true', SM_RESUME_TIMEOUT: '60' }, server.storage);
  const all = await store('kim', 'q', 70);
  const laptop = await SmPeer.login(server60.wsUrl, 'kim', 'kim-pw', 'laptop', { autoAck: false });
  laptop.c.send(`<presence xmlns='jabber:client'/>`);
  await eventually(() => laptop.messageIds().length === 50, { message: 'the first page, on the laptop' });
  laptop.c.ws.terminate();
  await eventually(() => server60.app.sessions.get('localhost', 'kim', 'laptop')?.conn === null, { message: 'the laptop hibernates' });

  const phone = await SmPeer.login(server60.wsUrl, 'kim', 'kim-pw', 'phone', { autoAck: true });
  t.teardown(() => phone.c.close());
  phone.c.send(`<presence xmlns='jabber:client'/>`);
  const alice = await SmPeer.login(server60.wsUrl, 'alice', 'alice-pw', 'live', { autoAck: true });
  t.teardown(() => alice.c.close());
  alice.c.send(chat('kim@localhost/phone', 'to-phone'));
  alice.c.send(chat('kim@localhost', 'to-kim'));
  await eventually(() => phone.messageIds().includes('to-kim'), { timeout: 5000, message: 'the live messages on the phone' }).catch(() => undefined);
  t.same(phone.messageIds(), [...all.slice(50), 'to-phone', 'to-kim'], 'the phone gets the rest of the backlog, then the live messages, without waiting for the laptop; not the laptop\'s page');

  const { peer, answer } = await SmPeer.resume(server60.wsUrl, 'kim', 'kim-pw', laptop.smid!, { autoAck: true, h: 0 });
  t.teardown(() => peer.c.close());
  t.ok(answer.is('resumed', NS.SM), 'the laptop resumed');
  await eventually(() => peer.messageIds().length >= 51, { timeout: WAIT_MS, message: 'the page again, and the bare message' });
  await sleep(SETTLE_MS);
  t.same(peer.messageIds(), [...all.slice(0, 50), 'to-kim'], 'the resumed stream: its unacked page, once, then what was sent to the account meanwhile');
  await storageEmpties(t, 'kim');
});

t.test('a client without stream management gets 150 stored messages in order, read from storage 50 at a time', async (t) => {
  const expected = await store('henry', 'n', 150);
  const offline = server.storage.offline;
  const list = offline.list.bind(offline);
  const limits: Array<number | undefined> = [];
  offline.list = async (host, username, p) => { limits.push(p?.limit); return list(host, username, p); };
  t.teardown(() => { offline.list = list; });
  const henry = await SmPeer.login(server.wsUrl, 'henry', 'henry-pw', 'plain', { autoAck: false, resume: false, enable: false });
  henry.c.send(`<presence xmlns='jabber:client'/>`);
  await eventually(() => henry.messageIds().length >= 150, { timeout: WAIT_MS, message: '150 messages' });
  await sleep(SETTLE_MS);
  t.same(henry.messageIds(), expected, 'every message once, in order');
  t.ok(limits.length >= 3 && limits.every((l) => l !== undefined && l <= 50), `every read is a page of at most 50 (limits: ${limits.join(', ')})`);
  await storageEmpties(t, 'henry');
});

t.test('a message arriving while the backlog is delivered comes after it', async (t) => {
  await store('grace', 'g', 120);
  const grace = await SmPeer.login(server.wsUrl, 'grace', 'grace-pw', 'web', { autoAck: false });
  grace.c.send(`<presence xmlns='jabber:client'/>`);
  await eventually(() => grace.messageIds().length === 50, { message: 'the first page' });
  const alice = await SmPeer.login(server.wsUrl, 'alice', 'alice-pw', 'live', { autoAck: true });
  alice.c.send(chat('grace@localhost', 'live'));
  await sleep(200);
  t.notOk(grace.messageIds().includes('live'), 'the live message waits behind the backlog');
  const ackEach = setInterval(() => grace.ack(), 50);
  t.teardown(() => clearInterval(ackEach));
  await eventually(() => grace.messageIds().length >= 121, { timeout: WAIT_MS, message: 'backlog and live message' });
  await sleep(SETTLE_MS);
  t.same(grace.messageIds(), [...ids('g', 120), 'live'], 'backlog in order, then the live message, each once');
  t.notOk(grace.c.frames.some((el) => el.local === 'error' && el.ns === NS.STREAM), 'no stream error');
});

t.test('messages waiting behind a delivery are bounded in bytes; beyond that the sender gets resource-constraint, the rest arrive after the backlog', async (t) => {
  const small = await withUsers(t, ['alice', 'jack'], { ALLOW_INSECURE_PLAIN: 'true', SM_PENDING_MAX_BYTES: '2048' });
  for (const id of ids('k', 60)) await small.storage.offline.push('localhost', 'jack', `<message xmlns="jabber:client" from="alice@localhost/desk" to="jack@localhost" type="chat" id="${id}"><body>${id}</body></message>`, 1000);
  const jack = await SmPeer.login(small.wsUrl, 'jack', 'jack-pw', 'web', { autoAck: false });
  jack.c.send(`<presence xmlns='jabber:client'/>`);
  await eventually(() => jack.messageIds().length === 50, { message: 'the first page' });
  const alice = await SmPeer.login(small.wsUrl, 'alice', 'alice-pw', 'live', { autoAck: true });
  const live = ids('w', 8);
  for (const id of live) alice.c.send(chat('jack@localhost', id, 'y'.repeat(500)));
  await eventually(() => alice.c.frames.filter((el) => el.local === 'message' && el.attr('type') === 'error').length > 0, { message: 'an error for the sender' });
  const ackEach = setInterval(() => jack.ack(), 50);
  t.teardown(() => clearInterval(ackEach));
  await sleep(SETTLE_MS * 2);
  const errors = alice.c.frames.filter((el) => el.local === 'message' && el.attr('type') === 'error');
  t.ok(errors.every((el) => stanzaErrorCondition(el) === 'resource-constraint'), 'the errors are resource-constraint');
  const held = live.length - errors.length;
  t.ok(held >= 1 && held < live.length, `some messages were held (${held}), the rest bounced`);
  t.same(errors.map((el) => el.attr('id')), live.slice(held), 'the bounced ones are the newest');
  t.same(jack.messageIds(), [...ids('k', 60), ...live.slice(0, held)], 'the backlog, then the held messages, in order, once');
});

/**
 * XEP-0198 across a node's death, then XEP-0160. When a node dies, the
 * survivor tells the contacts of its sessions that they went unavailable
 * (RFC 6121 §4.5.2, on their behalf), so what is sent to such an account
 * meanwhile goes by the rules for an account with no available resource:
 * offline storage. The session stays resumable (its queue is in Redis), and
 * a resumption on a survivor announces it available again. Before, what was
 * stored meanwhile stayed in storage: the resumed session never got it
 * (offline messages come with an initial presence, and a resumed session
 * sends none), so the user saw those messages only at the next fresh login.
 * Now a resumption that re-announces the session delivers them, as the
 * initial presence of a new login would.
 */
import t, { type Test } from 'tap';
import { NS } from '../../src/xml/index.js';
import { smKeys } from '../../src/cluster/sm-scripts.js';
import { clusterBackends, contactNodes, declaredDead, unackedStoredPage, type Gateway } from '../helpers/gateways.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { SmPeer, chat } from '../helpers/sm-peer.js';
import { eventually, sleep } from '../helpers/eventually.js';

const backends = clusterBackends(t);

/**
 * alice/phone (XEP-0198, resumable) on n1 and bob/desk on n2, contacts and available; then n1 dies
 * and bob is told alice went unavailable.
 */
async function aliceGoneWithN1(t: Test): Promise<{ n2: Gateway; bob: RawWsClient; alice: SmPeer; fromAlice: (type?: string) => () => boolean }> {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const [n1, n2] = await contactNodes(t, opts, ['n1', 'n2']);
  const bob = await RawWsClient.connect(n2.server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'desk');
  bob.send("<presence xmlns='jabber:client'/>");
  const alice = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => alice.c.close());
  alice.c.send("<presence xmlns='jabber:client'/>");
  const fromAlice = (type?: string) => () => bob.frames.some((el) => el.local === 'presence' && el.attr('from') === alice.jid && el.attr('type') === type);
  await eventually(fromAlice(), { message: 'bob sees alice available' });

  n1.crash();
  alice.c.ws.terminate();
  await declaredDead(n2, 'n1');
  await eventually(fromAlice('unavailable'), { timeout: 15_000, message: 'bob is told alice went unavailable' });
  return { n2, bob, alice, fromAlice };
}

t.test("messages stored while a dead node's session was unavailable come on its resumption on a survivor, once", async (t) => {
  const { n2, bob, alice, fromAlice } = await aliceGoneWithN1(t);
  // Bob writes to the full JID he knew and to the bare JID: alice has no available resource, so both are stored.
  bob.send(chat(alice.jid, 'gap-full'));
  bob.send(chat('alice@localhost', 'gap-bare'));
  await eventually(async () => (await n2.server.storage.offline.count('localhost', 'alice')) === 2, { message: 'both stored offline' });

  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: alice.h });
  t.teardown(() => peer.c.close());
  t.ok(answer.is('resumed', NS.SM), `alice resumed on n2 (${answer.toString()})`);
  const got = await eventually(() => peer.messageIds().length >= 2, { timeout: 10_000, message: 'the stored messages on the resumed stream' }).then(() => true, () => false);
  t.ok(got, 'the resumed session gets what was stored while it was unavailable');
  await sleep(300);
  t.same(peer.messageIds(), ['gap-full', 'gap-bare'], 'in order, once');
  const stamped = peer.c.frames.filter((el) => el.local === 'message').every((el) => el.getChild('delay', 'urn:xmpp:delay') !== undefined);
  t.ok(stamped, 'each with its XEP-0203 delay, as stored messages are');
  await eventually(async () => (await n2.server.storage.offline.count('localhost', 'alice')) === 0, { message: 'storage emptied' }).catch(() => undefined);
  t.equal(await n2.server.storage.offline.count('localhost', 'alice'), 0, 'and they leave storage once acknowledged: the next login does not get them again');
  await eventually(fromAlice(), { message: 'bob sees alice available again' });
});

/** Makes `gateway`'s reads of `user`'s roster (its account's load) or stored messages take `ms` longer, as a loaded database does. */
function slowRead(t: Test, gateway: Gateway, port: 'rosters' | 'offline', user: string, ms: number): void {
  const store = gateway.server.storage[port] as unknown as Record<'load' | 'list', (host: string, username: string, ...rest: unknown[]) => Promise<unknown>>;
  const method = port === 'rosters' ? 'load' : 'list';
  const read = store[method]!.bind(store);
  store[method] = async (host, username, ...rest) => {
    if (username === user) await sleep(ms);
    return read(host, username, ...rest);
  };
  t.teardown(() => { store[method] = read; });
}

t.test("what was stored while a dead node's session was unavailable comes on its resumption also when its account loads after the stored messages are read", async (t) => {
  const { n2, bob, alice } = await aliceGoneWithN1(t);
  bob.send(chat('alice@localhost', 'gap-bare'));
  await eventually(async () => (await n2.server.storage.offline.count('localhost', 'alice')) === 1, { message: 'stored offline' });

  // Before, the delivery began as the resumption was answered, before the session's account was in
  // memory: it read the stored message, failed on the account (not loaded), and left it in storage.
  slowRead(t, n2, 'rosters', 'alice', 500);
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: alice.h });
  t.teardown(() => peer.c.close());
  t.ok(answer.is('resumed', NS.SM), `alice resumed on n2 (${answer.toString()})`);
  // Sent while her account still loads: it follows the stored one (XEP-0160 order).
  bob.send(chat('alice@localhost', 'live'));
  const got = await eventually(() => peer.messageIds().includes('gap-bare'), { timeout: 10_000 }).then(() => true, () => false);
  t.ok(got, 'the resumed session gets what was stored while it was unavailable');
  await eventually(() => peer.messageIds().includes('live'), { timeout: 10_000, message: 'the live message' }).catch(() => undefined);
  t.same(peer.messageIds(), ['gap-bare', 'live'], 'the stored message first, then the one sent since');
  await eventually(async () => (await n2.server.storage.offline.count('localhost', 'alice')) === 0, { message: 'storage emptied' }).catch(() => undefined);
  t.equal(await n2.server.storage.offline.count('localhost', 'alice'), 0, 'and it leaves storage');
});

/**
 * A dead node's session that had a page of stored messages unacked: the page is in its XEP-0198
 * queue in Redis, and still in storage (a message leaves storage once acknowledged). Its
 * resumption on a survivor gets the queue (what <resume h/> does not acknowledge is resent), and
 * must not get the same messages again from storage.
 */
async function deadWithUnackedPage(t: Test, env: Record<string, string> = {}): Promise<{ n2: Gateway; alice: SmPeer }> {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', ...env });
  const [n1, n2] = await contactNodes(t, opts, ['n1', 'n2']);
  const alice = await unackedStoredPage(t, n1, 'alice', 'phone');
  // Its journal batch stored (the gate wrote the message only after it).
  await sleep(200);
  // kill -9: nothing n1 does from now on reaches the database (in process, its session's end would take the page out).
  const offline = n1.server.storage.offline;
  offline.remove = async () => { throw new Error('n1 was killed'); };
  n1.crash();
  alice.c.ws.terminate();
  await declaredDead(n2, 'n1');
  // The stored page read after the account is in memory (else, before the fix above, the delivery failed on it).
  slowRead(t, n2, 'offline', 'alice', 500);
  return { n2, alice };
}

t.test("a page of stored messages a dead node's session had not acked comes once on its resumption on a survivor (resent from its queue, not from storage too)", async (t) => {
  const { n2, alice } = await deadWithUnackedPage(t);
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: 0 });
  t.teardown(() => peer.c.close());
  t.ok(answer.is('resumed', NS.SM), `alice resumed on n2 (${answer.toString()})`);
  await eventually(() => peer.messageIds().includes('stored-1'), { timeout: 10_000, message: 'the unacked page on the resumed stream' });
  await sleep(1500);
  t.same(peer.messageIds(), ['stored-1'], 'the stored message comes once');
  await eventually(async () => (await n2.server.storage.offline.count('localhost', 'alice')) === 0, { message: 'storage emptied' }).catch(() => undefined);
  t.equal(await n2.server.storage.offline.count('localhost', 'alice'), 0, 'and it leaves storage: the next login does not get it again');
});

t.test("a stored message a dead node's session got (its <resume h/> says so) does not come again on its resumption on a survivor", async (t) => {
  const { n2, alice } = await deadWithUnackedPage(t);
  // Her <a/> never reached n1; her <resume/> acknowledges the message.
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: alice.h });
  t.teardown(() => peer.c.close());
  t.ok(answer.is('resumed', NS.SM), `alice resumed on n2 (${answer.toString()})`);
  await sleep(2000);
  t.same(peer.messageIds(), [], 'nothing she had comes again');
  await eventually(async () => (await n2.server.storage.offline.count('localhost', 'alice')) === 0, { message: 'storage emptied' }).catch(() => undefined);
  t.equal(await n2.server.storage.offline.count('localhost', 'alice'), 0, 'and it leaves storage: the next login does not get it again');
});

// Nobody resumes it: the survivor hands its queue over at the resume timeout (sm-orphans.ts), which routes the
// page to the account again, to offline storage (no resource is available). The page is still stored (a
// message leaves storage once acknowledged): before, it was stored a second time, and the next login got it twice.
t.test("a page of stored messages a dead node's session had not acked, handed over when nobody resumes it, is stored once", async (t) => {
  const { n2, alice } = await deadWithUnackedPage(t, { SM_RESUME_TIMEOUT: '2' });
  const { redis, prefix } = n2.cluster.node;
  await eventually(async () => (await redis.exists(smKeys(prefix).record(alice.smid!))) === 0, { timeout: 20_000, message: 'the session handed over' }).catch(() => undefined);
  await sleep(500);
  t.equal(await n2.server.storage.offline.count('localhost', 'alice'), 1, 'the stored message is stored once');
  const again = await SmPeer.login(n2.server.wsUrl, 'alice', 'alice-pw', 'laptop', { autoAck: true });
  t.teardown(() => again.c.close());
  again.c.send("<presence xmlns='jabber:client'/>");
  await eventually(() => again.messageIds().includes('stored-1'), { timeout: 10_000, message: 'the next login gets it' }).catch(() => undefined);
  await sleep(500);
  t.same(again.messageIds(), ['stored-1'], 'the next login gets it once');
});

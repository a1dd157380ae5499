/**
 * RFC 6120 §7.7.2.2 for a resumable session no live process holds (a dead
 * node's, adopted by a survivor; or one claimed from its owner whose
 * resumption then failed): once a fresh login binds its full JID, the older
 * session is the one that ends. A later <resume/> of it gets item-not-found
 * (XEP-0198 §5), the newer session is untouched, and the old session is
 * ended as a timed-out one is: its unacknowledged stanzas handed over once
 * (the newer session if it is available, as another resource of the
 * account; offline storage if not), its stale h kept. Before, the directory
 * no longer listed the old session, so the bind did not end it, and the
 * resumption took the resource back and ended the newer session with
 * conflict.
 */
import t, { type Test } from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { addUsers, clusterBackends, contactsOnTwoNodes, declaredDead, smPairOn, startGateway, type Gateway, type GatewayOptions } from '../helpers/gateways.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { SmPeer, chat, routed } from '../helpers/sm-peer.js';
import { eventually, sleep } from '../helpers/eventually.js';
import { connectRedis, keyPrefix, type Redis } from '../../src/cluster/redis.js';
import { REPLACED, TAKEOVER, smKeys } from '../../src/cluster/sm-scripts.js';
import { loseAnswers } from '../helpers/redis-faults.js';
import { baseline } from '../helpers/metrics-text.js';

const backends = clusterBackends(t);

const isStreamError = (el: XmlElement): boolean => el.local === 'error' && el.ns === NS.STREAM;
const messageIs = (id: string) => (el: XmlElement): boolean => el.local === 'message' && el.attr('id') === id;

async function look(t: Test, opts: GatewayOptions): Promise<Redis> {
  const redis = await connectRedis(opts.redisUrl, { warn: () => undefined }, 'look');
  t.teardown(() => redis.destroy());
  return redis;
}

/** Three nodes (n0 with `n0Opts`), bob/desk logged in on n1 and alice/phone's resumable session on n0 (acks by hand). */
async function aliceOnN0(t: Test, opts: GatewayOptions, n0Opts = opts): Promise<{ n0: Gateway; n1: Gateway; n2: Gateway; alice: SmPeer; bob: RawWsClient }> {
  const n0 = await startGateway(t, 'n0', n0Opts);
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  return { n0, n1, n2, ...await smPairOn(t, n0, n1) };
}

/**
 * n0 dies with alice/phone's resumable session (m1 sent to it, not
 * acknowledged; one stanza of hers handled, so its h is 1); a survivor
 * adopts it. Returns the adopter and the other survivor.
 */
async function deadNodeSession(t: Test, opts: GatewayOptions): Promise<{ alice: SmPeer; bob: RawWsClient; adopter: Gateway; other: Gateway; redis: Redis }> {
  const { n0, n1, n2, alice, bob } = await aliceOnN0(t, opts);
  await routed(alice.c, 'handled');
  // XEP-0198 §4: <a h/> answers once the ping is handled, and the h is stored before it.
  alice.c.send(`<r xmlns='${NS.SM}'/>`);
  await alice.c.until((el) => el.is('a', NS.SM));
  await eventually(() => n1.server.app.sessions.get('localhost', 'alice', 'phone'), { message: 'n1 sees alice' });
  bob.send(chat('alice@localhost/phone', 'm1'));
  await eventually(() => alice.h === 2, { message: 'alice got m1 (not acknowledged)' });
  const redis = await look(t, opts);
  const record = smKeys(keyPrefix(opts.redisUrl)).record(alice.smid!);
  await eventually(async () => (await redis.hGet(record, 'counter_in')) === '1', { message: 'her h is stored' });
  // n0 dies with alice's session on it; her client goes away too. The in-process crash leaves n0's
  // process running (its pub/sub connections, its timers): it would end its copy of alice's session
  // and store m1 offline itself, which a killed process cannot. Its database goes too.
  n0.crash();
  await n0.server.storage.close();
  alice.c.ws.terminate();
  // The adoption follows n0's death (a lease, then a survivor's heartbeat): its time counts from there.
  await declaredDead(n1, 'n0');
  let owner: string | undefined;
  await eventually(async () => { owner = (await redis.hGet(record, 'owner')) ?? undefined; return owner === 'n1' || owner === 'n2'; }, { timeout: 15_000, message: 'a survivor adopted the session' });
  return { alice, bob, redis, adopter: owner === 'n1' ? n1 : n2, other: owner === 'n1' ? n2 : n1 };
}

/** The old session's record, queue and set memberships are gone: nothing is left for a second hand-over. */
async function gone(t: Test, redis: Redis, opts: GatewayOptions, smid: string): Promise<void> {
  const keys = smKeys(keyPrefix(opts.redisUrl));
  await eventually(async () => (await redis.exists([keys.record(smid), keys.queue(smid)])) === 0, { message: 'the old session\'s record and queue are gone' });
  for (const id of ['n0', 'n1', 'n2']) t.notOk(await redis.sIsMember(keys.node(id), smid), `and it is out of ${id}'s set`);
}

/** A resumption of `smid` as alice that fails with item-not-found (XEP-0198 §5); its stream is closed at teardown. */
async function refusedResume(t: Test, url: string, smid: string, h: number): Promise<{ peer: SmPeer; answer: XmlElement }> {
  const { peer, answer } = await SmPeer.resume(url, 'alice', 'alice-pw', smid, { autoAck: true, h });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'failed', `the old session cannot be resumed (${answer.toString()})`);
  t.ok(answer.getChild('item-not-found', NS.STANZAS) !== undefined, 'item-not-found');
  return { peer, answer };
}

/** The newer session goes on: not closed, no stream error. */
function stillOpen(t: Test, c: RawWsClient): void {
  t.notOk(c.closed, 'the newer session is still open');
  t.notOk(c.frames.some(isStreamError), 'with no stream error');
}

/**
 * After a resumption of the old session `smid` failed: m1 is handed over once, stored offline on `store` (the fresh
 * session is not available), nothing of the old session is left, and the newer session is untouched and reachable:
 * it gets m2 from bob and nothing of the old queue.
 */
async function storedAndNewerGoesOn(t: Test, store: Gateway, o: { redis: Redis; opts: GatewayOptions; smid: string; bob: RawWsClient; fresh: SmPeer }): Promise<void> {
  await eventually(async () => (await store.server.storage.offline.count('localhost', 'alice')) === 1, { timeout: 10_000, message: 'm1 handed over (offline: the fresh session is not available)' });
  await gone(t, o.redis, o.opts, o.smid);
  o.bob.send(chat('alice@localhost/phone', 'm2'));
  await o.fresh.c.until(messageIs('m2'));
  await routed(o.fresh.c, 'ping');
  stillOpen(t, o.fresh.c);
  t.same(o.fresh.messageIds(), ['m2'], 'the newer session gets what is sent to the resource, and nothing of the old queue');
}

t.test('a dead node\'s session whose resource a fresh login bound cannot be resumed: the newer session stays, m1 is stored offline once, its h is kept', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', SM_STALE_H_ENABLED: 'true' });
  const { alice, bob, redis, adopter, other } = await deadNodeSession(t, opts);

  // A fresh login of the same full JID on the node that did not adopt it; it sends no presence.
  const fresh = await SmPeer.login(other.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => fresh.c.close());
  await eventually(() => adopter.server.app.sessions.get('localhost', 'alice', 'phone'), { message: 'the adopter sees the fresh session' });

  const delta = await baseline(adopter.server);
  const { peer, answer } = await refusedResume(t, adopter.server.wsUrl, alice.smid!, 0);
  t.equal(answer.attr('h'), '1', 'with the h the old session had (stale h)');
  // The same answer on the wire as an unknown smid's; the metric tells them apart.
  t.equal(await delta('xmpp_sm_resumes_total', { outcome: 'replaced', from: 'none', to: 'websocket' }), 1, 'counted as replaced');
  t.equal(await delta('xmpp_sm_resumes_total', { outcome: 'unknown-smid' }), 0, 'not as unknown-smid');
  await routed(peer.c, 'after-failed');
  t.same(peer.messageIds(), [], 'nothing of its queue comes back on the failed stream');

  await storedAndNewerGoesOn(t, other, { redis, opts, smid: alice.smid!, bob, fresh });
  // A second resumption finds nothing either, and nothing is handed over twice.
  const again = await SmPeer.resume(other.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: 0 });
  t.teardown(() => again.peer.c.close());
  t.ok(again.answer.is('failed', NS.SM) && again.answer.getChild('item-not-found', NS.STANZAS) !== undefined, 'a second resumption fails too');
  await sleep(300);
  t.equal(await other.server.storage.offline.count('localhost', 'alice'), 1, 'm1 stored offline once');
});

t.test('when the fresh login is available, the failed resumption hands the dead node\'s m1 to it, once, as to another resource of the account', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const { alice, redis, adopter, other } = await deadNodeSession(t, opts);
  const fresh = await SmPeer.login(other.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => fresh.c.close());
  fresh.c.send("<presence xmlns='jabber:client'/>");
  await eventually(() => adopter.server.app.sessions.get('localhost', 'alice', 'phone')?.presence, { message: 'the adopter sees the fresh session available' });

  await refusedResume(t, adopter.server.wsUrl, alice.smid!, 0);

  const m1 = await fresh.c.until(messageIs('m1'), 10_000);
  t.ok(m1.getChild('delay', NS.DELAY) !== undefined, 'm1 reaches the newer session, stamped as handed over (XEP-0203)');
  await gone(t, redis, opts, alice.smid!);
  await routed(fresh.c, 'ping');
  await sleep(300);
  await routed(fresh.c, 'ping2');
  t.same(fresh.messageIds(), ['m1'], 'once');
  t.equal(await other.server.storage.offline.count('localhost', 'alice'), 0, 'and not stored offline');
  stillOpen(t, fresh.c);
});

/**
 * alice/phone on n1, available to bob (on n2), m1 sent to her and not
 * acknowledged; a resumption on n2 claims the session and fails (h beyond
 * what was sent): n2 holds it with no session, n1 let it go.
 */
async function failedClaim(t: Test, opts: GatewayOptions, available?: (alice: SmPeer, n1: Gateway, n2: Gateway) => Promise<void>): Promise<{ alice: SmPeer; bob: RawWsClient; n1: Gateway; n2: Gateway }> {
  const { n1, n2, bob } = await contactsOnTwoNodes(t, opts);
  const alice = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: false });
  t.teardown(() => alice.c.close());
  alice.c.send("<presence xmlns='jabber:client'/>");
  await bob.until(fromPhone(alice.jid, undefined));
  await available?.(alice, n1, n2);
  bob.send(chat(alice.jid, 'm1'));
  await alice.c.until(messageIs('m1'));
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: 99 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'failed', 'the first resumption failed (handled-count-too-high)');
  await alice.c.until(isStreamError);
  await eventually(() => n1.server.app.sessions.get('localhost', 'alice', 'phone') === undefined, { message: 'n1 let the old session go' });
  return { alice, bob, n1, n2 };
}

const fromPhone = (jid: string, type: string | undefined) => (el: XmlElement): boolean => el.local === 'presence' && el.attr('from') === jid && el.attr('type') === type;

/** A fresh login of alice/phone on n1, available: bob sees its presence. */
async function availableFresh(t: Test, n1: Gateway, bob: RawWsClient, jid: string): Promise<SmPeer> {
  const fresh = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => fresh.c.close());
  fresh.c.send("<presence xmlns='jabber:client'/>");
  await bob.until(fromPhone(jid, undefined));
  return fresh;
}

/** m1 reached the newer session once, stamped as handed over; bob's last presence from alice/phone is its available. */
async function handedToFresh(t: Test, fresh: SmPeer, bob: RawWsClient, jid: string): Promise<void> {
  const m1 = await fresh.c.until(messageIs('m1'), 10_000);
  t.ok(m1.getChild('delay', NS.DELAY) !== undefined, 'm1 reaches the newer session, stamped as handed over');
  await sleep(300);
  await routed(bob, 'barrier');
  await routed(fresh.c, 'ping');
  t.same(fresh.messageIds(), ['m1'], 'once');
  const last = bob.frames.filter((el) => el.local === 'presence' && el.attr('from') === jid).at(-1);
  t.equal(last?.attr('type'), undefined, `bob's last presence from alice/phone is the newer session's available (${last?.toString()})`);
  t.notOk(fresh.c.closed, 'the newer session is still open');
}

t.test('a claimed session whose resumption failed cannot be resumed once a fresh login bound its resource: m1 stored offline once, its contacts told it ended', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const { alice, bob, n1, n2 } = await failedClaim(t, opts);
  const fresh = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => fresh.c.close());
  await eventually(() => n2.server.app.sessions.get('localhost', 'alice', 'phone'), { message: 'n2 sees the fresh session' });

  const delta = await baseline(n2.server);
  await refusedResume(t, n2.server.wsUrl, alice.smid!, 1);
  t.equal(await delta('xmpp_sm_resumes_total', { outcome: 'replaced', from: 'none', to: 'websocket' }), 1, 'counted as replaced, not unknown-smid');
  // RFC 6121 §4.5.2: the old session ended and the fresh one sent no presence: bob learns alice/phone is gone.
  await bob.until(fromPhone(alice.jid, 'unavailable'));
  t.pass('bob gets the old session\'s unavailable');
  await eventually(async () => (await n1.server.storage.offline.count('localhost', 'alice')) === 1, { timeout: 10_000, message: 'm1 handed over (offline)' });
  await routed(fresh.c, 'ping');
  stillOpen(t, fresh.c);
  await sleep(300);
  t.equal(await n1.server.storage.offline.count('localhost', 'alice'), 1, 'm1 stored offline once');
});

t.test('when that fresh login is available, the failed resumption hands m1 to it once, and bob is not told alice/phone went away', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const { alice, bob, n1, n2 } = await failedClaim(t, opts);
  const fresh = await availableFresh(t, n1, bob, alice.jid);

  await refusedResume(t, n2.server.wsUrl, alice.smid!, 1);
  await handedToFresh(t, fresh, bob, alice.jid);
  t.equal(await n1.server.storage.offline.count('localhost', 'alice'), 0, 'nothing stored offline');
});

t.test('a resumption retried at once after one that failed still resumes the session, the old owner\'s directory entry not yet gone', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const { alice, n2 } = await failedClaim(t, opts);
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: 1 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', `the retry resumes (${answer.toString()})`);
  await routed(peer.c, 'ping');
  t.same(peer.messageIds(), ['m1'], 'and gets m1 again');
});

t.test('a claimed session that times out while a newer available session holds its resource: m1 reaches that session once, and bob is not told alice/phone went away', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', SM_RESUME_TIMEOUT: '2' });
  const { alice, bob, n1, n2 } = await failedClaim(t, opts);
  const fresh = await availableFresh(t, n1, bob, alice.jid);
  // Nobody resumes the old session: n2 hands it over when its resume time runs out.
  await handedToFresh(t, fresh, bob, alice.jid);
  t.equal(await n2.server.storage.offline.count('localhost', 'alice'), 0, 'nothing stored offline');
});

/** `name` (not alice's contact) logged in on `on` as name/web; `from` sends it directed presence, which it gets. */
async function directedTo(t: Test, on: Gateway, name: string, from: RawWsClient, jid: string): Promise<RawWsClient> {
  await addUsers(on, [name]);
  const c = await RawWsClient.connect(on.server.wsUrl);
  t.teardown(() => c.close());
  await c.login(name, `${name}-pw`, 'web');
  from.send(`<presence xmlns='jabber:client' to='${name}@localhost/web'/>`);
  await c.until(fromPhone(jid, undefined));
  return c;
}

t.test('a claimed session that times out while a newer available session holds its resource: a non-contact it sent directed presence to is told it ended, one the newer session sent its own is not', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', SM_RESUME_TIMEOUT: '2' });
  let carol: RawWsClient | undefined, dave: RawWsClient | undefined;
  const { alice, bob, n1 } = await failedClaim(t, opts, async (alice, n1, n2) => {
    carol = await directedTo(t, n2, 'carol', alice.c, alice.jid);
    dave = await directedTo(t, n1, 'dave', alice.c, alice.jid);
  });
  const fresh = await availableFresh(t, n1, bob, alice.jid);
  fresh.c.send("<presence xmlns='jabber:client' to='dave@localhost/web'/>");
  await eventually(() => dave!.frames.filter(fromPhone(alice.jid, undefined)).length === 2, { message: 'dave gets the newer session\'s directed presence' });
  await handedToFresh(t, fresh, bob, alice.jid);
  // RFC 6121 §4.6.3: the old session's directed presence to carol ends with it; no presence of the newer reaches her.
  await carol!.until(fromPhone(alice.jid, 'unavailable'), 10_000);
  t.pass('carol is told alice/phone\'s old session ended');
  await routed(dave!, 'barrier');
  const last = dave!.frames.filter((el) => el.local === 'presence' && el.attr('from') === alice.jid).at(-1);
  t.equal(last?.attr('type'), undefined, `dave's last presence from alice/phone is the newer session's available (${last?.toString()})`);
});

t.test('a resumption that finds the session replaced and whose answer was lost (the script ran) still hands m1 over, once', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', SM_RESUME_TIMEOUT: '8' });
  const { alice, n1, n2 } = await failedClaim(t, opts);
  const fresh = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => fresh.c.close());
  await eventually(() => n2.server.app.sessions.get('localhost', 'alice', 'phone'), { message: 'n2 sees the fresh session' });
  // Node 2's connection drops right after Redis ran its TAKEOVER, which found the session replaced: its answer is lost.
  const { lost } = loseAnswers(n2.cluster.node.redis, TAKEOVER);
  const look1 = await look(t, opts);
  t.equal(await look1.exists(smKeys(keyPrefix(opts.redisUrl)).record(alice.smid!)), 1, 'the old session has not timed out yet');
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: 1 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'failed', 'node 2 could not resume the session');
  t.equal(lost.length, 1, 'the claim ran in Redis');
  t.ok(Array.isArray(lost[0]) && Number((lost[0] as unknown[])[0]) === REPLACED, 'and found the session replaced');
  await eventually(async () => (await n1.server.storage.offline.count('localhost', 'alice')) === 1, { timeout: 20_000, message: 'm1 handed over (offline: the fresh session is not available)' });
  await routed(fresh.c, 'ping');
  stillOpen(t, fresh.c);
  await sleep(300);
  t.equal(await n1.server.storage.offline.count('localhost', 'alice'), 1, 'm1 stored offline once');
});

/**
 * The same between a node's death and the end of its lease (here 20 s), before any survivor adopted the
 * session: nothing can end it on the bind (its node is gone), and its owner still looks alive. n0 holds
 * alice/phone (m1 not acknowledged) and dies; a fresh login binds alice/phone on n1; a resumption of the
 * old session must not take the resource back from it (RFC 6120 §7.7.2.2: the bind ended the older
 * session; XEP-0198 §5: item-not-found), on n1 itself or on n2 (the bind's directory write).
 */
for (const where of ['n1', 'n2'] as const) {
  t.test(`a resumption on ${where} between a node's death and the end of its lease does not end the newer session on n1: item-not-found, m1 handed over once`, async (t) => {
    const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
    const { n0, n1, n2, alice, bob } = await aliceOnN0(t, opts, { ...opts, env: { ...opts.env, CLUSTER_NODE_TTL: '20000' } });
    await eventually(() => n1.server.app.sessions.get('localhost', 'alice', 'phone'), { message: 'n1 sees alice' });
    bob.send(chat('alice@localhost/phone', 'm1'));
    await eventually(() => alice.h === 1, { message: 'alice got m1 (not acknowledged)' });
    const redis = await look(t, opts);
    const keys = smKeys(keyPrefix(opts.redisUrl));
    await eventually(async () => (await redis.lLen(keys.queue(alice.smid!))) === 1, { message: 'm1 is in her stored queue' });
    n0.crash();
    await n0.server.storage.close();
    alice.c.ws.terminate();

    const fresh = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
    t.teardown(() => fresh.c.close());
    const resumer = where === 'n1' ? n1 : n2;
    await eventually(async () => JSON.parse((await redis.hGet(`${keyPrefix(opts.redisUrl)}dir:alice@localhost`, 'phone')) ?? '{}').node === 'n1', { message: 'the fresh session\'s directory entry' });
    t.equal(await redis.exists(`${keyPrefix(opts.redisUrl)}node:n0`), 1, 'n0\'s lease has not run out');

    await refusedResume(t, resumer.server.wsUrl, alice.smid!, 0);
    await storedAndNewerGoesOn(t, n1, { redis, opts, smid: alice.smid!, bob, fresh });
    await sleep(300);
    t.equal(await n1.server.storage.offline.count('localhost', 'alice'), 1, 'm1 stored offline once');
  });
}

/**
 * XEP-0198 takeovers across nodes (SM_BACKEND=redis) when Redis fails in
 * the middle: in-process gateways on one Redis and one PostgreSQL, raw
 * WebSocket clients. A claim whose answer never came back (the connection
 * dropped after Redis ran the script) may have taken the session from its
 * old owner with no session on the new node to show for it: the session's
 * stanzas must still be handed over (offline) when its resume time runs
 * out, never left in Redis for good. Nor may a hand-over whose answer was
 * lost, or whose node died before it routed the queue, lose that queue.
 */
import t, { type Test } from 'tap';
import type { XmlElement } from '../../src/xml/index.js';
import { addUsers, clusterBackends, contactNodes, contactsOnTwoNodes, declaredDead, startGateway, type Gateway } from '../helpers/gateways.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { SmPeer, chat, routed } from '../helpers/sm-peer.js';
import { eventually, sleep } from '../helpers/eventually.js';
import { HANDED_OVER, TAKE, TAKEOVER, TAKE_ORPHAN, smKeys } from '../../src/cluster/sm-scripts.js';
import { connectRedis, keyPrefix } from '../../src/cluster/redis.js';
import type { ClusterNode } from '../../src/cluster/node.js';
import { createRedisSmRegistry } from '../../src/cluster/sm-registry.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import type { Session } from '../../src/xmpp/session.js';
import { failFirst, interceptEval, loseAnswers } from '../helpers/redis-faults.js';
import { deferred } from '../helpers/deferred.js';

const backends = clusterBackends(t);
const isMsg = (el: XmlElement): boolean => el.local === 'message';

/** Two gateways; alice on n1 with resumable SM acking nothing by herself, bob on n2, n2 seeing alice. */
async function aliceAndBob(t: Test, env: Record<string, string> = {}): Promise<{ n1: Gateway; n2: Gateway; alice: SmPeer; bob: RawWsClient; redisUrl: string }> {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', ...env });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice', 'bob']);
  const alice = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: false });
  t.teardown(() => alice.c.close());
  const bob = await RawWsClient.connect(n2.server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'desk');
  await eventually(() => n2.server.app.sessions.get('localhost', 'alice', 'phone'), { message: 'alice seen from n2' });
  return { n1, n2, alice, bob, redisUrl: opts.redisUrl };
}

/** aliceAndBob, and bob's m1, m2 and m3 delivered to alice, who acknowledges none of them. */
async function threeUnacked(t: Test, env: Record<string, string>): ReturnType<typeof aliceAndBob> {
  const both = await aliceAndBob(t, env);
  for (const id of ['m1', 'm2', 'm3']) both.bob.send(chat(both.alice.jid, id));
  await eventually(() => both.alice.h === 3, { message: 'alice got the three messages' });
  return both;
}

/** alice/phone logged in on `g` (XEP-0198) and available to bob; `fromAlice(type)` matches her presence of that type. */
async function aliceAvailableTo(t: Test, g: Gateway, bob: RawWsClient) {
  const alice = await SmPeer.login(g.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => alice.c.close());
  const fromAlice = (type: string | undefined) => (el: XmlElement): boolean => el.local === 'presence' && el.attr('from') === alice.jid && el.attr('type') === type;
  alice.c.send("<presence xmlns='jabber:client'/>");
  await bob.until(fromAlice(undefined));
  return { alice, fromAlice };
}

/** A resumption of alice's session on `g` that fails (XEP-0198 §4: h beyond what was sent) after its claim: `g` holds the session with none of its own, and alice's transport on its old node gets conflict. */
async function failedResumption(t: Test, g: Gateway, alice: SmPeer): Promise<void> {
  const { peer, answer } = await SmPeer.resume(g.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: 99 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'failed', 'the resumption failed');
  t.equal(streamErrorCondition(await alice.c.until((el) => el.local === 'error')), 'conflict', 'the old node let the session go: it was claimed');
}

/**
 * `g` dies right after Redis ran `script` (TAKE_ORPHAN: the record is `handing`; TAKEOVER: claimed), before it
 * routes or announces anything: an in-process crash, its answer lost. Returns whether the script has run.
 */
function dieAfter(g: Gateway, script: string): () => boolean {
  let ran = false;
  interceptEval(g.cluster.node.redis, script, async (run) => {
    await run();
    ran = true;
    g.crash();
    throw new Error('Socket closed unexpectedly');
  });
  return () => ran;
}

/**
 * Alice's session `smid` handed over to offline storage: its record and queue gone from Redis (nothing left
 * to hand over again), then `ids` delivered to a fresh login on `g`, each once and in order; returns them.
 */
async function handedOverOnce(t: Test, g: Gateway, redisUrl: string, smid: string, ids: readonly string[]): Promise<XmlElement[]> {
  await eventually(async () => (await g.server.storage.offline.count('localhost', 'alice')) >= ids.length,
    { timeout: 20_000, message: 'the unacknowledged messages handed over to offline storage' });
  const look = await connectRedis(redisUrl, { warn: () => undefined }, 'look');
  t.teardown(() => look.destroy());
  const keys = smKeys(keyPrefix(redisUrl));
  await eventually(async () => (await look.exists([keys.record(smid), keys.queue(smid)])) === 0, { timeout: 20_000, message: 'the hand-over finished: record and queue deleted' });
  const again = await RawWsClient.connect(g.server.wsUrl);
  t.teardown(() => again.close());
  await again.login('alice', 'alice-pw', 'again');
  again.send("<presence xmlns='jabber:client'/>");
  await again.until((el) => isMsg(el) && el.attr('id') === ids[ids.length - 1]);
  await routed(again, 'settle');
  const messages = again.frames.filter(isMsg);
  t.same(messages.map((el) => el.attr('id')), ids, 'each once, in order');
  // Removed from storage once written to the client (offline/delivery.ts): no copy left behind.
  await eventually(async () => (await g.server.storage.offline.count('localhost', 'alice')) === 0, { message: 'nothing else stored offline' });
  t.pass('nothing else stored offline');
  return messages;
}

t.test('a takeover whose answer was lost (the script ran) still hands the session\'s queue over when its resume time runs out', async (t) => {
  const { n1, n2, alice, redisUrl } = await threeUnacked(t, { SM_RESUME_TIMEOUT: '2' });
  // Node 2's connection drops right after Redis ran its TAKEOVER: the claim happened, its answer is lost.
  const { lost } = loseAnswers(n2.cluster.node.redis, TAKEOVER);
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'failed', 'node 2 could not say it resumed the session');
  t.equal(lost.length, 1, 'the claim ran in Redis');
  const error = await alice.c.until((el) => el.local === 'error');
  t.equal(streamErrorCondition(error), 'conflict', 'node 1 let the session go: it was claimed');
  const messages = await handedOverOnce(t, n1, redisUrl, alice.smid!, ['m1', 'm2', 'm3']);
  // Its owner did not go down (it let the session go): the stamp's note says what did happen.
  const notes = messages.map((el) => el.getChildren('delay', 'urn:xmpp:delay').map((d) => d.text()).join(' | '));
  t.same(notes, Array(3).fill('resent: not acknowledged by the client'), 'stamped as not acknowledged, not as a server gone down');
});

t.test('a timed-out session\'s hand-over whose answer was lost (the script ran) still hands its queue over, each stanza once', async (t) => {
  const { n1, n2, alice, redisUrl } = await threeUnacked(t, { SM_RESUME_TIMEOUT: '1' });
  // Node 2 hands the session over when its resume time runs out: Redis runs TAKE_ORPHAN, the answer is lost.
  const { lost } = loseAnswers(n2.cluster.node.redis, TAKE_ORPHAN);
  await failedResumption(t, n2, alice);
  await eventually(() => lost.length === 1, { message: 'the hand-over ran in Redis, its answer lost' });
  // The session ended there: a resumption now finds nothing to resume (it would get the queue handed over too).
  const { peer, answer } = await SmPeer.resume(n1.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: 3 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'failed', 'a resumption after the hand-over began fails');
  t.ok(answer.getChild('item-not-found', 'urn:ietf:params:xml:ns:xmpp-stanzas'), 'item-not-found');
  await handedOverOnce(t, n1, redisUrl, alice.smid!, ['m1', 'm2', 'm3']);
});

t.test('a hand-over whose final delete went unanswered (it never ran) tries the delete again, not the hand-over', async (t) => {
  const { n1, n2, alice, redisUrl } = await threeUnacked(t, { SM_RESUME_TIMEOUT: '1' });
  const deletes = failFirst(n2.cluster.node.redis, HANDED_OVER);
  await failedResumption(t, n2, alice);
  await handedOverOnce(t, n1, redisUrl, alice.smid!, ['m1', 'm2', 'm3']);
  t.equal(deletes.calls, 2, 'the delete was sent again once');
});

t.test('a node that dies between its hand-over script and the hand-over itself leaves the session to a survivor, which hands it over once', async (t) => {
  const { n1, n2, alice, redisUrl } = await threeUnacked(t, { SM_RESUME_TIMEOUT: '1' });
  // Node 2's TAKE_ORPHAN runs in Redis, then node 2 dies before it routes anything.
  const ran = dieAfter(n2, TAKE_ORPHAN);
  await failedResumption(t, n2, alice);
  // The survivor's hand-over follows node 2's death (a lease, then a heartbeat): its time counts from there.
  await eventually(() => ran, { message: 'node 2 ran its hand-over script, then died' });
  await declaredDead(n1, 'n2');
  await handedOverOnce(t, n1, redisUrl, alice.smid!, ['m1', 'm2', 'm3']);
  t.ok(ran(), 'node 2\'s hand-over script ran before it died');
});

t.test('a local session\'s end whose TAKE answer was lost (the script ran) hands its queue over from memory, once', async (t) => {
  const { n1, alice, redisUrl } = await threeUnacked(t, { SM_RESUME_TIMEOUT: '1' });
  const { lost } = loseAnswers(n1.cluster.node.redis, TAKE);
  // Alice's connection goes; her session times out on node 1, which ends it with TAKE.
  alice.c.ws.terminate();
  await handedOverOnce(t, n1, redisUrl, alice.smid!, ['m1', 'm2', 'm3']);
  t.equal(lost.length, 1, 'TAKE ran in Redis, its answer lost');
});

t.test('a local session\'s end whose TAKE went unanswered (it never ran) deletes the record later: a resumption does not get the queue again', async (t) => {
  const { n1, n2, alice, redisUrl } = await threeUnacked(t, { SM_RESUME_TIMEOUT: '1' });
  const takes = failFirst(n1.cluster.node.redis, TAKE);
  alice.c.ws.terminate();
  await handedOverOnce(t, n1, redisUrl, alice.smid!, ['m1', 'm2', 'm3']);
  t.equal(takes.calls, 2, 'TAKE was sent again once');
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: 0 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'failed', 'the session ended: a resumption fails instead of resending what was handed over');
});

t.test('a journal write lost with its connection (Redis restarting) costs no stanza at a later takeover', async (t) => {
  const { n1, n2, alice, bob, redisUrl } = await aliceAndBob(t);
  // The script that stores m2 in alice's queue is lost with node 1's connection (it never ran).
  const redis = n1.cluster.node.redis;
  const evalScript = redis.eval.bind(redis);
  let lost = 0;
  Object.defineProperty(redis, 'eval', {
    configurable: true,
    value: async (...args: Parameters<typeof evalScript>) => {
      const params = args[1] as { arguments?: string[] } | undefined;
      if (lost === 0 && params?.arguments?.some((a) => a.includes("id='m2'") || a.includes('id="m2"'))) {
        lost++;
        throw new Error('Socket closed unexpectedly');
      }
      return evalScript(...args);
    },
  });
  for (const [i, id] of ['m1', 'm2', 'm3'].entries()) {
    bob.send(chat(alice.jid, id));
    await eventually(() => alice.h === i + 1, { message: `alice got ${id}` });
  }
  t.equal(lost, 1, 'the write of m2 was lost');
  t.same(alice.messageIds(), ['m1', 'm2', 'm3'], 'node 1 delivered all three');
  // Alice handled m1 only; the ack reaches Redis.
  alice.ack(1);
  const look = await connectRedis(redisUrl, { warn: () => undefined }, 'look');
  t.teardown(() => look.destroy());
  await eventually(async () => (await look.hGet(smKeys(keyPrefix(redisUrl)).record(alice.smid!), 'counter_out')) === '1', { message: 'the ack stored' });
  alice.c.ws.terminate();
  await alice.c.waitClosed();
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: 1 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', 'resumed on node 2');
  await routed(peer.c, 'after');
  t.same(peer.messageIds(), ['m2', 'm3'], 'every unacknowledged stanza, in order, once');
});

t.test('a dead node\'s session resumed on a node other than the survivor that adopted it is announced available again', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const [n0, n1, n2] = await contactNodes(t, opts, ['n0', 'n1', 'n2']);
  const alice = await SmPeer.login(n0.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => alice.c.close());
  const fromAlice = (type: string | undefined) => (el: XmlElement): boolean => el.local === 'presence' && el.attr('from') === alice.jid && el.attr('type') === type;
  // Bob (on n1 and n2: a resource on each, so whichever node resumes alice has one of his sessions elsewhere).
  const bobs = [];
  for (const [g, r] of [[n1, 'b1'], [n2, 'b2']] as const) {
    const bob = await RawWsClient.connect(g.server.wsUrl);
    t.teardown(() => bob.close());
    await bob.login('bob', 'bob-pw', r);
    bob.send("<presence xmlns='jabber:client'/>");
    bobs.push(bob);
  }
  await eventually(() => n0.server.app.sessions.get('localhost', 'bob', 'b1')?.presence && n0.server.app.sessions.get('localhost', 'bob', 'b2')?.presence, { message: 'n0 sees bob available' });
  alice.c.send("<presence xmlns='jabber:client'/>");
  for (const bob of bobs) await bob.until(fromAlice(undefined));
  // n0 dies (its Redis connection goes); its client goes away too.
  n0.crash();
  alice.c.ws.terminate();
  await declaredDead(n1, 'n0');
  for (const bob of bobs) await bob.until(fromAlice('unavailable'), 15_000);
  // One survivor adopted the session (claimed it, owner now); alice comes back on the other node.
  const look = await connectRedis(opts.redisUrl, { warn: () => undefined }, 'look');
  t.teardown(() => look.destroy());
  const record = smKeys(keyPrefix(opts.redisUrl)).record(alice.smid!);
  let owner: string | undefined;
  await eventually(async () => { owner = (await look.hGet(record, 'owner')) ?? undefined; return owner === 'n1' || owner === 'n2'; }, { timeout: 15_000, message: 'a survivor adopted the session' });
  const other = owner === 'n1' ? n2 : n1;
  const { peer, answer } = await SmPeer.resume(other.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: alice.h });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', `resumed on the node that did not adopt it (${answer.toString()})`);
  for (const bob of bobs) {
    const frames = bob.frames;
    const gone = frames.findIndex(fromAlice('unavailable'));
    await bob.until((el) => fromAlice(undefined)(el) && frames.indexOf(el) > gone, 5000);
  }
  t.pass('bob sees alice available again after her unavailable');
});

t.test('a session claimed from its live owner whose resumption then failed tells its contacts it is gone when it is handed over', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', SM_RESUME_TIMEOUT: '1' });
  const { n1, n2, bob } = await contactsOnTwoNodes(t, opts);
  const { alice, fromAlice } = await aliceAvailableTo(t, n1, bob);
  // A resumption on node 2 claims the session, then fails (XEP-0198 §4: h beyond what was sent).
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: 99 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'failed', 'the resumption failed');
  t.ok(answer.getChild('handled-count-too-high', 'urn:xmpp:sm:3'), 'handled-count-too-high');
  await alice.c.until((el) => el.local === 'error');
  // Nobody resumes it: when its resume time has run out, it is handed over, and alice is gone.
  await bob.until(fromAlice('unavailable'), 10_000);
  t.pass('bob gets alice\'s unavailable');
});

t.test('two resumptions of one session on the same node at once: the later one has it with its queue, nothing is handed over twice', async (t) => {
  const { n2, alice, bob } = await aliceAndBob(t);
  for (const id of ['m1', 'm2']) bob.send(chat(alice.jid, id));
  await eventually(() => alice.h === 2, { message: 'alice got the two messages' });
  // Node 2's claims: the first is answered once the second was sent; the second runs once the first resumed.
  const redis = n2.cluster.node.redis;
  const evalScript = redis.eval.bind(redis);
  const { promise: second, resolve: secondSent } = deferred();
  const { promise: first, resolve: firstResumed } = deferred();
  const { promise: firstClaim, resolve: firstClaimed } = deferred();
  let claims = 0;
  Object.defineProperty(redis, 'eval', {
    configurable: true,
    value: async (...args: Parameters<typeof evalScript>) => {
      if (args[0] !== TAKEOVER) return evalScript(...args);
      if (++claims === 1) {
        firstClaimed();
        await second;
        return evalScript(...args);
      }
      secondSent();
      await first;
      return evalScript(...args);
    },
  });
  // The second client starts once the first one's claim is in: two logins started together may claim in either
  // order, and the second claim (held until the first client resumed) would then belong to the first client: deadlock.
  const one = SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false });
  await firstClaim;
  const two = SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false });
  const a = await one;
  t.teardown(() => a.peer.c.close());
  t.equal(a.answer.local, 'resumed', 'the first resumed');
  firstResumed();
  const b = await two;
  t.teardown(() => b.peer.c.close());
  t.equal(b.answer.local, 'resumed', 'the second resumed');
  await routed(b.peer.c, 'after');
  t.same(b.peer.messageIds(), ['m1', 'm2'], 'with the queue');
  const error = await a.peer.c.until((el) => el.local === 'error');
  t.equal(streamErrorCondition(error), 'conflict', 'the first one\'s transport gets conflict');
  await routed(bob, 'settle');
  await sleep(300);
  t.equal(await n2.server.storage.offline.count('localhost', 'alice'), 0, 'the first one\'s end handed nothing over: the queue is the second\'s');
});

t.test('a takeover whose answer comes after another node\'s later claim was announced builds nothing: one owner', async (t) => {
  const opts = await backends.options();
  const url = opts.redisUrl;
  const prefix = keyPrefix(url);
  const log = { info: () => undefined, warn: () => undefined, debug: () => undefined };
  const registryOf = async (id: string) => {
    const redis = await connectRedis(url, log, id);
    t.teardown(() => redis.destroy());
    const node = { id, prefix, redis, alive: async () => true } as unknown as ClusterNode;
    return { redis, registry: createRedisSmRegistry({ node, stale: createMemoryStorage().smState, log, marginSeconds: 60, release: () => undefined, replaced: async () => undefined }) };
  };
  const owner = await registryOf('n1');
  const session = { host: 'localhost', username: 'alice', resource: 'phone', anonymous: false, presence: undefined, priority: 0, interested: false, carbons: false } as unknown as Session;
  owner.registry.register('s1', session);
  owner.registry.journal.open('s1', session, 60);
  await owner.redis.ping();
  const claimant = { host: 'localhost', username: 'alice', anonymous: false };
  const n2 = await registryOf('n2');
  const n3 = await registryOf('n3');
  // n2's claim runs first; n3's runs next, and its sm-fenced notice reaches n2 before n2's own answer.
  const evalScript = n2.redis.eval.bind(n2.redis);
  let later: unknown;
  Object.defineProperty(n2.redis, 'eval', {
    configurable: true,
    value: async (...args: Parameters<typeof evalScript>) => {
      const reply = await evalScript(...args);
      if (args[0] === TAKEOVER && later === undefined) {
        later = await n3.registry.journal.claim('s1', claimant);
        n2.registry.fenced('s1', (later as { record: { epoch: number } }).record.epoch);
      }
      return reply;
    },
  });
  const claimed = await n2.registry.journal.claim('s1', claimant);
  t.equal((later as { record: { epoch: number } }).record.epoch, 3, 'n3 claimed the session after n2');
  t.equal(claimed, 'unknown', 'n2 does not build the session: it is n3\'s');
  t.equal(n2.registry.size, 0, 'n2 holds nothing');
});

/**
 * RFC 6121 §4.5.2: a session that ends is announced unavailable. alice/phone (on n1, available to bob on n2)
 * is claimed on n3, whose resumption fails: n3 holds it with no session, its presence never ended. n3 dies
 * before it announced the end (`handing`: in the middle of handing it over; or still waiting out its resume
 * time); the survivor that adopts it hands it over and must tell bob, since nobody else did (n3 held no
 * directory entry of it, so n3's death announced nothing).
 */
for (const { name, handing } of [{ name: 'in the middle of handing it over', handing: true }, { name: 'while it waited out its resume time', handing: false }]) {
  t.test(`a claimed session whose resumption failed, its holder dying ${name}: the survivor that hands it over tells its contacts it is gone`, async (t) => {
    const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', SM_RESUME_TIMEOUT: handing ? '1' : '4' });
    const { n1, bob } = await contactsOnTwoNodes(t, opts);
    const n3 = await startGateway(t, 'n3', opts);
    const { alice, fromAlice } = await aliceAvailableTo(t, n1, bob);
    // n3's TAKE_ORPHAN runs in Redis (the record is `handing`), then n3 dies before it routes or announces anything.
    const ran = handing ? dieAfter(n3, TAKE_ORPHAN) : () => false;
    await failedResumption(t, n3, alice);
    if (handing) await eventually(() => ran(), { message: 'n3 ran its hand-over script, then died' });
    else {
      const look = await connectRedis(opts.redisUrl, { warn: () => undefined }, 'look');
      t.teardown(() => look.destroy());
      const record = smKeys(keyPrefix(opts.redisUrl)).record(alice.smid!);
      await eventually(async () => (await look.hGet(record, 'orphan')) === '1', { message: 'n3 holds it with no session' });
      n3.crash();
    }
    // What follows n3's death (a lease, then a survivor's heartbeat) gets its time from there.
    await declaredDead(n1, 'n3');
    await bob.until(fromAlice('unavailable'), 15_000);
    t.pass('bob gets alice/phone\'s unavailable');
  });
}

/**
 * RFC 6121 §4.5.2 in the window between a claim and the session's bind on the claimer: alice/phone (on n1,
 * available to bob on n2) is claimed on n3 (TAKEOVER ran in Redis: n1 lets the session go, keeping its
 * directory entry only for n3's bind to replace, and announcing nothing), and n3 dies right then, before it
 * held the session in any way (no session, no directory entry, no `orphan` mark). n3's death ends no entry
 * of alice/phone, so the survivor that adopts the session is the only one left to tell bob she is gone.
 * Before, its CLAIM took the record for one whose dead owner's entry had announced that (`ended`), and bob saw
 * alice online for good.
 */
t.test('a node that dies right after its claim, before it held the session, leaves the unavailable presence to the survivor', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', SM_RESUME_TIMEOUT: '1' });
  const { n1, bob } = await contactsOnTwoNodes(t, opts);
  const n3 = await startGateway(t, 'n3', opts);
  const { alice, fromAlice } = await aliceAvailableTo(t, n1, bob);
  const ran = dieAfter(n3, TAKEOVER);
  const { peer, answer } = await SmPeer.resume(n3.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'failed', 'n3 could not resume the session');
  t.ok(ran(), 'n3\'s claim ran in Redis before it died');
  t.equal(streamErrorCondition(await alice.c.until((el) => el.local === 'error')), 'conflict', 'n1 let the session go: it was claimed');
  await declaredDead(n1, 'n3');
  await bob.until(fromAlice('unavailable'), 15_000);
  t.pass('bob gets alice/phone\'s unavailable');
});

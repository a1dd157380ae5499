/**
 * A node that is leaving (a rolling restart's SIGTERM: App.leave, not ready,
 * waiting for its dropped clients to resume elsewhere) declares no other
 * node dead, so it adopts no dead node's resumable sessions: it would only
 * have to leave them in Redis again for a survivor of its own departure
 * (sm-orphans.ts release). A node that stays adopts them, also those of a
 * node the leaving one declared dead just before its SIGTERM: that death is
 * given back for a node that stays to declare. In-process
 * gateways on one Redis and one PostgreSQL.
 */
import t, { type Test } from 'tap';
import { addUsers, clusterBackends, startGateway } from '../helpers/gateways.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { SmPeer, chat, routed } from '../helpers/sm-peer.js';
import { eventually, sleep } from '../helpers/eventually.js';
import { DECLARE_DEAD } from '../../src/cluster/node.js';
import { connectRedis, keyPrefix } from '../../src/cluster/redis.js';
import { CLAIM, smKeys } from '../../src/cluster/sm-scripts.js';
import { interceptEval } from '../helpers/redis-faults.js';

const backends = clusterBackends(t);

t.test('a leaving node leaves a dead node\'s sessions to a node that stays', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', CLUSTER_DRAIN_TIMEOUT: '8', SHUTDOWN_TIMEOUT: '20' });
  const n1 = await startGateway(t, 'n1', opts);
  const n3 = await startGateway(t, 'n3', opts);
  await addUsers(n1, ['alice', 'bob']);
  // Alice's resumable session on n3, the node that dies.
  const alice = await SmPeer.login(n3.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => alice.c.close());
  // Bob's on n1, which keeps n1 in its drain (waiting for bob to resume elsewhere) while it leaves.
  const bob = await SmPeer.login(n1.server.wsUrl, 'bob', 'bob-pw', 'phone', { autoAck: true });
  t.teardown(() => bob.c.close());
  let claims = 0;
  interceptEval(n1.cluster.node.redis, CLAIM, (run) => { claims++; return run(); });
  const leaving = n1.server.app.leave();
  await bob.c.waitClosed();
  // n3 dies while n1 is leaving; n2, a node that stays, comes up.
  n3.crash();
  alice.c.ws.terminate();
  const n2 = await startGateway(t, 'n2', opts);
  const look = await connectRedis(opts.redisUrl, { warn: () => undefined }, 'look');
  t.teardown(() => look.destroy());
  const record = smKeys(keyPrefix(opts.redisUrl)).record(alice.smid!);
  await eventually(async () => (await look.hGet(record, 'owner')) === 'n2', { timeout: 20_000, message: 'n2 adopted alice\'s session' });
  t.equal(claims, 0, 'the leaving node adopted none of the dead node\'s sessions');
  // Bob resumes on n2: n1's drain ends and it leaves.
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'bob', 'bob-pw', bob.smid!, { autoAck: true });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', 'bob resumed on n2');
  await leaving;
  // And alice resumes there too.
  const again = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: alice.h });
  t.teardown(() => again.peer.c.close());
  t.equal(again.answer.local, 'resumed', 'alice resumed on n2');
});

/**
 * n1, n2 and n3 with carol on n2, bob (resumable) on n1 to keep n1 in its drain while it leaves, and alice's
 * resumable session on n3, the node that dies, holding a1..a3 she has not acknowledged.
 */
async function aliceHoldingOnN3(t: Test, env: Record<string, string> = {}) {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', CLUSTER_DRAIN_TIMEOUT: '8', SHUTDOWN_TIMEOUT: '20', ...env });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  const n3 = await startGateway(t, 'n3', opts);
  await addUsers(n1, ['alice', 'bob', 'carol']);
  const carol = await RawWsClient.connect(n2.server.wsUrl);
  t.teardown(() => carol.close());
  await carol.login('carol', 'carol-pw', 'desk');
  const alice = await SmPeer.login(n3.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: false });
  t.teardown(() => alice.c.close());
  await eventually(() => n2.server.app.sessions.get('localhost', 'alice', 'phone'), { message: 'n2 sees alice' });
  for (const id of ['a1', 'a2', 'a3']) carol.send(chat(alice.jid, id));
  await eventually(() => alice.h === 3, { message: 'alice got a1..a3' });
  const bob = await SmPeer.login(n1.server.wsUrl, 'bob', 'bob-pw', 'phone', { autoAck: true });
  t.teardown(() => bob.c.close());
  return { opts, n1, n2, n3, alice, bob };
}

t.test('a node that declared another dead just before its SIGTERM gives that death back: a node that stays takes the sessions over, each stanza once', async (t) => {
  const { opts, n1, n2, n3, alice, bob } = await aliceHoldingOnN3(t);

  // n1 is the one to declare n3 dead (n2 is held back until it has), and its SIGTERM comes right after.
  let declaredByN1 = false;
  let leaving: Promise<void> | undefined;
  interceptEval(n1.cluster.node.redis, DECLARE_DEAD, async (run) => {
    const reply = await run();
    if (Number(reply) === 1 && !leaving) {
      declaredByN1 = true;
      leaving = n1.server.app.leave();
    }
    return reply;
  });
  interceptEval(n2.cluster.node.redis, DECLARE_DEAD, async (run) => (declaredByN1 ? run() : 0));
  let claims = 0;
  interceptEval(n1.cluster.node.redis, CLAIM, (run) => { claims++; return run(); });
  n3.crash();
  alice.c.ws.terminate();

  const look = await connectRedis(opts.redisUrl, { warn: () => undefined }, 'look');
  t.teardown(() => look.destroy());
  const record = smKeys(keyPrefix(opts.redisUrl)).record(alice.smid!);
  await eventually(async () => (await look.hGet(record, 'owner')) === 'n2', { timeout: 30_000, message: "n2 took alice's session over" });
  t.ok(declaredByN1, 'n1 declared n3 dead');
  t.equal(claims, 0, 'n1, leaving, adopted none of its sessions');
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: 0 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', `alice resumed on n2 (${answer.toString()})`);
  await routed(peer.c, 'after');
  t.same(peer.messageIds(), ['a1', 'a2', 'a3'], 'with every unacknowledged message, once');
  // Bob resumes on n2: n1's drain ends and it leaves.
  const again = await SmPeer.resume(n2.server.wsUrl, 'bob', 'bob-pw', bob.smid!, { autoAck: true, h: bob.h });
  t.teardown(() => again.peer.c.close());
  t.equal(again.answer.local, 'resumed', 'bob resumed on n2');
  await leaving;
  await sleep(1500);
  t.same(peer.messageIds(), ['a1', 'a2', 'a3'], 'nothing twice after n1 left');
  t.equal(await n2.server.storage.offline.count('localhost', 'alice'), 0, 'and nothing handed to offline storage');
});

t.test('a dead node restarted under its NODE_ID before the SIGTERM of the node that declared its death (the give-back finds it a member already): its new run takes its old run\'s sessions back, and one nobody resumes is handed over at its timeout, each stanza once', async (t) => {
  // Alice's session is of n3's first run; she never resumes.
  const { opts, n1, n2, n3, alice, bob } = await aliceHoldingOnN3(t, { SM_RESUME_TIMEOUT: '3' });

  // n1 declares n3 dead; n3 comes back under the same NODE_ID before n1's handlers start (a member again:
  // n1's give-back changes nothing), and n1's SIGTERM comes right then. (A review feared the old run's
  // session would then be nobody's: the new run adopts its own node's sessions at its start, sm.ts.)
  let leaving: Promise<void> | undefined;
  interceptEval(n1.cluster.node.redis, DECLARE_DEAD, async (run) => {
    const reply = await run();
    if (Number(reply) === 1 && !leaving) {
      await startGateway(t, 'n3', opts);
      leaving = n1.server.app.leave();
    }
    return reply;
  });
  interceptEval(n2.cluster.node.redis, DECLARE_DEAD, async () => 0);
  n3.crash();
  alice.c.ws.terminate();

  // Nobody declares n3 dead again (its new run holds the lease): the session's stanzas are handed over
  // (offline) at its resume timeout by whoever holds it, each once.
  await eventually(async () => (await n2.server.storage.offline.count('localhost', 'alice')) >= 3, { timeout: 40_000, message: 'a1..a3 stored offline for alice' });
  await sleep(1000);
  t.equal(await n2.server.storage.offline.count('localhost', 'alice'), 3, 'a1..a3 stored offline, each once');
  const again = await SmPeer.resume(n2.server.wsUrl, 'bob', 'bob-pw', bob.smid!, { autoAck: true, h: bob.h });
  t.teardown(() => again.peer.c.close());
  await leaving;
});

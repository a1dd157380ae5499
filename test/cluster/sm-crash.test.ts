/**
 * XEP-0198 across a real crash (SM_BACKEND=redis): gateway processes
 * (test/helpers/cluster.ts), the owner of a session killed with SIGKILL.
 * What it wrote through to Redis before writing to the client is all there
 * is: the session resumes on the survivor with every unacknowledged
 * stanza, or, when nobody resumes it, the survivor hands its queue over
 * (offline storage) once its resume time has run out. Nothing is lost.
 */
import t, { type Test } from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { fileBacking, withGatewayCluster } from '../helpers/cluster.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { SmPeer, chat, routed } from '../helpers/sm-peer.js';
import { eventually, sleep } from '../helpers/eventually.js';
import { openPostgresStorage } from '../../src/storage/postgres/index.js';

t.setTimeout(180_000);
// One Redis and one PostgreSQL for the file: each test's cluster takes a database of its own in each.
const backing = fileBacking(t);
const isMsg = (el: XmlElement): boolean => el.local === 'message';

/** alice on node 0 (resumable SM, no acks), bob on node 1, `ids` sent by bob and received by alice. */
async function setUp(t: Test, env: Record<string, string>, ids: readonly string[]) {
  const cluster = await withGatewayCluster(t, { nodes: 2, ...backing(), env });
  await cluster.addUser('alice', 'alice-pw');
  await cluster.addUser('bob', 'bob-pw');
  const [n0, n1] = cluster.nodes;
  const alice = await SmPeer.login(n0!.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: false });
  t.teardown(() => alice.c.close());
  const bob = await RawWsClient.connect(n1!.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'desk');
  // Bob's node learns alice's resource from the directory; until then a message would go offline,
  // so bob writes until one reaches her.
  let n = 0;
  await eventually(async () => {
    bob.send(chat(alice.jid, `warm${++n}`));
    await sleep(200);
    return alice.messageIds().length > 0;
  }, { timeout: 10_000, message: 'alice reachable from node 1' });
  for (const id of ids) bob.send(chat(alice.jid, id));
  const mine = (): string[] => alice.messageIds().filter((id) => !id.startsWith('warm'));
  await eventually(() => mine().length === ids.length, { timeout: 10_000, message: 'alice got the messages' });
  t.same(mine(), ids, 'alice got them in order');
  return { cluster, alice, bob, n0: n0!, n1: n1! };
}

t.test('kill -9 of the owner: the session resumes on the survivor with every unacknowledged stanza, in order, once', async (t) => {
  const { cluster, alice, bob, n1 } = await setUp(t, {}, ['m1', 'm2', 'm3']);
  const exit = await cluster.kill(0);
  t.equal(exit.signal, 'SIGKILL');
  await alice.c.waitClosed();
  // The client had handled everything up to m1 when its server died.
  const { peer, answer } = await SmPeer.resume(n1.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: alice.h - 2 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', `resumed on the survivor (${answer.toString()})`);
  await routed(peer.c, 'after');
  t.same(peer.messageIds(), ['m2', 'm3'], 'what the client had not acknowledged, in order, once');
  bob.send(chat('alice@localhost/phone', 'm4'));
  await peer.c.until((el) => isMsg(el) && el.attr('id') === 'm4', 10_000);
  t.same(peer.messageIds(), ['m2', 'm3', 'm4'], 'and the session goes on there');
});

t.test('kill -9 of the owner and no resumption: the survivor hands the queue over (offline) when resume_timeout runs out', async (t) => {
  const { cluster, alice, n1 } = await setUp(t, { SM_RESUME_TIMEOUT: '2' }, ['m1', 'm2']);
  await cluster.kill(0);
  await alice.c.waitClosed();
  // The hand-over follows the death (a lease, then the survivor's heartbeat): its time counts from there.
  await eventually(() => n1.events().some((e) => e.event === 'cluster-node-down'), { timeout: 60_000, message: 'the survivor to declare the owner dead' });
  const handedOver = await eventually(
    () => n1.events().find((e) => e.event === 'sm-orphan-timed-out'),
    { timeout: 20_000, message: 'the survivor handed the session over' },
  );
  t.ok(Number(handedOver.handedOver) >= 2, 'the unacknowledged messages');
  // Routed to the bare JID with no resource available: offline storage (the write takes a moment).
  const storage = await openPostgresStorage({ url: cluster.databaseUrl });
  t.teardown(() => storage.close());
  await eventually(async () => (await storage.offline.list('localhost', 'alice')).some((m) => m.stanza.includes('m2')), { timeout: 10_000, message: 'm2 stored offline' });
  const again = await RawWsClient.connect(n1.wsUrl);
  t.teardown(() => again.close());
  await again.login('alice', 'alice-pw', 'again');
  again.send("<presence xmlns='jabber:client'/>");
  const m1 = await again.until((el) => isMsg(el) && el.attr('id') === 'm1', 10_000);
  t.ok(m1.getChildren('delay', NS.DELAY).length > 0, 'stored offline, with its XEP-0203 stamp');
  t.ok(m1.getChildren('delay', NS.DELAY).some((d) => d.text().endsWith('before its server went down')), 'whose note says its server went down');
  await again.until((el) => isMsg(el) && el.attr('id') === 'm2', 10_000);
  await sleep(300);
  t.same(again.frames.filter(isMsg).map((m) => m.attr('id')).filter((id) => !id?.startsWith('warm')), ['m1', 'm2'], 'each once, in order');
});

t.test('kill -9 of a lone node and a restart under the same NODE_ID: the restarted node hands over what its previous run held', async (t) => {
  const cluster = await withGatewayCluster(t, { nodes: 1, ...backing(), env: { SM_RESUME_TIMEOUT: '2' } });
  await cluster.addUser('alice', 'alice-pw');
  await cluster.addUser('bob', 'bob-pw');
  const n0 = cluster.nodes[0]!;
  const alice = await SmPeer.login(n0.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: false });
  t.teardown(() => alice.c.close());
  const bob = await RawWsClient.connect(n0.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'desk');
  for (const id of ['r1', 'r2']) bob.send(chat(alice.jid, id));
  await eventually(() => alice.messageIds().length === 2, { timeout: 10_000, message: 'alice got the messages' });
  await cluster.kill(0);
  await cluster.restart(0);
  const handedOver = await eventually(
    () => n0.events().find((e) => e.event === 'sm-orphan-timed-out'),
    { timeout: 20_000, message: 'the restarted node handed the session over' },
  );
  t.equal(handedOver.handedOver, 2, 'both unacknowledged messages');
  const storage = await openPostgresStorage({ url: cluster.databaseUrl });
  t.teardown(() => storage.close());
  await eventually(async () => (await storage.offline.count('localhost', 'alice')) === 2, { timeout: 10_000, message: 'both stored offline' });
  const again = await RawWsClient.connect(n0.wsUrl);
  t.teardown(() => again.close());
  await again.login('alice', 'alice-pw', 'again');
  again.send("<presence xmlns='jabber:client'/>");
  await again.until((el) => isMsg(el) && el.attr('id') === 'r2', 10_000);
  t.same(again.frames.filter(isMsg).map((m) => m.attr('id')), ['r1', 'r2'], 'stored offline, delivered in order at the next login');
});

t.test('kill -9 of the owner: contacts see the session go unavailable, and available again once it resumes on the survivor', async (t) => {
  const cluster = await withGatewayCluster(t, { nodes: 2, ...backing() });
  await cluster.addUser('alice', 'alice-pw');
  await cluster.addUser('bob', 'bob-pw');
  const storage = await openPostgresStorage({ url: cluster.databaseUrl });
  const item = (jid: string) => ({ jid, name: undefined, subscription: 'both' as const, ask: false, approved: false, groups: [] });
  await storage.rosters.putItem('localhost', 'alice', item('bob@localhost'), 1);
  await storage.rosters.putItem('localhost', 'bob', item('alice@localhost'), 1);
  await storage.close();
  const [n0, n1] = cluster.nodes;
  const bob = await RawWsClient.connect(n1!.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'desk');
  bob.send("<presence xmlns='jabber:client'/>");
  // Bob is available once his own presence comes back (RFC 6121 §4.2.2): before alice's broadcast looks for him.
  await bob.until((el) => el.local === 'presence' && el.attr('from') === 'bob@localhost/desk', 10_000);
  const alice = await SmPeer.login(n0!.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => alice.c.close());
  alice.c.send("<presence xmlns='jabber:client'><priority>1</priority></presence>");
  const fromAlice = (type: string | undefined) => (el: XmlElement): boolean =>
    el.local === 'presence' && el.attr('from') === alice.jid && el.attr('type') === type;
  await bob.until(fromAlice(undefined), 10_000);
  await cluster.kill(0);
  await eventually(() => n1!.events().some((e) => e.event === 'cluster-node-down'), { timeout: 60_000, message: 'the survivor to declare the owner dead' });
  await bob.until(fromAlice('unavailable'), 20_000);
  const { peer, answer } = await SmPeer.resume(n1!.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: alice.h });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', 'resumed on the survivor');
  const back = await bob.until(fromAlice(undefined), 10_000);
  t.equal(back.getChildText('priority'), '1', 'bob sees alice available again, with the presence she had');
});

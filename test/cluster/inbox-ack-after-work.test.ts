/**
 * An inbox entry (delivery.ts) is acknowledged only once what it carries is safe (found in review):
 * - a stanza for a resource no longer on the node is routed again after up to a second (the
 *   session may just have been resumed elsewhere, journal.ts routeWhenSettled), and its entry
 *   stays pending until that is done: a kill -9 meanwhile leaves it for the survivor that drains
 *   the dead node's inbox, which stores it offline (before, it was acknowledged at once and lost);
 * - a stanza for a session with stream management in Redis is written to the SM journal before the
 *   entry's XACK goes out on the same connection (before, a read batch of XACKs preceded the turn's
 *   journal script: a kill -9 between the two lost the stanza).
 */
import t from 'tap';
import { withGatewayCluster } from '../helpers/cluster.js';
import { eventually, sleep } from '../helpers/eventually.js';
import { connectRedis, keyPrefix } from '../../src/cluster/redis.js';
import { addEntry, inboxKeys } from '../../src/cluster/inbox.js';
import { openPostgresStorage } from '../../src/storage/index.js';
import { addUsers, clusterBackends, startGateway } from '../helpers/gateways.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { SmPeer, chat } from '../helpers/sm-peer.js';

const quiet = { info() {}, warn() {}, error() {}, debug() {} } as never;

for (const when of ['no kill', 'kill -9 before the entry is done', 'kill -9 once it is acknowledged'] as const) {
  t.test(`a message for a resource gone from node n1, ${when}: it is stored offline`, async (t) => {
    const cluster = await withGatewayCluster(t, { nodes: 2 });
    await cluster.addUser('bob', 'bob-pw');
    const redis = await connectRedis(cluster.redisUrl, quiet, 'test');
    t.teardown(() => redis.quit());
    const keys = inboxKeys(keyPrefix(cluster.redisUrl), 'n1');
    const xml = "<message xmlns='jabber:client' from='alice@localhost/a1' to='bob@localhost/gone' type='chat' id='kept-1'><body>hello</body></message>";
    // What n0's stub would send for bob/gone, a session that just ended on n1.
    t.equal(await addEntry(redis, keys, { maxEntries: 1000, maxBytes: 1 << 20 }, 'n0', { kind: 'stanza', to: 'bob@localhost/gone', xml }), 'added');
    if (when === 'kill -9 before the entry is done') {
      await sleep(200);
      t.ok((await redis.xLen(keys.stream)) > 0, 'still in the inbox while it waits to be routed');
      await cluster.kill(1);
    } else {
      await eventually(async () => (await redis.xLen(keys.stream)) === 0, { timeout: 5000, interval: 2, message: 'n1 acknowledged and deleted the entry' });
      if (when === 'kill -9 once it is acknowledged') await cluster.kill(1);
    }
    // After a kill, the drain that stores it follows the death (a lease, then n0's heartbeat): its time counts from there.
    if (when !== 'no kill') {
      await eventually(() => cluster.nodes[0]!.events().some((e) => e.event === 'cluster-node-down'), { timeout: 60_000, message: 'n0 to declare n1 dead' });
    }
    const storage = await openPostgresStorage({ url: cluster.databaseUrl });
    t.teardown(() => storage.close());
    const stored = await eventually(async () => (await storage.offline.count('localhost', 'bob')) === 1, { timeout: 15_000, message: "the message in bob's offline storage" }).then(() => true, () => false);
    t.ok(stored, 'the message is not lost: stored offline for bob, once');
  });
}

const backends = clusterBackends(t);

t.test('the inbox entry of a stanza for an SM session is acknowledged after the journal stored it', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice', 'bob']);
  const alice = await SmPeer.login(n2.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: false });
  t.teardown(() => alice.c.close());
  const bob = await RawWsClient.connect(n1.server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'desk');
  await eventually(() => n1.server.app.sessions.get('localhost', 'alice', 'phone'), { message: 'alice seen from n1' });
  // The order in which n2 sends the two scripts to Redis on its one connection.
  const order: string[] = [];
  const redis = n2.cluster.node.redis as unknown as { eval: (script: string, o: { arguments?: string[] }) => Promise<unknown> };
  const original = redis.eval.bind(redis);
  redis.eval = (script, o) => {
    if (script.includes("'XACK'")) order.push('xack');
    else if (script.includes("'RPUSH'") && (o.arguments ?? []).some((a) => a.includes('ordered-m1'))) order.push('journal');
    return original(script, o);
  };
  t.teardown(() => { redis.eval = original; });
  bob.send(chat(alice.jid, 'ordered-m1'));
  await eventually(() => alice.h === 1, { message: 'alice got the message' });
  await eventually(() => order.length === 2, { message: 'both scripts sent' });
  t.same(order, ['journal', 'xack'], 'the journal push goes out before the XACK');
});

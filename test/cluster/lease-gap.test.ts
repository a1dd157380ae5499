/**
 * A node whose lease lapsed for a moment and was taken again (node.ts
 * RENEW returning 2: nobody declared it dead; a stall, or Redis restarted
 * past CLUSTER_NODE_TTL) stays a member and goes on serving. A stanza
 * another node sent it in that gap is refused 'node-down', and the sender
 * takes that node's stubs out of its routing (so the hand-over does not
 * loop back to them). Before, nothing put them back: every session on that
 * node stayed unreachable from the sender for as long as it lived, and
 * messages to them went to offline storage. Now the sender asks again
 * whether the node holds a lease, and routes to it again when it does
 * (directory-module.ts suspend).
 */
import t from 'tap';
import { addUsers, clusterBackends, startGateway } from '../helpers/gateways.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { chat } from '../helpers/sm-peer.js';
import { eventually } from '../helpers/eventually.js';

const backends = clusterBackends(t);

t.test('a node whose lease lapsed and was taken again is still reachable from the others', async (t) => {
  // A long lease: no node judges another within this test (judging starts a lease + 2 s after the start).
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', CLUSTER_NODE_TTL: '60000' });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice', 'bob']);
  const bob = await RawWsClient.connect(n2.server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'desk');
  const alice = await RawWsClient.connect(n1.server.wsUrl);
  t.teardown(() => alice.close());
  await alice.login('alice', 'alice-pw', 'phone');
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'desk'), { message: 'n1 sees bob/desk' });

  // n2's lease lapses (a stall, or Redis restarted past the lease), and n2 takes it again with its token.
  const { redis, prefix } = n1.cluster.node;
  const lease = `${prefix}node:n2`;
  const token = await redis.get(lease);
  t.ok(token, 'n2 holds a lease');
  await redis.del(lease);
  alice.send(chat('bob@localhost/desk', 'in-the-gap'));
  await eventually(() => n1.cluster.delivery.stats().refused['node-down'] >= 1, { message: 'the stanza in the gap was refused node-down' });
  await redis.set(lease, token!, { PX: 60_000 });
  t.ok(await n1.cluster.node.alive('n2'), 'n2 is alive again, and still a member');
  t.ok(await redis.sIsMember(`${prefix}nodes`, 'n2'), 'never declared dead');

  // n1 asks again every second whether n2 holds a lease.
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'desk'), { timeout: 10_000, message: 'n1 routes to bob/desk again' }).catch(() => undefined);
  t.ok(n1.server.app.sessions.get('localhost', 'bob', 'desk'), 'n1 routes to bob/desk again');
  alice.send(chat('bob@localhost/desk', 'after'));
  const got = await bob.until((el) => el.name === 'message' && el.attr('id') === 'after', 3000).catch(() => undefined);
  t.ok(got, 'a message sent after the gap reaches bob live');
  t.equal(await n1.server.storage.offline.count('localhost', 'bob'), 1, 'only the stanza of the gap went to offline storage');
});

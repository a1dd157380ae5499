/**
 * A rolling restart's leave (cluster/index.ts) and what is still in the
 * leaving node's inbox for a session hibernating there: it goes into that
 * session's journaled queue before the node lets go of its lease, so a
 * survivor that adopts the session at once (it may: the departure is seen at
 * its next heartbeat) and a resumption anywhere find it there, once. Before,
 * the lease went first: the survivor could drain that inbox or adopt the
 * session while the leaving node was still draining, the leaving node's
 * push was refused (fenced), and the stanza went to offline storage, which
 * a resumed session never reads.
 */
import t from 'tap';
import { x } from '../../src/xml/index.js';
import { clusterBackends, smPairOnTwoNodes } from '../helpers/gateways.js';
import { SmPeer, chat, routed } from '../helpers/sm-peer.js';
import { eventually, sleep } from '../helpers/eventually.js';
import { connectRedis, keyPrefix } from '../../src/cluster/redis.js';
import { smKeys } from '../../src/cluster/sm-scripts.js';
import { stanzaEntry } from '../../src/cluster/remote.js';

const backends = clusterBackends(t);

t.test('a stanza in the leaving node\'s inbox for a session hibernating there comes in its resumed stream on another node, once', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', CLUSTER_DRAIN_TIMEOUT: '1', SM_RESUME_TIMEOUT: '30' });
  const { n1, n2, alice, bob } = await smPairOnTwoNodes(t, opts);
  await eventually(() => n2.server.app.sessions.get('localhost', 'alice', 'phone'), { message: 'n2 sees alice' });
  bob.send(chat('alice@localhost/phone', 'm1'));
  await eventually(() => alice.h === 1, { message: 'alice got m1 (not acknowledged)' });

  const look = await connectRedis(opts.redisUrl, { warn: () => undefined }, 'look');
  t.teardown(() => look.destroy());
  const record = smKeys(keyPrefix(opts.redisUrl)).record(alice.smid!);
  // Once n1 stopped reading its inbox, n2 sends alice a message there (n1's lease is still current).
  const { delivery, node } = n1.cluster;
  const stopReading = delivery.stop.bind(delivery);
  delivery.stop = async () => {
    await stopReading();
    const el = x('message', { xmlns: 'jabber:client', from: 'bob@localhost/desk', to: 'alice@localhost/phone', type: 'chat', id: 'm2' }, x('body', {}, 'm2'));
    await n2.cluster.delivery.send('n1', stanzaEntry('alice@localhost/phone', el));
  };
  // The survivor is quick: it has adopted alice's session by the time n1's lease release returns.
  const release = node.stop.bind(node);
  node.stop = async () => {
    await release();
    await eventually(async () => (await look.hGet(record, 'owner')) === 'n2', { timeout: 15_000, message: 'n2 adopted alice\'s session' });
  };
  await n1.server.app.leave();
  await alice.c.waitClosed();

  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: 1 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', `alice resumed on n2 (${answer.toString()})`);
  await routed(peer.c, 'after');
  await sleep(300);
  t.same(peer.messageIds(), ['m2'], 'the stanza that waited in the leaving node\'s inbox, once');
  t.equal(await n2.server.storage.offline.count('localhost', 'alice'), 0, 'and not in offline storage');
});

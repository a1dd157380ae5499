/**
 * XEP-0198 takeovers across nodes (SM_BACKEND=redis) when Redis fails in
 * the middle: in-process gateways on one Redis and one PostgreSQL, raw
 * WebSocket clients. A claim whose answer never came back (the connection
 * dropped after Redis ran the script) may have taken the session from its
 * old owner with no session on the new node to show for it: the session's
 * stanzas must still be handed over (offline) when its resume time runs
 * out, never left in Redis for good.
 */
import t from 'tap';
import type { XmlElement } from '../../src/xml/index.js';
import { addUsers, clusterBackends, startGateway } from '../helpers/gateways.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { SmPeer, chat } from '../helpers/sm-peer.js';
import { eventually } from '../helpers/eventually.js';
import { TAKEOVER } from '../../src/cluster/sm-scripts.js';

const backends = clusterBackends(t);
const isMsg = (el: XmlElement): boolean => el.local === 'message';

t.test('a takeover whose answer was lost (the script ran) still hands the session\'s queue over when its resume time runs out', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', SM_RESUME_TIMEOUT: '2' });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice', 'bob']);
  const alice = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: false });
  t.teardown(() => alice.c.close());
  const bob = await RawWsClient.connect(n2.server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'desk');
  await eventually(() => n2.server.app.sessions.get('localhost', 'alice', 'phone'), { message: 'alice seen from n2' });
  for (const id of ['m1', 'm2', 'm3']) bob.send(chat(alice.jid, id));
  await eventually(() => alice.h === 3, { message: 'alice got the three messages' });
  // Node 2's connection drops right after Redis ran its TAKEOVER: the claim happened, its answer is lost.
  const redis = n2.cluster.node.redis;
  const evalScript = redis.eval.bind(redis);
  let lost = 0;
  Object.defineProperty(redis, 'eval', {
    configurable: true,
    value: async (...args: Parameters<typeof evalScript>) => {
      const reply = await evalScript(...args);
      if (args[0] === TAKEOVER && lost++ === 0) throw new Error('Socket closed unexpectedly');
      return reply;
    },
  });
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'failed', 'node 2 could not say it resumed the session');
  t.equal(lost, 1, 'the claim ran in Redis');
  const error = await alice.c.until((el) => el.local === 'error');
  t.equal(streamErrorCondition(error), 'conflict', 'node 1 let the session go: it was claimed');
  await eventually(async () => (await n1.server.storage.offline.count('localhost', 'alice')) === 3,
    { timeout: 15_000, message: 'the three unacknowledged messages handed over to offline storage' });
  const again = await RawWsClient.connect(n1.server.wsUrl);
  t.teardown(() => again.close());
  await again.login('alice', 'alice-pw', 'again');
  again.send("<presence xmlns='jabber:client'/>");
  await again.until((el) => isMsg(el) && el.attr('id') === 'm3');
  t.same(again.frames.filter(isMsg).map((el) => el.attr('id')), ['m1', 'm2', 'm3'], 'each once, in order');
});

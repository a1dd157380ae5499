/**
 * A rolling restart (App.leave, roll.ts) waits until the node's work is
 * done (the core's queues idle). A session that was getting its stored
 * messages (XEP-0160) and had not acked the page held its account's line
 * (offline/delivery.ts waits for the acks); the leave drops the transports
 * without ending the sessions, so the session hibernated, nothing woke the
 * wait, and the leave waited out the session's resume time (with the
 * defaults, SHUTDOWN_TIMEOUT's exit(1) came first). Now the delivery stops
 * when its session hibernates: the journaled queue (SM_BACKEND=redis) owns
 * the page from then on, and it leaves offline storage, so the resumption
 * on another node delivers it once and the next login does not again.
 * Found by a review helper.
 */
import t from 'tap';
import { NS } from '../../src/xml/index.js';
import { addUsers, clusterBackends, startGateway, unackedStoredPage } from '../helpers/gateways.js';
import { SmPeer } from '../helpers/sm-peer.js';
import { eventually, sleep } from '../helpers/eventually.js';

const backends = clusterBackends(t);

t.test('a rolling restart ends while a session has stored messages unacked; its resumption elsewhere gets them once', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', CLUSTER_DRAIN_TIMEOUT: '2', SM_RESUME_TIMEOUT: '40' });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice', 'bob']);
  const bob = await unackedStoredPage(t, n1, 'bob', 'phone');

  // bob's client does not come back to n1 (it resumes on n2 below, after the leave).
  let done = false;
  const leaving = n1.server.app.leave().then(() => { done = true; });
  // CLUSTER_DRAIN_TIMEOUT (2 s) + the leave's bounds, with room for a loaded machine; before, 40 s (the resume time).
  const ended = await eventually(() => done, { timeout: 20_000, message: 'the leave ended' }).then(() => true, () => false);
  t.ok(ended, 'the rolling restart ended within its drain bounds');
  await leaving;

  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'bob', 'bob-pw', bob.smid!, { autoAck: true, h: 0 });
  t.teardown(() => peer.c.close());
  t.ok(answer.is('resumed', NS.SM), `bob resumed on n2 (${answer.toString()})`);
  await eventually(() => peer.messageIds().includes('stored-1'), { message: 'the stored message on the resumed stream' }).catch(() => undefined);
  await sleep(300);
  t.same(peer.messageIds(), ['stored-1'], 'the stored message comes again on the resumed stream, once');
  t.equal(await n2.server.storage.offline.count('localhost', 'bob'), 0, 'and it is out of offline storage: the next login does not get it again');
});

// The same page when the session is taken over live (a resumption on another node while its old connection
// still stands): the old owner's session ends moved, its journaled queue goes to the new owner, which resends the
// page; the old owner's delivery left it in storage, and the next login got it a second time.
t.test('a stored page taken over by a resumption on another node leaves offline storage with it', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice', 'bob']);
  const bob = await unackedStoredPage(t, n1, 'bob', 'phone');
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'bob', 'bob-pw', bob.smid!, { autoAck: true, h: 0 });
  t.teardown(() => peer.c.close());
  t.ok(answer.is('resumed', NS.SM), `bob resumed on n2 (${answer.toString()})`);
  await eventually(() => peer.messageIds().includes('stored-1'), { message: 'the stored message on the resumed stream' }).catch(() => undefined);
  t.same(peer.messageIds(), ['stored-1'], 'the stored message comes again on the resumed stream, once');
  await eventually(async () => await n2.server.storage.offline.count('localhost', 'bob') === 0, { message: 'out of storage' }).catch(() => undefined);
  t.equal(await n2.server.storage.offline.count('localhost', 'bob'), 0, 'and out of offline storage: the next login does not get it again');
});

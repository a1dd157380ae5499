/**
 * RFC 6120 §7.7.2.2 for a resumable session whose owner is alive in Redis
 * (its lease held) but does not act: a gateway process stopped (SIGSTOP),
 * as a long pause makes it. A fresh login binds the session's full JID on
 * another node; the owner, paused, does not end its session with conflict
 * as it would. The fresh login is the newer session and the old one must
 * not take the resource back from it: a <resume/> on a third node gets
 * item-not-found (XEP-0198 §5), so does a later one, and the fresh session
 * stays. Before, the first resumption claimed the session (the owner's
 * lease said alive) and failed on its h; the claim had recorded the fresh
 * login's directory entry as the old session's own (`dsid`), so it was
 * never seen as newer.
 */
import t from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { withGatewayCluster } from '../helpers/cluster.js';
import { SmPeer, routed } from '../helpers/sm-peer.js';
import { sleep } from '../helpers/eventually.js';

t.setTimeout(180_000);
const isStreamError = (el: XmlElement): boolean => el.local === 'error' && el.ns === NS.STREAM;

t.test('a claim from a paused owner after a fresh login bound the resource: a later resumption gets item-not-found and the fresh session stays', async (t) => {
  // The paused owner's lease outlives the test: it looks alive throughout.
  const cluster = await withGatewayCluster(t, { nodes: 3, env: { CLUSTER_NODE_TTL: '120000' } });
  await cluster.addUser('alice', 'alice-pw');
  const [n0, n1, n2] = cluster.nodes;
  const alice = await SmPeer.login(n0!.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => alice.c.close());
  await routed(alice.c, 'handled');
  const pid = n0!.pid()!;
  process.kill(pid, 'SIGSTOP');
  t.teardown(() => { try { process.kill(pid, 'SIGCONT'); } catch { /* exited */ } });
  alice.c.ws.terminate();

  // A fresh login of the same full JID on n1: the newer session. n0, paused, does not end the old one.
  const fresh = await SmPeer.login(n1!.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => fresh.c.close());
  await routed(fresh.c, 'bound');
  // A resumption on n2 of the old session, whose owner n0 is alive by its lease: the fresh login's entry is
  // another live node's, so the old session was replaced (it fails with item-not-found, not on its bad h:
  // nothing is claimed to be built), whatever n0's lease says.
  const first = await SmPeer.resume(n2!.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: 99 });
  t.teardown(() => first.peer.c.close());
  t.equal(first.answer.local, 'failed', `the first resumption failed (${first.answer.toString()})`);
  t.ok(first.answer.getChild('item-not-found', NS.STANZAS) !== undefined, 'item-not-found: the session was replaced');

  const { peer, answer } = await SmPeer.resume(n2!.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: 0 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'failed', `the old session cannot be resumed (${answer.toString()})`);
  t.ok(answer.getChild('item-not-found', NS.STANZAS) !== undefined, 'item-not-found');
  await sleep(300);
  await routed(fresh.c, 'ping');
  t.notOk(fresh.c.closed, 'the newer session is still open');
  t.notOk(fresh.c.frames.some(isStreamError), 'with no stream error');
});

/**
 * XEP-0198 §5 across nodes: <resumed h/> counts every stanza the old
 * session took before its transport was cut, or the client sends those
 * again (a message then reaches its recipient twice). On one node the
 * resumption is a job on the old session's queue (resume.ts), so a stanza
 * still being handled is counted. A takeover from another node reads the h
 * the old owner stored, and that is stored once a stanza has been handled:
 * while a handler awaits (here a vCard read held; in the rolling restart a
 * route to a recipient whose session was moving, under load), the takeover
 * answered one short. Found by rolling-restart-bosh-process.test.ts's "0
 * delivered twice" (a1-48, no fresh login). Now the live old owner tells
 * the claimer its final h once that input has run (sm-registry.ts
 * takeOver, journal.ts onFenced), and the claimer waits for it.
 */
import t, { type Test } from 'tap';
import { clusterBackends, smPairOnTwoNodes } from '../helpers/gateways.js';
import { SmPeer, chat } from '../helpers/sm-peer.js';
import { holdCalls } from '../helpers/hold-calls.js';
import { eventually, sleep } from '../helpers/eventually.js';
import { smKeys } from '../../src/cluster/sm-scripts.js';

const backends = clusterBackends(t);

/**
 * alice (n1, XEP-0198) and bob (n2): alice sends an IQ whose handler awaits (the vCard read, held on n1) and a
 * message to bob queued behind it, then her page reloads (the transport is gone, the stanzas not yet handled).
 */
async function heldIqThenMessage(t: Test) {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const pair = await smPairOnTwoNodes(t, opts);
  const hold = holdCalls(pair.n1.server.storage.vcards as unknown as Record<'get', unknown>, 'get');
  t.teardown(() => hold.release());
  pair.alice.c.send(`<iq xmlns='jabber:client' type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>`);
  await hold.entered;
  pair.alice.c.send(chat('bob@localhost/desk', 'm1'));
  pair.alice.c.close();
  return { ...pair, hold };
}

t.test('a resumption on another node while the old owner still handles a stanza counts it, and what is queued behind it, in <resumed h/>', async (t) => {
  // The client resumes on the other node.
  const { n2, alice, bob, hold } = await heldIqThenMessage(t);
  await sleep(300);
  const resumed = SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: 0 });
  await sleep(300);
  hold.release();
  const { peer, answer } = await resumed;
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', answer.toString());
  t.equal(answer.attr('h'), '2', 'the IQ and the message sent before the cut are counted: the client sends neither again');
  const result = await peer.c.until((el) => el.local === 'iq' && el.attr('id') === 'v1', 10_000);
  t.ok(['result', 'error'].includes(result.attr('type') ?? ''), `the IQ's answer reaches the resumed session (${result.attr('type')})`);
  await bob.until((el) => el.local === 'message' && el.attr('id') === 'm1');
  await sleep(500);
  t.equal(bob.frames.filter((el) => el.local === 'message' && el.attr('id') === 'm1').length, 1, 'the message reached bob once');
});

/**
 * The client resumes twice within the old owner's final-h drain (FINAL_H_WAIT_MS): first on n2, whose claim waits
 * for n1's final h while n1 still handles an IQ (a held vCard read) and a message behind it, then, that attempt
 * given up, on n1 itself, which still holds the draining session. XEP-0198 §5: the later resumption has the
 * session (the earlier one's transport gets conflict), with an h counting both stanzas; one live session, the
 * message delivered once, the IQ's answer to the live session.
 */
t.test('a second resumption on the old owner\'s node during the final-h drain has the session, once, with the right h', async (t) => {
  const { n1, n2, alice, bob, hold } = await heldIqThenMessage(t);
  await sleep(200);
  const first = SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: 0 });
  await sleep(200);
  const second = SmPeer.resume(n1.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: 0 });
  await sleep(200);
  hold.release();
  const a = await first;
  t.teardown(() => a.peer.c.close());
  const b = await second;
  t.teardown(() => b.peer.c.close());
  t.equal(b.answer.local, 'resumed', `the later resumption has the session (${b.answer.toString()})`);
  t.equal(b.answer.attr('h'), '2', 'the IQ and the message are counted');
  if (a.answer.local === 'resumed') {
    const error = await a.peer.c.until((el) => el.local === 'error', 10_000);
    t.equal(error.getChild('conflict', 'urn:ietf:params:xml:ns:xmpp-streams') ? 'conflict' : error.toString(), 'conflict', 'the earlier resumption\'s transport gets conflict');
  }
  const result = await b.peer.c.until((el) => el.local === 'iq' && el.attr('id') === 'v1', 10_000);
  t.ok(['result', 'error'].includes(result.attr('type') ?? ''), `the IQ's answer reaches the live session (${result.attr('type')})`);
  await bob.until((el) => el.local === 'message' && el.attr('id') === 'm1');
  await sleep(500);
  t.equal(bob.frames.filter((el) => el.local === 'message' && el.attr('id') === 'm1').length, 1, 'the message reached bob once');
  t.equal(b.peer.c.frames.filter((el) => el.local === 'iq' && el.attr('id') === 'v1').length, 1, 'the IQ\'s answer once');
  const live = (g: typeof n1): number => [...g.server.app.sessions.all].filter((s) => s.full_jid === 'alice@localhost/phone' && !s.destroyed).length;
  t.equal(live(n1) + live(n2), 1, 'one live session');
});

/**
 * The old owner's drain runs to its bound (FINAL_H_WAIT_MS from when the claim's notice reached it): after the
 * claim it handles the IQ whose vCard read was held and the message behind it, then an IQ whose vCard write never
 * returns holds the rest. It lets the session go at its bound and tells h = 3 (a stanza counts once taken, as on one
 * node). As its session was still handling input when told, it said so first (`draining`), and the claimer waits
 * FINAL_H_DRAIN_WAIT_MS from that word, so <resumed h/> counts all three: with one bound for both it gave up first,
 * answered with the stored h (0: the owner's writes after the claim are refused), and the client sent all three
 * again, the message to bob a second time. Found as a flaky h=0 in the test above on a loaded machine.
 */
t.test('an old owner whose drain runs to its bound still tells the claimer its final h', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const { n1, n2, alice, bob } = await smPairOnTwoNodes(t, opts);
  const vcards = n1.server.storage.vcards as unknown as Record<'get' | 'set', unknown>;
  const read = holdCalls(vcards, 'get');
  const write = holdCalls(vcards, 'set');
  t.teardown(() => { read.release(); write.release(); });
  alice.c.send(`<iq xmlns='jabber:client' type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>`);
  await read.entered;
  alice.c.send(chat('bob@localhost/desk', 'm1'));
  alice.c.send(`<iq xmlns='jabber:client' type='set' id='v2'><vCard xmlns='vcard-temp'><FN>Alice</FN></vCard></iq>`);
  alice.c.close();
  const record = smKeys(n1.cluster.node.prefix).record(alice.smid!);
  const epoch = await n1.cluster.node.redis.hGet(record, 'epoch');
  const resumed = SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: 0 });
  // Claimed by n2: what n1 handles from now on is counted only in the final h it tells.
  await eventually(async () => (await n1.cluster.node.redis.hGet(record, 'epoch')) !== epoch, { message: 'n2 to claim the session' });
  read.release();
  await write.entered;
  const { peer, answer } = await resumed;
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', answer.toString());
  t.equal(answer.attr('h'), '3', 'what n1 took after the claim is counted (both IQs, the write\'s still running, and the message): the client sends none of it again');
  await bob.until((el) => el.local === 'message' && el.attr('id') === 'm1');
});

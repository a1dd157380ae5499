/**
 * XEP-0198 stream management across cluster nodes (SM_BACKEND=redis):
 * in-process gateways on one Redis and one PostgreSQL, raw WebSocket and
 * BOSH clients. A session enabled on one node resumes on another (also
 * across transports); the old owner's transport gets conflict and sends
 * nothing more; the unacknowledged stanzas come in order, once; a write of
 * the old owner after a takeover is refused and the stanza is routed again;
 * a foreign or unknown previd gets item-not-found; a dead node's session
 * resumes on a survivor, or is handed over (offline) when its resume time
 * runs out.
 */
import t, { type Test } from 'tap';
import { NS, x, type XmlElement } from '../../src/xml/index.js';
import { addUsers, clusterBackends, declaredDead, startGateway, type Gateway } from '../helpers/gateways.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { RawBoshClient, payloads } from '../helpers/bosh-client.js';
import { SmPeer, chat, routed } from '../helpers/sm-peer.js';
import { plain } from '../helpers/scram-client.js';
import { eventually, sleep } from '../helpers/eventually.js';
import { connectRedis, keyPrefix } from '../../src/cluster/redis.js';
import { CLAIM, smKeys } from '../../src/cluster/sm-scripts.js';
import { startDeadOwner } from './sm-dead-owner.js';
import { baseline } from '../helpers/metrics-text.js';

const backends = clusterBackends(t);

const ENV = { ALLOW_INSECURE_PLAIN: 'true', BOSH_INACTIVITY: '2' };
const isMsg = (el: XmlElement): boolean => el.local === 'message';

/** Two gateways n1, n2 on a fresh Redis database and PostgreSQL database, with alice and bob. */
async function cluster(t: Test, env: Record<string, string> = {}): Promise<{ n1: Gateway; n2: Gateway; redisUrl: string }> {
  const opts = await backends.options({ ...ENV, ...env });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice', 'bob']);
  return { n1, n2, redisUrl: opts.redisUrl };
}

async function ws(t: Test, g: Gateway): Promise<RawWsClient> {
  const c = await RawWsClient.connect(g.server.wsUrl);
  t.teardown(() => c.close());
  return c;
}

/** alice on `g` with resumable SM, three messages from bob (on n2) received and not acknowledged. */
async function aliceWithUnacked(t: Test, g: Gateway, other: Gateway): Promise<{ alice: SmPeer; bob: RawWsClient }> {
  const alice = await SmPeer.login(g.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: false });
  t.teardown(() => alice.c.close());
  const bob = await ws(t, other);
  await bob.login('bob', 'bob-pw', 'desk');
  // The directory on bob's node must know alice's resource before bob writes to it.
  await eventually(() => other.server.app.sessions.get('localhost', 'alice', 'phone'), { message: 'alice seen from n2' });
  for (const id of ['m1', 'm2', 'm3']) bob.send(chat(alice.jid, id));
  await eventually(() => alice.h === 3, { message: 'alice got the three messages' });
  return { alice, bob };
}

t.test('a session enabled on node 1 resumes on node 2: the old transport gets conflict, the unacknowledged stanzas come once, in order', async (t) => {
  const { n1, n2 } = await cluster(t);
  const { alice, bob } = await aliceWithUnacked(t, n1, n2);
  // The client handled m1 only (h=1): m2 and m3 are resent.
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: 1 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', `resumed on the other node (${answer.toString()})`);
  t.equal(answer.attr('previd'), alice.smid);
  const error = await alice.c.until((el) => el.local === 'error');
  t.equal(streamErrorCondition(error), 'conflict', 'the old transport on node 1 gets conflict');
  await alice.c.until((el) => el.local === 'close' && el.ns === NS.FRAMING);
  await routed(peer.c, 'after-resume');
  t.same(peer.messageIds(), ['m2', 'm3'], 'the unacknowledged stanzas, in order, once');
  t.equal(n2.server.app.sessions.get('localhost', 'alice', 'phone')?.transport, 'websocket', 'node 2 holds the session now');
  // Bob writes again: it reaches node 2, never node 1's closed transport.
  await eventually(() => ![...n1.server.app.sessions.all].some((s) => s.full_jid === 'alice@localhost/phone'), { message: 'node 1 let go' });
  bob.send(chat('alice@localhost/phone', 'm4'));
  await peer.c.until((el) => isMsg(el) && el.attr('id') === 'm4');
  t.same(peer.messageIds(), ['m2', 'm3', 'm4']);
  t.same(alice.messageIds(), ['m1', 'm2', 'm3'], 'node 1 wrote nothing after the takeover');
  // Had node 1 handed its copy of the queue over, alice (not available) would find copies offline.
  await sleep(300);
  t.equal(await n1.server.storage.offline.count('localhost', 'alice'), 0, 'node 1 handed nothing over: the queue is node 2\'s');
});

t.test('WebSocket on node 1, BOSH on node 2, then WebSocket on node 1 again', async (t) => {
  const { n1, n2 } = await cluster(t);
  const { alice, bob } = await aliceWithUnacked(t, n1, n2);
  alice.c.ws.terminate();
  await alice.c.waitClosed();
  const bosh = new RawBoshClient(`${n2.server.httpUrl}/http-bind`);
  t.teardown(() => bosh.destroy());
  await bosh.create();
  await bosh.send({}, x('auth', { xmlns: NS.SASL, mechanism: 'PLAIN' }, plain('alice', 'alice-pw')));
  await bosh.restart();
  const first = await bosh.send({}, x('resume', { xmlns: NS.SM, previd: alice.smid!, h: 2 }));
  const got = payloads(first.body);
  while (got.filter(isMsg).length < 1) got.push(...payloads((await bosh.send()).body));
  t.ok(got.find((el) => el.local === 'resumed'), 'resumed over BOSH on node 2');
  t.same(got.filter(isMsg).map((m) => m.attr('id')), ['m3'], 'what h=2 did not cover');
  t.equal(n2.server.app.sessions.get('localhost', 'alice', 'phone')?.transport, 'bosh');
  bob.send(chat('alice@localhost/phone', 'm4'));
  const m4 = await bosh.until((el) => isMsg(el) && el.attr('id') === 'm4');
  t.ok(m4, 'a new message reaches the session on node 2 over BOSH');
  // The page reloads onto node 1 over WebSocket: h=4 acknowledges everything.
  const { peer, answer } = await SmPeer.resume(n1.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: 4 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', 'and back to node 1 over WebSocket');
  await routed(peer.c, 'back');
  t.same(peer.messageIds(), [], 'nothing resent: all was acknowledged');
  t.equal(n1.server.app.sessions.get('localhost', 'alice', 'phone')?.transport, 'websocket');
});

t.test('fencing: once another node has claimed the session, the old owner\'s write is refused and the stanza is routed again', async (t) => {
  const { n1, n2, redisUrl } = await cluster(t);
  const alice = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: false });
  t.teardown(() => alice.c.close());
  // Alice's other resource, available on node 2: where a message for a gone full JID goes (RFC 6121 §8.5.3.2.1).
  const other = await ws(t, n2);
  await other.login('alice', 'alice-pw', 'laptop');
  other.send("<presence xmlns='jabber:client'/>");
  await eventually(() => n1.server.app.sessions.get('localhost', 'alice', 'laptop')?.presence, { message: 'laptop available, seen from n1' });
  // Another node claims the session and node 1 has not heard of it yet (its sm-fenced message is still on the way).
  const r = await connectRedis(redisUrl, { warn: () => undefined }, 'test');
  t.teardown(() => r.destroy());
  const keys = smKeys(keyPrefix(redisUrl));
  const epoch = await r.hGet(keys.record(alice.smid!), 'epoch');
  t.equal(epoch, '1', 'node 1 owns the record');
  const claimed = await r.eval(CLAIM, { keys: [keys.record(alice.smid!), keys.queue(alice.smid!), keys.node('n3')], arguments: [epoch!, 'n3', alice.smid!, keyPrefix(redisUrl)] });
  t.ok(Array.isArray(claimed), 'claimed by n3');
  const bob = await ws(t, n1);
  await bob.login('bob', 'bob-pw', 'desk');
  bob.send(chat('alice@localhost/phone', 'late'));
  const error = await alice.c.until((el) => el.local === 'error');
  t.equal(streamErrorCondition(error), 'conflict', 'node 1 lets the session go');
  t.same(alice.messageIds(), [], 'the refused stanza was never written by node 1');
  const late = await other.until((el) => isMsg(el) && el.attr('id') === 'late');
  t.ok(late, 'the stanza reached alice on node 2');
  t.same(await r.lRange(keys.queue(alice.smid!), 0, -1), [], 'node 1 stored nothing after the claim');
  t.equal(await r.hGet(keys.record(alice.smid!), 'owner'), 'n3', 'node 1 did not delete the record it no longer owns');
});

t.test('a foreign or unknown previd gets item-not-found, and the session stays where it is', async (t) => {
  const { n1, n2 } = await cluster(t);
  const alice = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => alice.c.close());
  const delta = await baseline(n2.server);
  const foreign = await SmPeer.resume(n2.server.wsUrl, 'bob', 'bob-pw', alice.smid!, { autoAck: false });
  t.teardown(() => foreign.peer.c.close());
  t.equal(foreign.answer.local, 'failed');
  t.ok(foreign.answer.getChild('item-not-found', NS.STANZAS), 'another account\'s smid: item-not-found');
  const unknown = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', 'no-such-smid', { autoAck: false });
  t.teardown(() => unknown.peer.c.close());
  t.ok(unknown.answer.getChild('item-not-found', NS.STANZAS), 'an unknown smid: item-not-found');
  // Same answer on the wire; the metric tells them apart (the session is held by node 1, so from="none").
  t.equal(await delta('xmpp_sm_resumes_total', { outcome: 'wrong-user', from: 'none', to: 'websocket' }), 1, 'counted as wrong-user');
  t.equal(await delta('xmpp_sm_resumes_total', { outcome: 'unknown-smid', to: 'websocket' }), 1, 'the made-up one as unknown-smid');
  const bob = await ws(t, n2);
  await bob.login('bob', 'bob-pw', 'desk');
  await eventually(() => n2.server.app.sessions.get('localhost', 'alice', 'phone'), { message: 'alice seen from n2' });
  bob.send(chat('alice@localhost/phone', 'still'));
  await alice.c.until((el) => isMsg(el) && el.attr('id') === 'still');
  t.equal(alice.c.closed, undefined, 'alice\'s session on node 1 was not disturbed');
});

t.test('a dead node\'s session resumes on a survivor with its queue', async (t) => {
  const { n1, redisUrl } = await cluster(t);
  const dead = await startDeadOwner(t, redisUrl, 'n0', { resource: 'tablet', max: 60, ids: ['d1', 'd2'] });
  await dead.kill();
  const { peer, answer } = await SmPeer.resume(n1.server.wsUrl, 'alice', 'alice-pw', dead.smid, { autoAck: false });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', 'resumed on node 1 although node 0 is gone');
  await routed(peer.c, 'after');
  t.same(peer.messageIds(), ['d1', 'd2'], 'its queue, in order');
  t.equal(n1.server.app.sessions.get('localhost', 'alice', 'tablet')?.resource, 'tablet', 'bound to the JID it had');
});

t.test('a dead node\'s session not resumed in time is handed over: its messages are stored offline, once', async (t) => {
  const { n1, n2, redisUrl } = await cluster(t, { SM_STALE_H_ENABLED: 'true' });
  const dead = await startDeadOwner(t, redisUrl, 'n0', { resource: 'tablet', max: 1, ids: ['d1', 'd2'], handled: 7 });
  await dead.kill();
  // The hand-over follows the death (a lease, then a survivor's heartbeat): its time counts from there.
  await declaredDead(n1, 'n0');
  const storage = n1.server.storage;
  await eventually(async () => (await storage.offline.count('localhost', 'alice')) === 2, { timeout: 8000, message: 'two offline messages' });
  const r = await connectRedis(redisUrl, { warn: () => undefined }, 'test');
  t.teardown(() => r.destroy());
  t.equal(await r.exists(smKeys(keyPrefix(redisUrl)).record(dead.smid)), 0, 'the record is gone');
  const alice = await ws(t, n2);
  await alice.login('alice', 'alice-pw', 'again');
  alice.send("<presence xmlns='jabber:client'/>");
  const d1 = await alice.until((el) => isMsg(el) && el.attr('id') === 'd1');
  t.ok(d1.getChildren('delay', NS.DELAY).length > 0, 'with its XEP-0203 stamp');
  await alice.until((el) => isMsg(el) && el.attr('id') === 'd2');
  await sleep(200);
  t.equal(alice.frames.filter((el) => isMsg(el)).length, 2, 'each once');
  const resumed = await SmPeer.resume(n1.server.wsUrl, 'alice', 'alice-pw', dead.smid, { autoAck: false });
  t.teardown(() => resumed.peer.c.close());
  t.ok(resumed.answer.getChild('item-not-found', NS.STANZAS), 'no longer resumable');
  t.equal(resumed.answer.attr('h'), '7', 'and the h it had handled is told (XEP-0198 §5 stale h)');
});

t.test('a takeover keeps the session\'s presence, priority, roster interest, blocklist request and directed-presence recipients: contacts see no unavailable', async (t) => {
  const { n1, n2 } = await cluster(t);
  await addUsers(n1, ['carol']);
  const item = (jid: string) => ({ jid, name: undefined, subscription: 'both' as const, ask: false, approved: false, groups: [] });
  await n1.server.storage.rosters.putItem('localhost', 'alice', item('bob@localhost'), 1);
  await n1.server.storage.rosters.putItem('localhost', 'bob', item('alice@localhost'), 1);
  const bob = await ws(t, n2);
  await bob.login('bob', 'bob-pw', 'desk');
  bob.send("<presence xmlns='jabber:client'/>");
  // Bob available, and node 1 knows it, before alice's broadcast looks for him.
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'desk')?.presence, { message: 'bob available, seen from n1' });
  const alice = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => alice.c.close());
  alice.c.send("<iq xmlns='jabber:client' type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>");
  await alice.c.until((el) => el.attr('id') === 'r1');
  alice.c.send("<iq xmlns='jabber:client' type='get' id='b1'><blocklist xmlns='urn:xmpp:blocking'/></iq>");
  await alice.c.until((el) => el.attr('id') === 'b1');
  alice.c.send("<presence xmlns='jabber:client'><priority>5</priority></presence>");
  await bob.until((el) => el.local === 'presence' && el.attr('from') === alice.jid && el.attr('type') === undefined);
  // Carol, on the old owner's node and not a contact, got directed presence (RFC 6121 §4.6).
  const carol = await ws(t, n1);
  await carol.login('carol', 'carol-pw', 'c');
  carol.send("<presence xmlns='jabber:client'/>");
  alice.c.send("<presence xmlns='jabber:client' to='carol@localhost/c'/>");
  await carol.until((el) => el.local === 'presence' && el.attr('from') === alice.jid && el.attr('type') === undefined);
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: alice.h });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', answer.toString());
  await alice.c.until((el) => el.local === 'close' && el.ns === NS.FRAMING);
  const moved = n2.server.app.sessions.get('localhost', 'alice', 'phone');
  t.equal(moved?.presence?.getChildText('priority'), '5', 'available on node 2, as it was');
  t.equal(moved?.priority, 5);
  t.equal(moved?.interested, true, 'still an interested resource');
  t.equal(moved?.blocklistRequested, true, 'still gets blocklist pushes (XEP-0191 §3.3)');
  t.same([...(moved?.directed?.keys() ?? [])], ['carol@localhost/c'], 'still owes carol unavailable (RFC 6121 §4.6.3)');
  await eventually(() => n1.server.app.sessions.get('localhost', 'alice', 'phone')?.presence, { message: 'node 1 sees alice available on node 2' });
  await routed(bob, 'after-move');
  await sleep(300);
  t.notOk(bob.frames.some((el) => el.local === 'presence' && el.attr('from') === alice.jid && el.attr('type') === 'unavailable'), 'bob never saw alice go unavailable');
  t.notOk(carol.frames.some((el) => el.local === 'presence' && el.attr('from') === alice.jid && el.attr('type') === 'unavailable'), 'nor did carol: the old owner did not end her directed presence');
  peer.c.send(`<close xmlns='${NS.FRAMING}'/>`);
  await carol.until((el) => el.local === 'presence' && el.attr('from') === alice.jid && el.attr('type') === 'unavailable');
  t.pass('carol gets unavailable when the session ends on node 2');
});

t.test('a session that ends with an offline message delivered and not acknowledged leaves it in storage once', async (t) => {
  const { n1 } = await cluster(t);
  await n1.server.storage.offline.push('localhost', 'bob', "<message xmlns='jabber:client' from='alice@localhost/a' to='bob@localhost' type='chat' id='o1'><body>o1</body></message>", 100);
  const bob = await SmPeer.login(n1.server.wsUrl, 'bob', 'bob-pw', 'desk', { autoAck: false });
  t.teardown(() => bob.c.close());
  bob.c.send("<presence xmlns='jabber:client'/>");
  await bob.c.until((el) => isMsg(el) && el.attr('id') === 'o1');
  bob.c.send(`<close xmlns='${NS.FRAMING}'/>`);
  await bob.c.waitClosed();
  // The end of the session is decided with the journal (a round trip); its hand-over keeps o1 where it is.
  await eventually(async () => (await n1.server.storage.offline.list('localhost', 'bob')).length, { message: 'the offline list' });
  await sleep(300);
  t.same((await n1.server.storage.offline.list('localhost', 'bob')).map((m) => /id=['"](\w+)['"]/.exec(m.stanza)?.[1] ?? m.stanza), ['o1'], 'still there for the next login, once');
});

t.test('a takeover keeps a presence sent with as many attributes as a client may: the snapshot is read back with the bounds of what the server wrote', async (t) => {
  const { n1, n2 } = await cluster(t);
  const alice = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => alice.c.close());
  // 64 attributes as sent (the client's limit); the snapshot adds the server's `from` and `xmlns`.
  alice.c.send(`<presence ${Array.from({ length: 64 }, (_, i) => `a${i}='${i}'`).join(' ')}><priority>3</priority></presence>`);
  await eventually(() => n1.server.app.sessions.get('localhost', 'alice', 'phone')?.presence, { message: 'alice available on node 1' });
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: alice.h });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', answer.toString());
  const moved = n2.server.app.sessions.get('localhost', 'alice', 'phone');
  t.equal(moved?.presence?.getChildText('priority'), '3', 'still available on node 2, with its presence');
  t.equal(moved?.presence?.attr('a63'), '63');
});

t.test('presence CSI held on the old owner for an inactive session reaches the session once it is resumed on another node', async (t) => {
  const { n1, n2 } = await cluster(t);
  const item = (jid: string) => ({ jid, name: undefined, subscription: 'both' as const, ask: false, approved: false, groups: [] });
  await n1.server.storage.rosters.putItem('localhost', 'alice', item('bob@localhost'), 1);
  await n1.server.storage.rosters.putItem('localhost', 'bob', item('alice@localhost'), 1);
  const bob = await ws(t, n2);
  await bob.login('bob', 'bob-pw', 'desk');
  bob.send("<presence xmlns='jabber:client'/>");
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'desk')?.presence, { message: 'bob available, seen from n1' });
  const alice = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => alice.c.close());
  alice.c.send("<presence xmlns='jabber:client'/>");
  await alice.c.until((el) => el.local === 'presence' && el.attr('from') === 'bob@localhost/desk');
  // XEP-0352: alice's client goes inactive; bob's next presence is held on node 1.
  alice.c.send("<inactive xmlns='urn:xmpp:csi:0'/>");
  await routed(alice.c, 'inactive');
  bob.send("<presence xmlns='jabber:client'><status>held</status></presence>");
  await routed(bob, 'held');
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'desk')?.presence?.getChildText('status') === 'held', { message: 'n1 saw bob\'s new presence' });
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: alice.h });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', answer.toString());
  const held = await peer.c.until((el) => el.local === 'presence' && el.attr('from') === 'bob@localhost/desk' && el.getChildText('status') === 'held', 5000);
  t.ok(held, 'bob\'s latest presence reaches the resumed session');
});

/**
 * A rolling restart's SIGTERM on one node (App.leave, what main.ts runs in
 * a cluster; issue 14 item 5), in-process gateways on one Redis and one
 * PostgreSQL with raw clients: /readyz turns 503 at once and new streams
 * are refused; a WebSocket with XEP-0198 is dropped (1001, no stream error
 * and no </close>) and a BOSH one gets its held request answered empty,
 * then item-not-found; both resume on the other node with every
 * unacknowledged stanza once, also one that arrived during the drain; a
 * session without SM gets system-shutdown; a session nobody resumed during
 * the drain is still resumable afterwards, and one that never is gets
 * handed over (offline) by the survivor, once. The last node of a cluster
 * ends its sessions as a single process does.
 */
import t, { type Test } from 'tap';
import { NS, x, type XmlElement } from '../../src/xml/index.js';
import { addUsers, clusterBackends, startGateway, type Gateway } from '../helpers/gateways.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { RawBoshClient, payloads, terminalCondition } from '../helpers/bosh-client.js';
import { SmPeer, chat, routed } from '../helpers/sm-peer.js';
import { plain } from '../helpers/scram-client.js';
import { eventually, sleep } from '../helpers/eventually.js';
import { connectRedis, keyPrefix } from '../../src/cluster/redis.js';
import { openPostgresStorage } from '../../src/storage/postgres/index.js';
import type { ModuleContext } from '../../src/xmpp/context.js';
import { PRIORITY } from '../../src/xmpp/priorities.js';
import { parseMetrics, value } from '../helpers/metrics-text.js';
import { deferred } from '../helpers/deferred.js';

const backends = clusterBackends(t);
const isMsg = (el: XmlElement): boolean => el.local === 'message';
const ids = (els: readonly XmlElement[]): Array<string | undefined> => els.filter(isMsg).map((m) => m.attr('id'));

async function cluster(t: Test, env: Record<string, string> = {}): Promise<{ n1: Gateway; n2: Gateway; redisUrl: string }> {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', CLUSTER_DRAIN_TIMEOUT: '2', ...env });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice', 'bob', 'carol', 'dave', 'erin']);
  return { n1, n2, redisUrl: opts.redisUrl };
}

async function ws(t: Test, g: Gateway, user: string, resource: string): Promise<RawWsClient> {
  const c = await RawWsClient.connect(g.server.wsUrl);
  t.teardown(() => c.close());
  await c.login(user, `${user}-pw`, resource);
  return c;
}

/** `user` on `g` with resumable SM, holding `n` messages from `from` it has not acknowledged. */
async function smWith(t: Test, g: Gateway, other: Gateway, from: RawWsClient, user: string, msgIds: readonly string[]): Promise<SmPeer> {
  const peer = await SmPeer.login(g.server.wsUrl, user, `${user}-pw`, 'phone', { autoAck: false });
  t.teardown(() => peer.c.close());
  await eventually(() => other.server.app.sessions.get('localhost', user, 'phone'), { message: `${user} seen from the other node` });
  for (const id of msgIds) from.send(chat(peer.jid, id));
  await eventually(() => peer.h === msgIds.length, { message: `${user} got ${msgIds.join(', ')}` });
  return peer;
}

/** A BOSH stream on `url`: PLAIN, restart, then `first` (bind or resume); what came back. */
async function boshStream(t: Test, url: string, user: string, first: XmlElement): Promise<{ c: RawBoshClient; got: XmlElement[] }> {
  const c = new RawBoshClient(url);
  t.teardown(() => c.destroy());
  await c.create();
  await c.send({}, x('auth', { xmlns: NS.SASL, mechanism: 'PLAIN' }, plain(user, `${user}-pw`)));
  await c.restart();
  return { c, got: payloads((await c.send({}, first)).body) };
}

t.test('SIGTERM in a cluster: not ready, nothing new accepted, transports dropped, SM sessions resume on the other node with their queue once', async (t) => {
  const { n1, n2, redisUrl } = await cluster(t);
  const bob = await ws(t, n2, 'bob', 'desk');
  const alice = await smWith(t, n1, n2, bob, 'alice', ['m1', 'm2', 'm3']);
  const dave = await ws(t, n1, 'dave', 'nosm');
  // Carol over BOSH with resumable SM, one message received and not acknowledged.
  const { c: carol } = await boshStream(t, `${n1.server.httpUrl}/http-bind`, 'carol', x('iq', { xmlns: NS.CLIENT, type: 'set', id: 'b' }, x('bind', { xmlns: NS.BIND }, x('resource', {}, 'web'))));
  const enabled = payloads((await carol.send({}, x('enable', { xmlns: NS.SM, resume: 'true' }))).body).find((el) => el.local === 'enabled');
  const carolSmid = enabled?.attr('id');
  t.ok(carolSmid, 'carol enabled resumable SM over BOSH');
  await eventually(() => n2.server.app.sessions.get('localhost', 'carol', 'web'), { message: 'carol seen from n2' });
  bob.send(chat('carol@localhost/web', 'c1'));
  await carol.until((el) => isMsg(el) && el.attr('id') === 'c1');
  // Carol's next request is held when the node goes.
  const held = carol.send();
  await sleep(100);

  const leaving = n1.server.app.leave();
  t.equal((await n1.server.app.http.inject({ url: '/readyz' })).statusCode, 503, '/readyz answers 503 at once');
  const closed = await alice.c.waitClosed();
  t.equal(closed.code, 1001, 'the WebSocket is closed with 1001 going away');
  t.notOk(alice.c.frames.some((el) => el.local === 'error' || (el.local === 'close' && el.ns === NS.FRAMING)), 'no stream error and no <close/>: a network cut to the client');
  const daveError = await dave.until((el) => el.local === 'error');
  t.equal(streamErrorCondition(daveError), 'system-shutdown', 'a session without SM is ended with system-shutdown');
  const answered = await held;
  t.equal(answered.body?.attr('type'), undefined, 'the held BOSH request is answered with an empty body, not a terminate');
  t.same(payloads(answered.body), []);
  await t.rejects(RawWsClient.connect(n1.server.wsUrl), 'no new WebSocket on the leaving node');
  // Carol's next request reaches the other node (a balancer's next pick): her sid is gone, she must resume.
  const next = await new RawBoshClient(`${n2.server.httpUrl}/http-bind`, { sid: carol.sid, rid: carol.rid }).send();
  t.equal(terminalCondition(next), 'item-not-found', 'a request for the dropped sid gets item-not-found');
  // A message for alice while she is between nodes: it waits in her (journaled) queue.
  bob.send(chat('alice@localhost/phone', 'm4'));
  await sleep(200);

  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: 1 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', `alice resumed on n2 (${answer.toString()})`);
  await routed(peer.c, 'after');
  t.same(peer.messageIds(), ['m2', 'm3', 'm4'], 'every unacknowledged stanza, the one sent during the drain too, in order, once');
  const resumed = await boshStream(t, `${n2.server.httpUrl}/http-bind`, 'carol', x('resume', { xmlns: NS.SM, previd: carolSmid!, h: 0 }));
  t.ok(resumed.got.some((el) => el.local === 'resumed'), 'carol resumed over BOSH on n2');
  const carolGot = [...resumed.got];
  while (!carolGot.some(isMsg)) carolGot.push(...payloads((await resumed.c.send()).body));
  t.same(ids(carolGot), ['c1'], 'with her unacknowledged message, once');

  await leaving;
  const r = await connectRedis(redisUrl, { warn: () => undefined }, 'test');
  t.teardown(() => r.destroy());
  t.equal(await r.exists(`${keyPrefix(redisUrl)}node:n1`), 0, 'n1 released its lease');
  await sleep(300);
  t.same(ids(peer.c.frames), ['m2', 'm3', 'm4'], 'nothing twice after the node left');
  t.equal(await n2.server.storage.offline.count('localhost', 'alice'), 0, 'and nothing handed to offline storage');
});

t.test('a session nobody resumed during the drain stays resumable after the node left; one never resumed is handed over once by the survivor', async (t) => {
  const { n1, n2 } = await cluster(t, { SM_RESUME_TIMEOUT: '3', CLUSTER_DRAIN_TIMEOUT: '1' });
  const bob = await ws(t, n2, 'bob', 'desk');
  const erin = await smWith(t, n1, n2, bob, 'erin', ['e1', 'e2']);
  const dave = await smWith(t, n1, n2, bob, 'dave', ['d1']);
  await n1.server.app.leave();
  await erin.c.waitClosed();
  // This process will not see their end: each gets its one session-end (reason 'released') here.
  const ended = parseMetrics(await n1.server.app.registry.metrics());
  t.equal(value(ended, 'xmpp_sessions_ended_total', { reason: 'released' }), 2, 'erin and dave: left to the cluster, counted once each');
  // After the node is gone: the survivor takes the record from Redis, no lease to wait for.
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'erin', 'erin-pw', erin.smid!, { autoAck: false, h: 1 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', `erin resumed after n1 left (${answer.toString()})`);
  await routed(peer.c, 'after');
  t.same(peer.messageIds(), ['e2'], 'with what h=1 did not cover');
  // Dave never comes back: n2 owns his resume timeout and hands his queue over when it runs out.
  await eventually(async () => (await n2.server.storage.offline.count('localhost', 'dave')) === 1, { timeout: 10_000, message: "dave's message stored offline" });
  await sleep(1500);
  t.equal(await n2.server.storage.offline.count('localhost', 'dave'), 1, 'once');
  t.ok(dave.c.closed, "dave's transport was dropped");
});

t.test('the last node of the cluster ends its sessions as a single process does: system-shutdown, the unacknowledged stored offline', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', CLUSTER_DRAIN_TIMEOUT: '2' });
  const only = await startGateway(t, 'only', opts);
  await addUsers(only, ['alice', 'bob']);
  const bob = await ws(t, only, 'bob', 'desk');
  const alice = await smWith(t, only, only, bob, 'alice', ['m1', 'm2']);
  await only.server.app.leave();
  const error = await alice.c.until((el) => el.local === 'error');
  t.equal(streamErrorCondition(error), 'system-shutdown', 'no other node to resume on: the session is ended');
  // The app closed its storage with it: read through a connection of our own.
  const storage = await openPostgresStorage({ url: opts.databaseUrl });
  const stored = await storage.offline.list('localhost', 'alice').finally(() => storage.close());
  t.same(stored.map((m) => /id=['"](m\d)['"]/.exec(m.stanza)?.[1]).sort(), ['m1', 'm2'], 'its unacknowledged messages are stored offline, not left in Redis');
});

t.test('a stanza routed to a hibernating session while the leaving node drains its core (after it left) is in the queue a resumption gets', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', CLUSTER_DRAIN_TIMEOUT: '0' });
  // A message from bob to alice that is still on its way (a handler awaiting) when n1 drops its transports.
  const { promise: gate, resolve: open } = deferred();
  let held = false;
  const hold = (ctx: ModuleContext): void => {
    ctx.hooks.transform('message/full', ({ stanza }) => {
      if (stanza.attr('id') !== 'late') return undefined;
      held = true;
      return gate;
    }, PRIORITY.route.archive + 1);
  };
  const n1 = await startGateway(t, 'n1', { ...opts, features: [hold] });
  // n2 judges no other node for a minute: the session stays n1's in Redis until it is resumed.
  const n2 = await startGateway(t, 'n2', { ...opts, env: { ...opts.env, CLUSTER_NODE_TTL: '60000' } });
  await addUsers(n1, ['alice', 'bob']);
  const alice = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: false });
  t.teardown(() => alice.c.close());
  const bob = await ws(t, n1, 'bob', 'desk');
  bob.send(chat('alice@localhost/phone', 'late'));
  await eventually(() => held, { message: 'bob\'s message held on its way' });
  // It goes on once the node has left the cluster and released its sessions (the core's drain).
  const release = n1.cluster.release.bind(n1.cluster);
  Object.defineProperty(n1.cluster, 'release', { configurable: true, value: () => { release(); open(); } });
  await n1.server.app.leave();
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: false, h: 0 });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', `alice resumed on n2 (${answer.toString()})`);
  await routed(peer.c, 'after');
  t.same(peer.messageIds(), ['late'], 'the message reached her queue');
});

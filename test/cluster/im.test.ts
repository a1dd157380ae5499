/**
 * Instant messaging across cluster nodes: two or three in-process gateways
 * on one Redis and one PostgreSQL, xmpp.js clients on different nodes.
 * Messages to full and bare JIDs, presence broadcast and probes, roster
 * pushes, carbons, a duplicate resource (conflict), a message for a
 * resource that just went away (offline, not lost), and a dead node's
 * directory entries removed by a survivor.
 */
import t, { type Test } from 'tap';
import { addUsers, clusterBackends, declaredDead, startGateway, type Gateway } from '../helpers/gateways.js';
import { login, xml, nextReceived, becomeAvailable, type XmppJsClient, type XmlEl } from '../helpers/xmppjs.js';
import { eventually } from '../helpers/eventually.js';
import { NS, x } from '../../src/xml/index.js';
import { RawBoshClient } from '../helpers/bosh-client.js';
import { createDirectory } from '../../src/cluster/directory.js';
import type { Feature } from '../../src/server.js';

const backends = clusterBackends(t);

const USERS = ['alice', 'bob'];

/** Two (or `n`) gateways n1, n2… with `env` on a fresh Redis database and PostgreSQL database, with alice and bob. */
async function cluster(t: Test, n = 2, env: Record<string, string> = {}): Promise<Gateway[]> {
  const opts = await backends.options(env);
  const gateways: Gateway[] = [];
  for (let i = 1; i <= n; i++) gateways.push(await startGateway(t, `n${i}`, opts));
  await addUsers(gateways[0]!, USERS);
  return gateways;
}

type Client = XmppJsClient & { jid: string };
const user = (t: Test, g: Gateway, name: string, resource: string): Promise<Client> =>
  login(t, g.server, { username: name, password: `${name}-pw`, resource });

/** Waits until node `g` sees `full` (its own session or a remote one). */
async function known(g: Gateway, full: string, available = false): Promise<void> {
  const m = /^([^@]+)@([^/]+)\/(.+)$/.exec(full)!;
  await eventually(() => {
    const s = g.server.app.sessions.get(m[2]!, m[1]!, m[3]!);
    return s && (!available || s.presence !== undefined);
  }, { message: `node sees ${full}${available ? ' available' : ''}` });
}

const chat = (to: string, body: string): XmlEl => xml('message', { to, type: 'chat', id: body }, xml('body', {}, body));
const body = (el: XmlEl): string | undefined => el.getChildText('body') ?? undefined;

/** Mutual subscription (both) between alice and bob, written to the shared database before they log in. */
async function befriend(g: Gateway): Promise<void> {
  const item = (jid: string) => ({ jid, name: undefined, subscription: 'both' as const, ask: false, approved: false, groups: [] });
  await g.server.storage.rosters.putItem('localhost', 'alice', item('bob@localhost'), 1);
  await g.server.storage.rosters.putItem('localhost', 'bob', item('alice@localhost'), 1);
}

t.test('a message to a full JID and to a bare JID reaches a client on the other node', async (t) => {
  const [n1, n2] = await cluster(t);
  const alice = await user(t, n1!, 'alice', 'a1');
  const bob = await user(t, n2!, 'bob', 'b1');
  await becomeAvailable(bob);
  await known(n1!, bob.jid, true);
  await alice.xmpp.send(chat(bob.jid, 'to-full'));
  const first = await bob.inbox.next('the message to the full JID');
  t.equal(body(first), 'to-full');
  t.equal(first.attrs.from, alice.jid, 'from stamped by the sender\'s node');
  await alice.xmpp.send(chat('bob@localhost', 'to-bare'));
  t.equal(body(await bob.inbox.next('the message to the bare JID')), 'to-bare');
  await bob.xmpp.send(chat(alice.jid, 'reply'));
  t.equal(body(await alice.inbox.next('the reply the other way')), 'reply');
});

t.test('across transports: a WebSocket client on node 1 and a BOSH client on node 2', async (t) => {
  const [n1, n2] = (await cluster(t, 2, { ALLOW_INSECURE_PLAIN: 'true' })) as [Gateway, Gateway];
  const alice = await user(t, n1, 'alice', 'a1');
  const bob = new RawBoshClient(`${n2.server.httpUrl}/http-bind`);
  t.teardown(() => bob.destroy());
  const bobJid = await bob.login('bob', 'bob-pw', 'bosh');
  await known(n1, bobJid);
  await alice.xmpp.send(chat(bobJid, 'to-bosh'));
  const got = await bob.until((el) => el.name === 'message');
  t.equal(got.getChildText('body'), 'to-bosh');
  t.equal(got.attr('from'), alice.jid);
  // The request is held (XEP-0124 §10) until the server has something for bob: not awaited.
  void bob.send({}, x('message', { xmlns: NS.CLIENT, to: alice.jid, type: 'chat', id: 'back' }, x('body', {}, 'from-bosh'))).catch(() => undefined);
  t.equal(body(await alice.inbox.next('the reply from BOSH')), 'from-bosh');
});

t.test('presence is broadcast to contacts on another node, and probes are answered across nodes', async (t) => {
  const [n1, n2] = await cluster(t);
  await befriend(n1!);
  const bob = await user(t, n2!, 'bob', 'b1');
  await becomeAvailable(bob);
  await known(n1!, bob.jid, true);
  const alice = await user(t, n1!, 'alice', 'a1');
  const probed = nextReceived(alice, (el) => el.is('presence') && el.attrs.from === bob.jid, 'bob\'s presence for alice\'s probe');
  const broadcast = nextReceived(bob, (el) => el.is('presence') && el.attrs.from === alice.jid && el.attrs.type === undefined, 'alice\'s broadcast');
  await becomeAvailable(alice);
  t.ok(await probed, 'alice (node 1) learns bob\'s presence on node 2 (RFC 6121 §4.2.1 probe)');
  t.ok(await broadcast, 'bob (node 2) gets alice\'s initial presence');
  const gone = nextReceived(bob, (el) => el.is('presence') && el.attrs.from === alice.jid && el.attrs.type === 'unavailable', 'alice\'s unavailable');
  await alice.xmpp.send(xml('presence', { type: 'unavailable' }));
  t.ok(await gone, 'and her unavailable presence');
});

t.test('a roster push reaches an interested resource on another node, whose node reloads the roster', async (t) => {
  const [n1, n2] = await cluster(t);
  const a1 = await user(t, n1!, 'alice', 'a1');
  const a2 = await user(t, n2!, 'alice', 'a2');
  await a2.xmpp.iqCaller.request(xml('iq', { type: 'get' }, xml('query', { xmlns: NS.ROSTER })));
  await eventually(() => n1!.server.app.sessions.get('localhost', 'alice', 'a2')?.interested === true, { message: 'node 1 sees a2 interested' });
  const push = nextReceived(a2, (el) => el.is('iq') && el.attrs.type === 'set' && el.getChild('query', NS.ROSTER) !== undefined, 'the roster push on node 2');
  await a1.xmpp.iqCaller.request(xml('iq', { type: 'set' }, xml('query', { xmlns: NS.ROSTER }, xml('item', { jid: 'carol@localhost', name: 'Carol' }))));
  const item = (await push).getChild('query', NS.ROSTER)?.getChild('item');
  t.equal(item?.attrs.jid, 'carol@localhost', 'the pushed item');
  // Node 2's copy of the account was read again: its own roster get has the item.
  const roster = await eventually(async () => {
    const result = await a2.xmpp.iqCaller.request(xml('iq', { type: 'get' }, xml('query', { xmlns: NS.ROSTER })));
    return result.getChild('query', NS.ROSTER)?.getChildren('item').some((i: XmlEl) => i.attrs.jid === 'carol@localhost') ? result : undefined;
  }, { message: 'node 2 has the new item' });
  t.ok(roster);
});

t.test('carbons: a resource on another node gets sent and received copies', async (t) => {
  const [n1, n2] = await cluster(t);
  const a1 = await user(t, n1!, 'alice', 'a1');
  const a2 = await user(t, n2!, 'alice', 'a2');
  const bob = await user(t, n1!, 'bob', 'b1');
  await a2.xmpp.iqCaller.request(xml('iq', { type: 'set' }, xml('enable', { xmlns: NS.CARBONS })));
  await eventually(() => n1!.server.app.sessions.get('localhost', 'alice', 'a2')?.carbons === true, { message: 'node 1 sees a2 with carbons' });
  t.equal(n1!.server.app.sessions.carbonsEnabled, 1, 'counted on node 1');
  await a1.xmpp.send(chat(bob.jid, 'out'));
  const sent = await a2.inbox.next('the sent carbon');
  t.equal(sent.getChild('sent', NS.CARBONS)?.getChild('forwarded', NS.FORWARD)?.getChild('message')?.getChildText('body'), 'out');
  await bob.xmpp.send(chat(a1.jid, 'in'));
  const received = await a2.inbox.next('the received carbon');
  t.equal(received.getChild('received', NS.CARBONS)?.getChild('forwarded', NS.FORWARD)?.getChild('message')?.getChildText('body'), 'in');
});

t.test('a duplicate resource on another node: the first session gets conflict', async (t) => {
  const [n1, n2] = await cluster(t);
  const first = await user(t, n1!, 'alice', 'same');
  const closed = nextReceived(first, (el) => el.is('error') && el.getChild('conflict') !== undefined, 'the conflict stream error');
  const second = await user(t, n2!, 'alice', 'same');
  t.ok(await closed, 'RFC 6120 §7.7.2.2: the old session ends with <conflict/>');
  t.equal(second.jid, 'alice@localhost/same');
  // Both nodes agree the resource is on node 2 now.
  await eventually(() => {
    const s = n1!.server.app.sessions.get('localhost', 'alice', 'same');
    return s !== undefined && !n1!.server.app.sessions.all.has(s);
  }, { message: 'node 1 sees the session on node 2' });
  await second.xmpp.send(chat('bob@localhost', 'still-here'));
  t.equal(second.xmpp.status, 'online', 'the new session lives on');
});

t.test('a later bind in the directory ends the local session with conflict, unless a cluster-conflict filter takes it over', async (t) => {
  const opts = await backends.options();
  // What stream management's takeover does: the session moved, it is not replaced.
  const moving: Feature = (ctx) => {
    ctx.hooks.filter('cluster-conflict', ({ session }) => (session.resource === 'moving' ? 'drop' : undefined), 0);
  };
  const n1 = await startGateway(t, 'n1', { ...opts, features: [moving] });
  await addUsers(n1, USERS);
  const plain = await user(t, n1, 'alice', 'plain');
  const mover = await user(t, n1, 'alice', 'moving');
  // Another node's binds, straight into the directory (no bind.ts on the way: only the mirror tells n1).
  const other = createDirectory(n1.cluster.node, () => undefined, { info: () => undefined, warn: () => undefined });
  const entry = (resource: string) => ({ node: 'n9', sid: `n9:${resource}`, priority: 0, presence: null, interested: false, carbons: false, anonymous: false });
  const closed = nextReceived(plain, (el) => el.is('error') && el.getChild('conflict') !== undefined, 'conflict for alice/plain');
  await other.bind('alice@localhost', 'plain', entry('plain'));
  await other.bind('alice@localhost', 'moving', entry('moving'));
  t.ok(await closed, 'the session whose resource another node bound later ends with conflict');
  // A marker written after it: once n1 sees it, the mirror has handled alice/moving (changes arrive in Redis order).
  await other.bind('alice@localhost', 'marker', entry('marker'));
  await known(n1, 'alice@localhost/marker');
  t.equal(mover.xmpp.status, 'online', 'the filtered one is left to its filter');
  t.notOk(mover.received.some((el) => el.is('error')), 'and got no stream error');
});

t.test('the same resource bound on two nodes at once: one session keeps it, and both nodes agree which', async (t) => {
  const [n1, n2] = await cluster(t);
  const [r1, r2] = await Promise.allSettled([user(t, n1!, 'alice', 'race'), user(t, n2!, 'alice', 'race')]);
  // The loser may get its conflict before xmpp.js counts the login done: then its login fails.
  t.ok(r1.status === 'fulfilled' || r2.status === 'fulfilled', 'at least one login went through');
  const conflicted = (r: PromiseSettledResult<Client>): boolean => r.status === 'rejected'
    || r.value.received.some((el) => el.is('error') && el.getChild('conflict') !== undefined);
  await eventually(() => conflicted(r1) !== conflicted(r2), { message: 'exactly one of the two got conflict' });
  const [won, home] = conflicted(r1) ? [r2, n2!] : [r1, n1!];
  const winner = (won as PromiseFulfilledResult<Client>).value;
  const other = home === n1 ? n2! : n1!;
  await eventually(() => {
    const there = other.server.app.sessions.get('localhost', 'alice', 'race');
    const here = home.server.app.sessions.get('localhost', 'alice', 'race');
    return here !== undefined && home.server.app.sessions.all.has(here) && there !== undefined && !other.server.app.sessions.all.has(there);
  }, { message: 'the winner\'s node holds it, the other node has its stub' });
  t.equal(winner.xmpp.status, 'online');
});

t.test('after its subscriber reconnects, a node writes again what the directory lost of its sessions', async (t) => {
  const [n1, n2] = await cluster(t);
  const alice = await user(t, n1!, 'alice', 'a1');
  await becomeAvailable(alice);
  await known(n2!, alice.jid, true);
  const redisCli = n1!.cluster.node.redis;
  const prefix = n1!.cluster.node.prefix;
  // Redis loses the entry without a word (a failover, a flush): nobody is told.
  await redisCli.del(`${prefix}dir:alice@localhost`);
  t.ok(n2!.server.app.sessions.get('localhost', 'alice', 'a1'), 'node 2 still has its stub');
  // Every subscriber connection drops and reconnects: each node loads the directory again.
  await redisCli.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub']);
  await eventually(async () => (await redisCli.hGet(`${prefix}dir:alice@localhost`, 'a1')) !== null, { message: 'node 1 wrote alice/a1 again' });
  await known(n2!, alice.jid, true);
  const bob = await user(t, n2!, 'bob', 'b1');
  await bob.xmpp.send(chat(alice.jid, 'found-again'));
  t.equal(body(await alice.inbox.next('the message from node 2')), 'found-again');
});

t.test('a message for a resource that just went away on the other node is stored offline, not lost', async (t) => {
  const [n1, n2] = await cluster(t);
  const alice = await user(t, n1!, 'alice', 'a1');
  // An entry in node 2's inbox for a resource that is no longer there: routed again, to offline storage.
  await n1!.cluster.delivery.send('n2', { kind: 'stanza', to: 'bob@localhost/gone', xml: `<message xmlns='jabber:client' from='${alice.jid}' to='bob@localhost/gone' type='chat'><body>late</body></message>` });
  const stored = await eventually(async () => {
    const list = await n2!.server.storage.offline.list('localhost', 'bob');
    return list.length > 0 ? list : undefined;
  }, { message: 'the message in offline storage' });
  t.match(stored[0]!.stanza, /late/);
  // And through clients: bob leaves node 2, alice's message to his resource ends offline too.
  const bob = await user(t, n2!, 'bob', 'b1');
  await becomeAvailable(bob);
  await known(n1!, bob.jid, true);
  await bob.xmpp.stop();
  await alice.xmpp.send(chat(bob.jid, 'after'));
  await eventually(async () => (await n1!.server.storage.offline.list('localhost', 'bob')).some((m) => m.stanza.includes('after')), { message: 'the second message offline' });
  const back = await user(t, n1!, 'bob', 'b2');
  await becomeAvailable(back);
  const later: Array<string | undefined> = [];
  while (!later.includes('after')) later.push(body(await back.inbox.next('offline messages at the next login')));
  // 'late' was waiting when b1 became available and went to b1 then (acknowledged, so removed); or, if b1
  // left before acknowledging it, it is still stored and comes again now: at least once, never lost.
  const all = [...bob.inbox.items.map(body), ...later];
  t.ok(all.includes('late'), "'late' delivered from offline storage (XEP-0160)");
  t.equal(later.filter((b) => b === 'after').length, 1, "'after' delivered at the next login, once");
});

t.test('messages a full inbox refuses come back to the sender as errors, none silently lost', async (t) => {
  const [n1, n2] = (await cluster(t, 2, { CLUSTER_INBOX_MAX_ENTRIES: '10' })) as [Gateway, Gateway];
  const alice = await user(t, n1, 'alice', 'a1');
  const bob = await user(t, n2, 'bob', 'b1');
  await becomeAvailable(bob);
  await known(n1, bob.jid, true);
  // Node 2 stops reading its inbox (busy, or stuck): entries pile up to the cap.
  await n2.cluster.delivery.stop();
  for (let i = 0; i < 15; i++) await alice.xmpp.send(chat(bob.jid, `m${i}`));
  const errors = await eventually(() => {
    const got = alice.received.filter((el) => el.is('message') && el.attrs.type === 'error');
    return got.length >= 5 ? got : undefined;
  }, { message: 'five errors for alice' });
  t.equal(errors.length, 5, 'the five past the cap of 10');
  t.ok(errors.every((el) => el.getChild('error')?.getChild('resource-constraint') !== undefined), 'each a resource-constraint error');
  t.same(errors.map((el) => el.attrs.id).sort(), ['m10', 'm11', 'm12', 'm13', 'm14'], 'for the messages that did not fit');
  // Node 2 shuts down: what is left in its inbox is handled on the way out, to bob while
  // his stream is still open, then to offline storage.
  await n2.stop();
  const delivered = bob.inbox.items.map(body);
  const stored = (await n1.server.storage.offline.list('localhost', 'bob')).map((m) => /<body>(m\d+)<\/body>/.exec(m.stanza)?.[1]);
  const ten = Array.from({ length: 10 }, (_, i) => `m${i}`);
  t.same(delivered, ten.slice(0, delivered.length), 'bob got a prefix of them, in order');
  // One bob had not acknowledged (XEP-0198) may be both delivered and stored: at least once, never lost.
  t.same([...new Set([...delivered, ...stored])].sort(), [...ten].sort(), 'each of the ten delivered or stored');
});

t.test('a dead node\'s directory entries vanish and its sessions\' contacts get unavailable presence', async (t) => {
  const [n1, , n3] = await cluster(t, 3);
  await befriend(n1!);
  const bob = await user(t, n3!, 'bob', 'b3');
  await becomeAvailable(bob);
  await known(n1!, bob.jid, true);
  const alice = await user(t, n1!, 'alice', 'a1');
  const online = nextReceived(alice, (el) => el.is('presence') && el.attrs.from === bob.jid && el.attrs.type === undefined, 'bob\'s presence');
  await becomeAvailable(alice);
  await online;
  const before = alice.received.length;
  // Node 3 dies: its Redis connection goes, so its lease is no longer renewed (the in-process kill -9).
  n3!.crash();
  // What follows the death (a lease, then a survivor's heartbeat) gets its time from there.
  await declaredDead(n1!, 'n3');
  const offline = eventually(() => alice.received.slice(before).find((el) => el.is('presence') && el.attrs.from === bob.jid && el.attrs.type === 'unavailable'),
    { timeout: 10_000, message: 'bob\'s unavailable presence after his node died' });
  await eventually(() => n1!.server.app.sessions.get('localhost', 'bob', 'b3') === undefined, { timeout: 10_000, message: 'node 1 forgets bob on node 3' });
  const prefix = n1!.cluster.node.prefix;
  // Node 1 may drop its stub first (its delivery to node 3 was refused); the survivor told of the death cleans Redis.
  await eventually(async () => Object.keys(await n1!.cluster.node.redis.hGetAll(`${prefix}dir:bob@localhost`)).length === 0,
    { timeout: 10_000, message: 'no entry left in Redis' });
  t.pass('no entry left in Redis');
  t.ok(await offline, 'RFC 6121 §4.5.2: a contact on a surviving node learns bob is gone');
});

/**
 * RFC 6121 §4.2 across nodes (src/cluster/remote-presence.ts): two resources
 * of one account, or two contacts, on two nodes becoming available at the
 * same moment each get the other's presence, as within one process; one
 * going unavailable as the other becomes available leaves it knowing so;
 * and what comes by both the directory and the owner's broadcast comes once.
 */
import t, { type Test } from 'tap';
import { addUsers, clusterBackends, contactNodes, startGateway, type Gateway } from '../helpers/gateways.js';
import { loggedInWs, type RawWsClient } from '../helpers/ws-client.js';
import { eventually } from '../helpers/eventually.js';
import type { XmlElement } from '../../src/xml/index.js';
import { stanzaEntry } from '../../src/cluster/remote.js';

const backends = clusterBackends(t);

/** The presences `c` got from `from` so far. */
const presencesFrom = (c: RawWsClient, from: string): XmlElement[] => c.frames.filter((el) => el.local === 'presence' && el.attr('from') === from);

/** RFC 6121 §4.2: `c` got `from`'s initial presence `id`, once (what else may come is there in 300 ms). */
async function initialOnce(t: Test, c: RawWsClient, from: string, id: string): Promise<void> {
  await eventually(() => presencesFrom(c, from).length > 0, { message: `${from}'s presence at the contact` }).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 300));
  t.same(presencesFrom(c, from).map((el) => el.attr('id')), [id], `RFC 6121 §4.2: ${from}'s initial presence reached the contact on the other node, once`);
}

/** `gateway`'s reads of `username`'s roster (its real store) wait until release(); count() says how many began. */
function heldRead(t: Test, gateway: Gateway, username: string): { count(): number; release(): void } {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  t.teardown(() => release());
  const rosters = gateway.server.storage.rosters;
  const load = rosters.load.bind(rosters);
  let reads = 0;
  rosters.load = async (host, user) => {
    if (user === username) { reads++; await gate; }
    return load(host, user);
  };
  return { count: () => reads, release };
}

async function twoNodes(t: Test): Promise<{ n1: Gateway; n2: Gateway; b1: RawWsClient; b2: RawWsClient }> {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['bob']);
  const b1 = await loggedInWs(t, n1.server.wsUrl, 'bob', 'b1');
  const b2 = await loggedInWs(t, n2.server.wsUrl, 'bob', 'b2');
  // Each node knows the other's resource (bound, not yet available) before either sends presence.
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'b2') && n2.server.app.sessions.get('localhost', 'bob', 'b1'), { message: 'each node sees the other resource' });
  return { n1, n2, b1, b2 };
}

t.test('two resources of one account on two nodes become available at once: each gets the other\'s presence, once', async (t) => {
  const { b1, b2 } = await twoNodes(t);
  b1.send("<presence xmlns='jabber:client' id='p1'><priority>1</priority></presence>");
  b2.send("<presence xmlns='jabber:client' id='p2'><priority>2</priority></presence>");
  const got = async (c: RawWsClient, from: string, id: string): Promise<void> => {
    await eventually(() => presencesFrom(c, from).length > 0, { message: `${from}'s presence at the other resource` }).catch(() => undefined);
    // What else may come is here in a moment: the same presence a second time is a duplicate.
    await new Promise((r) => setTimeout(r, 300));
    t.same(presencesFrom(c, from).map((el) => el.attr('id')), [id], `${from}'s initial presence reached the other node's resource, once`);
  };
  await Promise.all([got(b1, 'bob@localhost/b2', 'p2'), got(b2, 'bob@localhost/b1', 'p1')]);
});

t.test('a resource on another node becomes available after this one: its presence comes once, and a change of it once', async (t) => {
  const { b1, b2 } = await twoNodes(t);
  b1.send("<presence xmlns='jabber:client' id='p1'/>");
  await b1.until((el) => el.local === 'presence' && el.attr('from') === 'bob@localhost/b1');
  await new Promise((r) => setTimeout(r, 200));
  b2.send("<presence xmlns='jabber:client' id='p2'/>");
  await b2.until((el) => el.local === 'presence' && el.attr('from') === 'bob@localhost/b1');
  b2.send("<presence xmlns='jabber:client' id='p3'><show>away</show></presence>");
  await eventually(() => presencesFrom(b1, 'bob@localhost/b2').some((el) => el.attr('id') === 'p3'), { message: 'the change at b1' });
  b2.send("<presence xmlns='jabber:client' type='unavailable' id='p4'/>");
  await eventually(() => presencesFrom(b1, 'bob@localhost/b2').some((el) => el.attr('id') === 'p4'), { message: 'the unavailable at b1' });
  await new Promise((r) => setTimeout(r, 300));
  t.same(presencesFrom(b1, 'bob@localhost/b2').map((el) => el.attr('id')), ['p2', 'p3', 'p4'], 'each presence of b2 once, in order, the unavailable with its id');
  t.same(presencesFrom(b2, 'bob@localhost/b1').map((el) => el.attr('id')), ['p1'], 'b1\'s presence once at b2');
});

t.test('a resource on another node goes unavailable as this one becomes available: this one ends knowing it unavailable', async (t) => {
  const { n2, b1, b2 } = await twoNodes(t);
  b1.send("<presence xmlns='jabber:client' id='p1'/>");
  await eventually(() => n2.server.app.sessions.get('localhost', 'bob', 'b1')?.presence, { message: 'n2 sees b1 available' });
  b1.send("<presence xmlns='jabber:client' type='unavailable' id='u1'/>");
  b2.send("<presence xmlns='jabber:client' id='p2'/>");
  await eventually(() => n2.server.app.sessions.get('localhost', 'bob', 'b1')?.presence === undefined, { message: 'n2 sees b1 unavailable' });
  // Within one process b2 gets nothing of b1 (b1 went first) or b1's presence, then its unavailable.
  await new Promise((r) => setTimeout(r, 300));
  const got = presencesFrom(b2, 'bob@localhost/b1').map((el) => el.attr('id'));
  t.ok(got.length === 0 || (got.length === 2 && got[1] === 'u1'), `b2 ends knowing b1 unavailable (got ${JSON.stringify(got)})`);
});

t.test('a resource that goes unavailable and comes back gets the presence of the other node\'s resource again', async (t) => {
  const { n1, b1, b2 } = await twoNodes(t);
  b1.send("<presence xmlns='jabber:client' id='p1'/>");
  b2.send("<presence xmlns='jabber:client' id='p2'/>");
  await eventually(() => presencesFrom(b2, 'bob@localhost/b1').length === 1, { message: 'b1\'s presence at b2' });
  b2.send("<presence xmlns='jabber:client' type='unavailable' id='u2'/>");
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'b2')?.presence === undefined, { message: 'n1 sees b2 unavailable' });
  b2.send("<presence xmlns='jabber:client' id='p3'/>");
  await eventually(() => presencesFrom(b2, 'bob@localhost/b1').length === 2, { message: 'b1\'s presence at b2 once more' }).catch(() => undefined);
  t.same(presencesFrom(b2, 'bob@localhost/b1').map((el) => el.attr('id')), ['p1', 'p1'], 'RFC 6121 §4.2.2: sent again at the new initial presence');
});

t.test('two contacts on two nodes become available at once: each gets the other\'s presence, once', async (t) => {
  const [n1, n2] = await contactNodes(t, await backends.options({ ALLOW_INSECURE_PLAIN: 'true' }), ['n1', 'n2']) as [Gateway, Gateway];
  const alice = await loggedInWs(t, n1.server.wsUrl, 'alice', 'a1');
  const bob = await loggedInWs(t, n2.server.wsUrl, 'bob', 'b1');
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'b1') && n2.server.app.sessions.get('localhost', 'alice', 'a1'), { message: 'each node sees the other contact' });
  alice.send("<presence xmlns='jabber:client' id='pa'/>");
  bob.send("<presence xmlns='jabber:client' id='pb'/>");
  await Promise.all([initialOnce(t, alice, 'bob@localhost/b1', 'pb'), initialOnce(t, bob, 'alice@localhost/a1', 'pa')]);
});

t.test("two contacts on two nodes become available at once while one node is still reading the other's account: the presence waits for the read, and reaches the contact once", async (t) => {
  const [n1, n2] = await contactNodes(t, await backends.options({ ALLOW_INSECURE_PLAIN: 'true' }), ['n1', 'n2']) as [Gateway, Gateway];
  const alice = await loggedInWs(t, n1.server.wsUrl, 'alice', 'a1');
  // n1 holds bob's account once his session is bound on n2 (alice lists him): its read waits until the test lets it go.
  const read = heldRead(t, n1, 'bob');
  const bob = await loggedInWs(t, n2.server.wsUrl, 'bob', 'b1');
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'b1') && n2.server.app.sessions.get('localhost', 'alice', 'a1'), { message: 'each node sees the other contact' });
  await eventually(() => read.count() === 1, { message: "n1 reads bob's account" });
  alice.send("<presence xmlns='jabber:client' id='pa'/>");
  bob.send("<presence xmlns='jabber:client' id='pb'/>");
  // Each node's view of the other contact available, bob's account still unread on n1: his presence is in n1's directory now.
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'b1')?.presence && n2.server.app.sessions.get('localhost', 'alice', 'a1')?.presence, { message: 'each node sees the other contact available' });
  read.release();
  await Promise.all([initialOnce(t, alice, 'bob@localhost/b1', 'pb'), initialOnce(t, bob, 'alice@localhost/a1', 'pa')]);
});

t.test("a contact on another node goes available then unavailable while this node is still reading its account: the contact here ends knowing it unavailable, each presence once", async (t) => {
  const [n1, n2] = await contactNodes(t, await backends.options({ ALLOW_INSECURE_PLAIN: 'true' }), ['n1', 'n2']) as [Gateway, Gateway];
  const alice = await loggedInWs(t, n1.server.wsUrl, 'alice', 'a1');
  alice.send("<presence xmlns='jabber:client' id='pa'/>");
  await eventually(() => n2.server.app.sessions.get('localhost', 'alice', 'a1')?.presence, { message: 'n2 sees alice available' });
  const read = heldRead(t, n1, 'bob');
  const bob = await loggedInWs(t, n2.server.wsUrl, 'bob', 'b1');
  await eventually(() => read.count() === 1, { message: "n1 reads bob's account" });
  // Both reach alice by n2's broadcast (through n1's inbox) and are in n1's directory, the read still held.
  bob.send("<presence xmlns='jabber:client' id='pb'/>");
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'b1')?.presence, { message: 'n1 sees bob available' });
  bob.send("<presence xmlns='jabber:client' type='unavailable' id='ub'/>");
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'b1')?.presence === undefined, { message: 'n1 sees bob unavailable' });
  read.release();
  await eventually(() => presencesFrom(alice, 'bob@localhost/b1').some((el) => el.attr('id') === 'ub'), { message: "bob's unavailable at alice" }).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 500));
  t.same(presencesFrom(alice, 'bob@localhost/b1').map((el) => el.attr('id')), ['pb', 'ub'], "bob's available then his unavailable, once each: no available after the read");
});

t.test('a large unavailable is not carried in the directory entry (published to every node); a small one is, and both reach the other resource once', async (t) => {
  const { n1, b1, b2 } = await twoNodes(t);
  const entry = async (resource: string): Promise<Record<string, unknown>> =>
    JSON.parse((await n1.cluster.node.redis.hGet(`${n1.cluster.node.prefix}dir:bob@localhost`, resource)) ?? '{}') as Record<string, unknown>;
  b1.send("<presence xmlns='jabber:client' id='p1'/>");
  b2.send("<presence xmlns='jabber:client' id='p2'/>");
  await eventually(() => presencesFrom(b1, 'bob@localhost/b2').length === 1, { message: 'b2\'s presence at b1' });
  b2.send("<presence xmlns='jabber:client' type='unavailable' id='small'><status>gone</status></presence>");
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'b2')?.presence === undefined, { message: 'n1 sees b2 unavailable' });
  t.match(String((await entry('b2')).unavailable), /id="small"|id='small'/, 'a small unavailable is carried, with its id');
  b2.send("<presence xmlns='jabber:client' id='p3'/>");
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'b2')?.presence !== undefined, { message: 'n1 sees b2 available again' });
  const status = 'x'.repeat(4000);
  b2.send(`<presence xmlns='jabber:client' type='unavailable' id='large'><status>${status}</status></presence>`);
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'b2')?.presence === undefined, { message: 'n1 sees b2 unavailable again' });
  t.equal((await entry('b2')).unavailable, undefined, 'an unavailable over 2 KiB is not carried');
  await eventually(() => presencesFrom(b1, 'bob@localhost/b2').some((el) => el.attr('id') === 'large'), { message: 'the large unavailable at b1' });
  await new Promise((r) => setTimeout(r, 300));
  t.same(presencesFrom(b1, 'bob@localhost/b2').map((el) => el.attr('id')), ['p2', 'small', 'p3', 'large'], 'each of b2\'s presences once, the large unavailable whole');
  t.equal(presencesFrom(b1, 'bob@localhost/b2').at(-1)?.getChildText('status'), status, 'with its status');
});

t.test('an older presence of a resource on another node that comes late by one way is not delivered over the newer one', async (t) => {
  const { n2, b1, b2 } = await twoNodes(t);
  b1.send("<presence xmlns='jabber:client' id='p1'/>");
  b2.send("<presence xmlns='jabber:client' id='old'><status>one</status></presence>");
  await eventually(() => presencesFrom(b1, 'bob@localhost/b2').some((el) => el.attr('id') === 'old'), { message: 'the first presence at b1' });
  const older = presencesFrom(b1, 'bob@localhost/b2').find((el) => el.attr('id') === 'old')!;
  b2.send("<presence xmlns='jabber:client' id='new'><status>two</status></presence>");
  await eventually(() => presencesFrom(b1, 'bob@localhost/b2').some((el) => el.attr('id') === 'new'), { message: 'the second presence at b1' });
  // The first one again, through n1's inbox as the owner's broadcast (n2) writes it: a copy that was
  // overtaken on its way (the directory's way and the inbox's each keep their order, not one with the other).
  await n2.cluster.delivery.send('n1', stanzaEntry('bob@localhost/b1', older));
  await new Promise((r) => setTimeout(r, 500));
  const got = presencesFrom(b1, 'bob@localhost/b2').map((el) => el.attr('id'));
  t.equal(got.at(-1), 'new', `b1 keeps b2's newest presence (got ${JSON.stringify(got)})`);
});

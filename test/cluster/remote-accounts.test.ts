/**
 * A node loads the account (roster, blocklist) of another node's session
 * only when it needs it (features/accounts/remote.ts): a local account lists
 * it, or a stanza first needs it. Counted as roster loads from PostgreSQL
 * on each node; presence, probes, roster pushes and blocking across nodes
 * still work with accounts loaded that way.
 */
import t, { type Test } from 'tap';
import { addUsers, clusterBackends, startGateway, type Gateway } from '../helpers/gateways.js';
import { login, xml, nextReceived, becomeAvailable, type XmppJsClient, type XmlEl } from '../helpers/xmppjs.js';
import { eventually } from '../helpers/eventually.js';
import { NS } from '../../src/xml/index.js';

const backends = clusterBackends(t);

type Client = XmppJsClient & { jid: string };

/** Two gateways on a fresh Redis and PostgreSQL database, with `users`. */
async function cluster(t: Test, users: readonly string[]): Promise<[Gateway, Gateway]> {
  const opts = await backends.options();
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, users);
  return [n1, n2];
}

/** Counts the roster loads (one per account load) of gateway `g`, by bare JID. */
function countLoads(g: Gateway): Map<string, number> {
  const loads = new Map<string, number>();
  const rosters = g.server.storage.rosters;
  const load = rosters.load.bind(rosters);
  rosters.load = (host, username) => {
    loads.set(`${username}@${host}`, (loads.get(`${username}@${host}`) ?? 0) + 1);
    return load(host, username);
  };
  return loads;
}

const user = (t: Test, g: Gateway, name: string, resource = 'r'): Promise<Client> =>
  login(t, g.server, { username: name, password: `${name}-pw`, resource });

async function known(g: Gateway, full: string, available = false): Promise<void> {
  const [bare, resource] = full.split('/') as [string, string];
  const [local, domain] = bare.split('@') as [string, string];
  await eventually(() => {
    const s = g.server.app.sessions.get(domain, local, resource);
    return s && (!available || s.presence !== undefined);
  }, { message: `node sees ${full}${available ? ' available' : ''}` });
}

const item = (jid: string, subscription: 'both' | 'from' | 'to') => ({ jid, name: undefined, subscription, ask: false, approved: false, groups: [] });
const sum = (loads: Map<string, number>): number => [...loads.values()].reduce((a, b) => a + b, 0);

t.test('20 users with no shared contacts log in on node 1: node 2 loads none of their accounts', async (t) => {
  const names = Array.from({ length: 20 }, (_, i) => `u${i}`);
  const [n1, n2] = await cluster(t, names);
  const loads1 = countLoads(n1);
  const loads2 = countLoads(n2);
  const clients: Client[] = [];
  // One at a time: twenty SCRAM logins at once can outlast the login timeout on a loaded machine.
  for (const n of names) clients.push(await user(t, n1, n));
  await Promise.all(clients.map(becomeAvailable));
  for (const c of clients) await known(n2, c.jid, true);
  t.equal(sum(loads1), 20, 'node 1 loaded each of its own sessions\' accounts once');
  t.equal(sum(loads2), 0, 'node 2 loaded none: it has 20 remote sessions and no local account lists them');
  // A message across nodes still arrives, and loading the account it needs (blocking) happens once.
  const [a, b] = [clients[0]!, clients[1]!];
  const c2 = await user(t, n2, 'u2', 'other');
  for (const id of ['m1', 'm2']) {
    const got = nextReceived(a, (el) => el.is('message') && el.attrs.id === id, `message ${id}`);
    await c2.xmpp.send(xml('message', { to: a.jid, id, type: 'chat' }, xml('body', {}, id)));
    t.ok(await got, `${id} reached node 1`);
  }
  t.equal(loads2.get(a.jid.split('/')[0]!), 1, 'node 2 loaded the recipient\'s account once, for the first message only');
  t.equal(loads2.get(b.jid.split('/')[0]!), undefined, 'and no one else\'s');
});

t.test('a contact relation makes node 2 load the account; presence, probe and roster push still cross nodes', async (t) => {
  const [n1, n2] = await cluster(t, ['alice', 'bob', 'carol']);
  await n1.server.storage.rosters.putItem('localhost', 'alice', item('bob@localhost', 'both'), 1);
  await n1.server.storage.rosters.putItem('localhost', 'bob', item('alice@localhost', 'both'), 1);
  const loads2 = countLoads(n2);
  const bob = await user(t, n2, 'bob', 'b1');
  await becomeAvailable(bob);
  await known(n1, bob.jid, true);
  const carol = await user(t, n1, 'carol', 'c1');
  const alice = await user(t, n1, 'alice', 'a1');
  const probed = nextReceived(alice, (el) => el.is('presence') && el.attrs.from === bob.jid, 'bob\'s presence for alice\'s probe');
  const broadcast = nextReceived(bob, (el) => el.is('presence') && el.attrs.from === alice.jid && el.attrs.type === undefined, 'alice\'s broadcast');
  await becomeAvailable(alice);
  t.ok(await probed, 'alice (node 1) learns bob\'s presence (§4.2.1 probe)');
  t.ok(await broadcast, 'bob (node 2) gets alice\'s initial presence');
  t.equal(loads2.get('alice@localhost'), 1, 'node 2 loaded alice: bob lists her');
  t.equal(loads2.get('carol@localhost'), undefined, 'but not carol, whom nobody on node 2 lists');
  // A roster push to an interested resource on the other node.
  await bob.xmpp.iqCaller.request(xml('iq', { type: 'get' }, xml('query', { xmlns: NS.ROSTER })));
  const b2 = await user(t, n1, 'bob', 'b2');
  await b2.xmpp.iqCaller.request(xml('iq', { type: 'get' }, xml('query', { xmlns: NS.ROSTER })));
  await eventually(() => n2.server.app.sessions.get('localhost', 'bob', 'b2')?.interested === true, { message: 'node 2 sees b2 interested' });
  const push = nextReceived(b2, (el: XmlEl) => el.is('iq') && el.attrs.type === 'set' && el.getChild('query', NS.ROSTER) !== undefined, 'the push on node 1');
  await bob.xmpp.iqCaller.request(xml('iq', { type: 'set' }, xml('query', { xmlns: NS.ROSTER }, xml('item', { jid: 'dave@localhost' }))));
  t.equal((await push).getChild('query', NS.ROSTER)?.getChild('item')?.attrs.jid, 'dave@localhost', 'the pushed item reached node 1');
  t.ok(carol, 'carol stays logged in');
});

t.test('a probe and blocking from a node that does not hold the account: loaded when the stanza needs it', async (t) => {
  const [n1, n2] = await cluster(t, ['bob', 'carol']);
  // bob lets carol see his presence; carol's own roster does not list bob: node 1 has no reason to load him.
  await n1.server.storage.rosters.putItem('localhost', 'bob', item('carol@localhost', 'from'), 1);
  const loads1 = countLoads(n1);
  const bob = await user(t, n2, 'bob', 'b1');
  await becomeAvailable(bob);
  await known(n1, bob.jid, true);
  const carol = await user(t, n1, 'carol', 'c1');
  await becomeAvailable(carol);
  t.equal(loads1.get('bob@localhost'), undefined, 'node 1 has not loaded bob');
  const answer = nextReceived(carol, (el) => el.is('presence') && el.attrs.from === bob.jid && el.attrs.type === undefined, 'the probe\'s answer');
  await carol.xmpp.send(xml('presence', { to: 'bob@localhost', type: 'probe' }));
  t.ok(await answer, 'carol\'s probe is answered with bob\'s presence (§4.3.2), bob\'s account loaded for it');
  // bob blocks carol (XEP-0191): her messages get service-unavailable on her own node.
  await bob.xmpp.iqCaller.request(xml('iq', { type: 'set' }, xml('block', { xmlns: NS.BLOCKING }, xml('item', { jid: 'carol@localhost' }))));
  await eventually(async () => {
    const error = nextReceived(carol, (el) => el.is('message') && el.attrs.type === 'error' && el.attrs.id === 'blocked', 'the refusal', 1000);
    await carol.xmpp.send(xml('message', { to: bob.jid, id: 'blocked', type: 'chat' }, xml('body', {}, 'hi')));
    return error.then((el) => el.getChild('error')?.getChild('service-unavailable') !== undefined, () => false);
  }, { message: 'node 1 read bob\'s blocklist again and refuses carol\'s message' });
  t.pass('carol\'s message to bob on the other node is refused with service-unavailable');
  t.equal(loads1.get('bob@localhost'), 2, 'node 1 loaded bob once for the probe, then read him again after the block (account-stale)');
});

t.test('directed presence to a non-contact on another node: the unavailable owed at the end still arrives (RFC 6121 §4.6.3)', async (t) => {
  const [n1, n2] = await cluster(t, ['bob', 'carol']);
  const loads1 = countLoads(n1);
  const bob = await user(t, n2, 'bob', 'b1');
  await becomeAvailable(bob);
  await known(n1, bob.jid, true);
  const carol = await user(t, n1, 'carol', 'c1');
  t.equal(loads1.get('bob@localhost'), undefined, 'node 1 has not loaded bob: carol does not list him');
  const directed = nextReceived(bob, (el) => el.is('presence') && el.attrs.from === carol.jid && el.attrs.type === undefined, 'carol\'s directed presence');
  await carol.xmpp.send(xml('presence', { to: bob.jid }));
  t.ok(await directed, 'bob (node 2) gets carol\'s directed presence');
  const gone = nextReceived(bob, (el) => el.is('presence') && el.attrs.from === carol.jid && el.attrs.type === 'unavailable', 'carol\'s unavailable');
  await carol.xmpp.stop();
  t.ok(await gone, 'and unavailable when her session ends, though she never broadcast presence');
  t.equal(loads1.get('bob@localhost'), 1, 'node 1 loaded bob once, when the directed presence first needed him');
});

/**
 * Presence subscriptions (RFC 6121 §3) between two local users through the
 * fake transport. The matrix runs every row of Appendix A: the sender's
 * server half (A.2) on the sender's roster and, when A.2 routes, the
 * contact's half (A.3) on the contact's roster, which starts in the mirror
 * state (the sender's To is the contact's From, Pending Out is Pending In).
 */
import t from 'tap';
import { startFakeServer, type FakeServer } from '../helpers/fake-conn.js';
import {
  closeAll, drain, iq, isRosterPush, item, items, online, Reader, rosterGet, seed, seedPending, storedState,
} from '../helpers/roster-kit.js';
import { INBOUND, NO, OUTBOUND } from '../helpers/rfc6121-tables.js';
import { NS, type XmlElement } from '../../src/xml/index.js';
import type { RosterItem } from '../../src/storage/index.js';

type Sub = RosterItem['subscription'];
interface State { sub: Sub; out: boolean; in: boolean }

/** The nine Appendix A states, spelled out here rather than parsed by the code under test. */
const STATES: Record<string, State> = {
  'None': { sub: 'none', out: false, in: false },
  'None + Pending Out': { sub: 'none', out: true, in: false },
  'None + Pending In': { sub: 'none', out: false, in: true },
  'None + Pending Out/In': { sub: 'none', out: true, in: true },
  'To': { sub: 'to', out: false, in: false },
  'To + Pending In': { sub: 'to', out: false, in: true },
  'From': { sub: 'from', out: false, in: false },
  'From + Pending Out': { sub: 'from', out: true, in: false },
  'Both': { sub: 'both', out: false, in: false },
};
const MIRROR: Record<Sub, Sub> = { none: 'none', to: 'from', from: 'to', both: 'both' };
const nameOf = (s: State): string => Object.entries(STATES).find(([, v]) => v.sub === s.sub && v.out === s.out && v.in === s.in)?.[0] ?? JSON.stringify(s);

let server: FakeServer;
let pairs = 0;
t.before(async () => {
  server = await startFakeServer();
  for (const u of ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gus', 'hal', 'ivy']) await server.addUser(u);
});
t.teardown(() => server.close());

async function seedState(user: string, contact: string, s: State): Promise<void> {
  if (s.sub !== 'none' || s.out) await seed(server, user, item(`${contact}@localhost`, s.sub, { ask: s.out }));
  if (s.in) await seedPending(server, user, `${contact}@localhost`);
}

async function stateOf(user: string, contact: string): Promise<State & { approved: boolean }> {
  const { item: i, pendingIn } = await storedState(server, user, `${contact}@localhost`);
  return { sub: i?.subscription ?? 'none', out: i?.ask ?? false, in: pendingIn, approved: i?.approved ?? false };
}

const pushesFor = (out: XmlElement[], jid: string) => out.filter((el) => isRosterPush(el) && items(el)[0]?.jid === jid);
const ofType = (out: XmlElement[], type: string) => out.filter((el) => el.local === 'presence' && el.attr('type') === type);

for (const type of ['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed'] as const) {
  t.test(`outbound and inbound ${type} follow RFC 6121 Appendix A.2 and A.3 in all nine states`, async (t) => {
    for (const [aliceName, route, aliceNext] of OUTBOUND[type]) {
      const a = `ma${++pairs}`;
      const b = `mb${pairs}`;
      await server.addUser(a);
      await server.addUser(b);
      const A = STATES[aliceName]!;
      const B: State = { sub: MIRROR[A.sub], out: A.in, in: A.out };
      await seedState(a, b, A);
      await seedState(b, a, B);
      const [, deliver, bobNext] = INBOUND[type].find(([name]) => name === nameOf(B))!;

      const alice = await online(server, a, 'r');
      const bob = await online(server, b, 'r');
      const ra = new Reader(alice);
      const rb = new Reader(bob);
      alice.send(`<presence xmlns='jabber:client' to='${b}@localhost' type='${type}' id='x'><status>hi</status></presence>`);
      const aliceOut = await ra.all();
      const bobOut = await rb.all();
      const row = `${aliceName} (contact: ${nameOf(B)})`;

      const expectA = STATES[aliceNext === NO ? aliceName : aliceNext]!;
      const preApproved = type === 'subscribed' && !A.in && A.sub !== 'from' && A.sub !== 'both';
      const gotA = await stateOf(a, b);
      t.equal(nameOf(gotA), nameOf(expectA), `${row}: the sender's state becomes ${nameOf(expectA)}`);
      t.equal(gotA.approved, preApproved, `${row}: ${preApproved ? 'a pre-approval is recorded (§3.4)' : 'no pre-approval'}`);
      const aliceVisible = expectA.sub !== A.sub || expectA.out !== A.out || preApproved;
      t.equal(pushesFor(aliceOut, `${b}@localhost`).length, aliceVisible ? 1 : 0, `${row}: ${aliceVisible ? 'one roster push' : 'no roster push'} to the sender`);

      const routed = route === 'yes';
      const expectB = routed ? STATES[bobNext === NO ? nameOf(B) : bobNext]! : B;
      const gotB = await stateOf(b, a);
      t.equal(nameOf(gotB), nameOf(expectB), `${row}: the contact's state becomes ${nameOf(expectB)}${routed ? '' : ' (not routed)'}`);
      const delivered = ofType(bobOut, type);
      t.equal(delivered.length, routed && deliver === 'yes' ? 1 : 0, `${row}: ${routed && deliver === 'yes' ? 'delivered' : 'not delivered'} to the contact`);
      if (delivered[0]) {
        t.equal(delivered[0].attr('from'), `${a}@localhost`, `${row}: stamped with the sender's bare JID (§3.1.2)`);
        t.equal(delivered[0].getChildText('status'), 'hi', `${row}: the payload is kept`);
      }
      const bobVisible = expectB.sub !== B.sub || expectB.out !== B.out;
      t.equal(pushesFor(bobOut, `${a}@localhost`).length, bobVisible ? 1 : 0, `${row}: ${bobVisible ? 'one roster push' : 'no roster push'} to the contact`);
      t.equal(ofType(aliceOut, 'error').length, 0, `${row}: no error`);
      await closeAll(alice, bob);
    }
  });
}

t.test('a full subscription handshake both ways ends in both, with presence flowing after each approval', async (t) => {
  const alice = await online(server, 'alice', 'home');
  const bob = await online(server, 'bob', 'work');
  t.teardown(() => closeAll(alice, bob));
  const ra = new Reader(alice);
  const rb = new Reader(bob);

  alice.send(`<presence xmlns='jabber:client' to='bob@localhost' type='subscribe'/>`);
  const request = await rb.until((el) => el.attr('type') === 'subscribe', 'the request at bob');
  t.equal(request.attr('from'), 'alice@localhost');
  const askPush = await ra.until(isRosterPush, 'alice\'s push');
  t.same(items(askPush).map((i) => [i.subscription, i.ask]), [['none', 'subscribe']], 'alice: none + ask');

  // Each expectation reads on its own: RFC 6121 does not order the push against the deliveries.
  const [ra1, ra2, ra3] = [new Reader(alice), new Reader(alice), new Reader(alice)];
  bob.send(`<presence xmlns='jabber:client' to='alice@localhost' type='subscribed'/>`);
  const approved = await ra1.until((el) => el.attr('type') === 'subscribed', 'the approval at alice');
  t.equal(approved.attr('from'), 'bob@localhost');
  const toPush = await ra2.until(isRosterPush, 'alice\'s push after approval');
  t.same(items(toPush).map((i) => [i.subscription, i.ask]), [['to', undefined]], 'alice: to');
  const bobPresence = await ra3.until((el) => el.local === 'presence' && el.attr('type') === undefined, 'bob\'s presence at alice');
  t.equal(bobPresence.attr('from'), 'bob@localhost/work', '§3.1.5: bob\'s current presence follows his approval');
  const bobPush = await rb.until(isRosterPush, 'bob\'s push');
  t.same(items(bobPush).map((i) => [i.jid, i.subscription]), [['alice@localhost', 'from']], 'bob: from');

  bob.send(`<presence xmlns='jabber:client' to='alice@localhost' type='subscribe'/>`);
  await ra.until((el) => el.attr('type') === 'subscribe', 'bob\'s request at alice');
  alice.send(`<presence xmlns='jabber:client' to='bob@localhost' type='subscribed'/>`);
  await rb.until((el) => el.attr('type') === 'subscribed', 'alice\'s approval at bob');
  const alicePresence = await rb.until((el) => el.local === 'presence' && el.attr('type') === undefined, 'alice\'s presence at bob');
  t.equal(alicePresence.attr('from'), 'alice@localhost/home');
  t.same(items(await rosterGet(alice)).map((i) => i.subscription), ['both']);
  t.same(items(await rosterGet(bob)).map((i) => i.subscription), ['both']);

  // Clean up: removing the item ends both subscriptions and tells bob.
  await iq(alice, 'set', `<query xmlns='${NS.ROSTER}'><item jid='bob@localhost' subscription='remove'/></query>`);
  const gone = await rb.until((el) => el.local === 'presence' && el.attr('type') === 'unavailable', 'alice going unavailable for bob');
  t.equal(gone.attr('from'), 'alice@localhost/home', '§2.5.2: the contact no longer sees the user');
  await drain();
  t.same(items(await rosterGet(bob)).map((i) => [i.subscription, i.ask]), [['none', undefined]], 'bob: none, after unsubscribe and unsubscribed');
  await iq(bob, 'set', `<query xmlns='${NS.ROSTER}'><item jid='alice@localhost' subscription='remove'/></query>`);
  await closeAll(alice, bob);
});

t.test('a request to an offline contact is kept and delivered at the contact\'s next login, after initial presence', async (t) => {
  const carol = await online(server, 'carol', 'c');
  t.teardown(() => closeAll(carol));
  carol.send(`<presence xmlns='jabber:client' to='dave@localhost/ignored' type='subscribe'><status>it is carol</status></presence>`);
  await drain();
  const stored = await server.storage.rosters.load('localhost', 'dave');
  t.same(stored.pending.map((p) => p.jid), ['carol@localhost'], 'kept as Pending In, for the bare JID');
  t.same(stored.items, [], 'not a roster item of the contact (§3.1.3)');

  const dave = await server.login('dave', 'd');
  t.teardown(() => closeAll(dave));
  const rd = new Reader(dave);
  t.same(items(await rosterGet(dave)), [], 'the roster does not show it');
  t.equal((await rd.all()).filter((el) => el.attr('type') === 'subscribe').length, 0, 'not before initial presence');
  dave.send(`<presence xmlns='jabber:client'/>`);
  const request = await rd.until((el) => el.attr('type') === 'subscribe', 'the stored request');
  t.equal(request.attr('from'), 'carol@localhost');
  t.equal(request.attr('to'), 'dave@localhost');
  t.equal(request.getChildText('status'), 'it is carol', 'as it was sent');

  const rc = new Reader(carol);
  dave.send(`<presence xmlns='jabber:client' to='carol@localhost' type='subscribed'/>`);
  await rc.until((el) => el.attr('type') === 'subscribed', 'the approval');
  const presence = await rc.until((el) => el.local === 'presence' && el.attr('type') === undefined, 'dave\'s presence');
  t.equal(presence.attr('from'), 'dave@localhost/d');
  t.same((await server.storage.rosters.load('localhost', 'dave')).pending, [], 'the request is answered');
  await closeAll(carol, dave);
});

t.test('a pre-approved contact is subscribed at once, without a request shown (RFC 6121 §3.4)', async (t) => {
  const erin = await online(server, 'erin', 'e');
  const re = new Reader(erin);
  erin.send(`<presence xmlns='jabber:client' to='frank@localhost' type='subscribed'/>`);
  const push = await re.until(isRosterPush, 'the pre-approval push');
  t.same(items(push).map((i) => [i.jid, i.subscription, i.approved]), [['frank@localhost', 'none', 'true']], "approved='true'");

  const frank = await online(server, 'frank', 'f');
  t.teardown(() => closeAll(erin, frank));
  const rf = new Reader(frank);
  frank.send(`<presence xmlns='jabber:client' to='erin@localhost' type='subscribe'/>`);
  await rf.until((el) => el.attr('type') === 'subscribed', 'the server\'s approval');
  const after = await re.until(isRosterPush, 'erin\'s push');
  t.same(items(after).map((i) => [i.subscription, i.approved]), [['from', undefined]], 'the pre-approval turned into from');
  t.equal((await re.all()).filter((el) => el.attr('type') === 'subscribe').length, 0, 'erin never saw a request');
  const presence = await rf.until((el) => el.local === 'presence' && el.attr('type') === undefined && el.attr('from') === 'erin@localhost/e', 'erin\'s presence');
  t.ok(presence, 'frank gets erin\'s presence right away');
  await closeAll(erin, frank);
});

t.test('a request to an account that does not exist is ignored, exactly like an unanswered one', async (t) => {
  const gus = await online(server, 'gus', 'g');
  const rg = new Reader(gus);
  gus.send(`<presence xmlns='jabber:client' to='nobody@localhost' type='subscribe'/>`);
  const out = await rg.all();
  t.same(pushesFor(out, 'nobody@localhost').map((p) => items(p)[0]!.ask), ['subscribe'], 'the user\'s roster shows the pending request (A.2.1)');
  t.equal(out.filter((el) => el.local === 'presence').length, 0, 'no unsubscribed, no error: nothing tells a missing account from a silent one');
  t.same((await server.storage.rosters.load('localhost', 'nobody')).pending, [], 'nothing is stored for it');
  await closeAll(gus);
});

t.test('cancelling a subscription sends unsubscribed and unavailable presence to the former subscriber', async (t) => {
  await seed(server, 'hal', item('ivy@localhost', 'from'));
  await seed(server, 'ivy', item('hal@localhost', 'to'));
  const hal = await online(server, 'hal', 'h');
  const ivy = await online(server, 'ivy', 'a');
  t.teardown(() => closeAll(hal, ivy));
  const [ra1, ra2, ra3] = [new Reader(ivy), new Reader(ivy), new Reader(ivy)];
  hal.send(`<presence xmlns='jabber:client' to='ivy@localhost' type='unsubscribed'/>`);
  await ra1.until((el) => el.attr('type') === 'unsubscribed', 'the cancellation');
  const push = await ra2.until(isRosterPush, 'ivy\'s push');
  t.same(items(push).map((i) => i.subscription), ['none']);
  const gone = await ra3.until((el) => el.attr('type') === 'unavailable', 'hal\'s unavailable presence');
  t.equal(gone.attr('from'), 'hal@localhost/h', '§3.2.2');
  for (const [u, c] of [['hal', 'ivy'], ['ivy', 'hal']] as const) {
    await iq(u === 'hal' ? hal : ivy, 'set', `<query xmlns='${NS.ROSTER}'><item jid='${c}@localhost' subscription='remove'/></query>`);
  }
  await closeAll(hal, ivy);
});

t.test('two users who pre-approved each other and ask each other at once are both approved: the contact halves, each inside the other, do not wait for each other', async (t) => {
  for (const u of ['kim', 'lou']) await server.addUser(u);
  const kim = await online(server, 'kim', 'k');
  const lou = await online(server, 'lou', 'l');
  t.teardown(() => closeAll(kim, lou));
  // §3.4 pre-approvals both ways.
  kim.send(`<presence xmlns='jabber:client' to='lou@localhost' type='subscribed'/>`);
  lou.send(`<presence xmlns='jabber:client' to='kim@localhost' type='subscribed'/>`);
  await drain();
  const rk = new Reader(kim);
  const rl = new Reader(lou);
  // In the same turn: lou's half of kim's request runs inside kim's and answers back at kim (A.3.1 auto-reply),
  // and the other way round at the same time.
  kim.send(`<presence xmlns='jabber:client' to='lou@localhost' type='subscribe'/>`);
  lou.send(`<presence xmlns='jabber:client' to='kim@localhost' type='subscribe'/>`);
  const approved = (from: string) => (el: XmlElement) => el.local === 'presence' && el.attr('type') === 'subscribed' && el.attr('from') === from;
  await rk.until(approved('lou@localhost'), 'the server\'s approval on lou\'s behalf');
  await rl.until(approved('kim@localhost'), 'the server\'s approval on kim\'s behalf');
  t.equal((await storedState(server, 'kim', 'lou@localhost')).item?.subscription, 'both');
  t.equal((await storedState(server, 'lou', 'kim@localhost')).item?.subscription, 'both');
});

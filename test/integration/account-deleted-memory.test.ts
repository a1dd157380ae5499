/**
 * Deleting an account on the in-memory store (the server's own process,
 * through the fake transport): the store's change log reaches
 * account-changes.ts, and the contacts' rosters in memory follow, a
 * registered contact's (read again from the store, which forgot the
 * subscription in the deletion) and an anonymous contact's (kept in memory
 * only, so corrected and pushed there). RFC 6121 §3.2, §3.3, as Prosody and
 * ejabberd do on a deleted user.
 */
import t from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { withFakeUsers, type FakeClient } from '../helpers/fake-conn.js';
import { eventually } from '../helpers/eventually.js';

const A = 'alice@localhost';
const rosterItems = (el: XmlElement): XmlElement[] => el.getChild('query', NS.ROSTER)?.getChildren().filter((c) => c.local === 'item') ?? [];
/** What `c` was sent from `from` on (FakeConn.out keeps everything). */
const since = (c: FakeClient, from: number): XmlElement[] => c.conn.out.slice(from);
const pushFor = (c: FakeClient, jid: string, from = 0): XmlElement | undefined =>
  since(c, from).find((el) => el.local === 'iq' && el.attr('type') === 'set' && rosterItems(el).some((i) => i.attr('jid') === jid));

function interestedAndAvailable(c: FakeClient): void {
  c.send(`<iq xmlns='jabber:client' type='get' id='roster'><query xmlns='${NS.ROSTER}'/></iq>`);
  c.send(`<presence xmlns='jabber:client'/>`);
}

t.test("a registered and an anonymous contact of a deleted account drop to none, pushed, and see it go", async (t) => {
  const server = await withFakeUsers(t, ['alice', 'bob'], { SASL_ANONYMOUS_HOSTS: 'localhost' });
  await server.storage.rosters.putItem('localhost', 'alice', { jid: 'bob@localhost', name: undefined, groups: [], subscription: 'both', ask: false, approved: false }, 1);
  await server.storage.rosters.putItem('localhost', 'bob', { jid: A, name: 'Al', groups: [], subscription: 'both', ask: false, approved: false }, 2);
  const alice = await server.login('alice', 'laptop');
  interestedAndAvailable(alice);
  const bob = await server.login('bob', 'desk');
  interestedAndAvailable(bob);
  const guest = await server.loginAnonymous();
  interestedAndAvailable(guest);
  const guestJid = guest.session.jid!.bare;

  // The guest subscribes to alice and she approves: the guest's (memory-only) roster has alice with To.
  guest.send(`<presence xmlns='jabber:client' type='subscribe' to='${A}'/>`);
  await eventually(() => alice.conn.out.find((el) => el.local === 'presence' && el.attr('type') === 'subscribe'), { message: 'the request at alice' });
  alice.send(`<presence xmlns='jabber:client' type='subscribed' to='${guestJid}'/>`);
  await eventually(() => guest.conn.out.find((el) => el.local === 'presence' && el.attr('from') === `${A}/laptop` && el.attr('type') === undefined),
    { message: "alice's presence at the guest" });
  await eventually(() => bob.conn.out.find((el) => el.local === 'presence' && el.attr('from') === `${A}/laptop`), { message: "alice's presence at bob" });
  // Nothing of the guest's subscription is still on its way.
  await eventually(() => guest.conn.out.find((el) => el.local === 'iq' && rosterItems(el).some((i) => i.attr('jid') === A && i.attr('subscription') === 'to')),
    { message: "the guest's push of To" });
  const mark = new Map([bob, guest].map((c) => [c, c.conn.out.length]));

  await server.storage.users.delete('localhost', 'alice');

  for (const [name, c] of [['bob', bob], ['the guest', guest]] as const) {
    const push = await eventually(() => pushFor(c, A, mark.get(c)), { message: `a roster push for alice at ${name}` });
    t.equal(rosterItems(push)[0]!.attr('subscription'), 'none', `${name}: subscription none`);
    t.equal(rosterItems(push)[0]!.attr('ask'), undefined);
    await eventually(() => since(c, mark.get(c)!).find((el) => el.local === 'presence' && el.attr('from') === `${A}/laptop` && el.attr('type') === 'unavailable'),
      { message: `alice's unavailable presence at ${name}` });
  }
  t.equal(pushFor(bob, A, mark.get(bob))?.getChild('query', NS.ROSTER)?.attr('ver'), String((await server.storage.rosters.load('localhost', 'bob')).version),
    "bob's push carries the version the store gave the change");

  // A new alice: neither contact's presence reaches her.
  await server.addUser('alice');
  const alice2 = await server.login('alice', 'phone');
  interestedAndAvailable(alice2);
  for (const c of [bob, guest]) {
    c.send(`<presence xmlns='jabber:client'><status>still here</status></presence>`);
    c.send(`<message xmlns='jabber:client' to='${A}/phone' id='m-${c.session.resource!}'><body>hi</body></message>`);
  }
  await eventually(() => alice2.conn.out.filter((el) => el.local === 'message').length === 2 || undefined, { message: 'both messages' });
  t.notOk(alice2.conn.out.find((el) => el.local === 'presence' && (el.attr('from') ?? '').split('/')[0] !== A),
    'no presence of bob or of the guest reaches the new alice');
});

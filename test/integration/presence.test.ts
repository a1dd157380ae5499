/**
 * Presence (RFC 6121 §4) through the fake transport: broadcast to
 * subscribers only, probes answered on initial presence, a user's own
 * resources, directed presence, and unavailable presence whenever a
 * session ends.
 */
import t, { type Test } from 'tap';
import { startFakeServer, withFakeUsers, type FakeClient, type FakeServer } from '../helpers/fake-conn.js';
import { closeAll, condition, drain, isRosterPush, item, items, online, Reader, rosterGet, seed, storedState } from '../helpers/roster-kit.js';
import type { XmlElement } from '../../src/xml/index.js';
import { DIRECTED_MAX } from '../../src/xmpp/features/presence.js';

let server: FakeServer;
t.before(async () => {
  server = await startFakeServer();
  // alice ↔ bob: both; alice → carol: alice has 'from' (carol sees alice); alice → dave: alice has 'to' (alice sees dave).
  for (const u of ['alice', 'bob', 'carol', 'dave', 'eve', 'pat', 'quinn']) await server.addUser(u);
  await seed(server, 'alice', item('bob@localhost', 'both'));
  await seed(server, 'bob', item('alice@localhost', 'both'));
  await seed(server, 'alice', item('carol@localhost', 'from'));
  await seed(server, 'carol', item('alice@localhost', 'to'));
  await seed(server, 'alice', item('dave@localhost', 'to'));
  await seed(server, 'dave', item('alice@localhost', 'from'));
  await seed(server, 'pat', item('quinn@localhost', 'both'));
  await seed(server, 'quinn', item('pat@localhost', 'both'));
});
t.teardown(() => server.close());

const available = (out: XmlElement[], from: string) => out.filter((el) => el.local === 'presence' && el.attr('type') === undefined && el.attr('from') === from);
const unavailable = (out: XmlElement[], from: string) => out.filter((el) => el.local === 'presence' && el.attr('type') === 'unavailable' && el.attr('from') === from);

async function everyone(t: Test): Promise<Record<'bob' | 'carol' | 'dave' | 'eve', FakeClient>> {
  const c = {
    bob: await online(server, 'bob', 'b'),
    carol: await online(server, 'carol', 'c'),
    dave: await online(server, 'dave', 'd'),
    eve: await online(server, 'eve', 'e'),
  };
  t.teardown(() => closeAll(...Object.values(c)));
  return c;
}

t.test('initial presence goes to subscribers and the user\'s own resources, never to others', async (t) => {
  const others = await everyone(t);
  const readers = Object.fromEntries(Object.entries(others).map(([k, c]) => [k, new Reader(c)])) as Record<keyof typeof others, Reader>;
  const alice = await server.login('alice', 'a');
  const other = await online(server, 'alice', 'other');
  t.teardown(() => closeAll(alice, other));
  const ro = new Reader(other);
  const ra = new Reader(alice);
  alice.send(`<presence xmlns='jabber:client'><show>away</show><priority>5</priority></presence>`);
  await drain();
  const got = async (r: Reader) => available(await r.all(), 'alice@localhost/a');
  const bob = await got(readers.bob);
  t.equal(bob.length, 1, 'bob (both) gets it');
  t.equal(bob[0]?.attr('to'), 'bob@localhost', 'addressed to the contact\'s bare JID');
  t.equal(bob[0]?.getChildText('show'), 'away', 'unchanged content');
  t.equal((await got(readers.carol)).length, 1, 'carol (alice has from) gets it');
  t.equal((await got(readers.dave)).length, 0, 'dave (alice only has to) does not');
  t.equal((await got(readers.eve)).length, 0, 'eve (no subscription) does not');
  t.equal((await got(ro)).length, 1, 'the user\'s other available resource does');
  t.equal((await got(ra)).length, 1, 'and so does the sender itself (§4.2.2)');
  t.equal(alice.session.priority, 5, 'priority is kept (seed)');
  t.equal(alice.session.presence?.getChildText('show'), 'away', 'session.presence is the last available presence (seed)');
});

t.test('initial presence is answered with the presence of contacts the user is subscribed to and of the user\'s other resources', async (t) => {
  const others = await everyone(t);
  others.bob.send(`<presence xmlns='jabber:client'><status>bob here</status></presence>`);
  const other = await online(server, 'alice', 'other');
  const alice = await server.login('alice', 'new');
  t.teardown(() => closeAll(alice, other));
  await rosterGet(alice);
  const ra = new Reader(alice);
  alice.send(`<presence xmlns='jabber:client'/>`);
  const out = await ra.all();
  const fromBob = available(out, 'bob@localhost/b');
  t.equal(fromBob.length, 1, 'bob (both) is probed and answers');
  t.equal(fromBob[0]?.getChildText('status'), 'bob here', 'with his last presence');
  t.equal(fromBob[0]?.attr('to'), 'alice@localhost/new', 'to the new resource only');
  t.equal(available(out, 'dave@localhost/d').length, 1, 'dave (to) too');
  t.equal(available(out, 'carol@localhost/c').length, 0, 'carol (from only: she is not watched) does not');
  t.equal(available(out, 'eve@localhost/e').length, 0, 'eve does not');
  t.equal(available(out, 'alice@localhost/other').length, 1, 'the user\'s other available resource does');
});

t.test('a second presence is a broadcast again, without new probes', async (t) => {
  const others = await everyone(t);
  const alice = await online(server, 'alice', 'a');
  t.teardown(() => closeAll(alice));
  const rb = new Reader(others.bob);
  const ra = new Reader(alice);
  alice.send(`<presence xmlns='jabber:client'><show>dnd</show></presence>`);
  const toBob = available(await rb.all(), 'alice@localhost/a');
  t.same(toBob.map((p) => p.getChildText('show')), ['dnd']);
  t.equal(available(await ra.all(), 'bob@localhost/b').length, 0, 'no probe answers for an update');
});

t.test('unavailable presence is broadcast the same way and resets session.presence', async (t) => {
  const others = await everyone(t);
  const alice = await online(server, 'alice', 'a');
  const other = await online(server, 'alice', 'other');
  t.teardown(() => closeAll(alice, other));
  const rb = new Reader(others.bob);
  const rd = new Reader(others.dave);
  const ro = new Reader(other);
  alice.send(`<presence xmlns='jabber:client' type='unavailable'><status>bye</status></presence>`);
  await drain();
  t.same(unavailable(await rb.all(), 'alice@localhost/a').map((p) => p.getChildText('status')), ['bye'], 'a subscriber gets it');
  t.equal(unavailable(await rd.all(), 'alice@localhost/a').length, 0, 'a non-subscriber does not');
  t.equal(unavailable(await ro.all(), 'alice@localhost/a').length, 1, 'the other resource does');
  t.equal(alice.session.presence, undefined, 'seed: reset to undefined on unavailable');
  t.notOk(alice.session.available, 'no longer an available resource');
});

for (const [how, end] of [
  ['a clean close', (c: FakeClient) => c.conn.events!.streamClosed()],
  ['a stream error', (c: FakeClient) => c.session.close('policy-violation')],
  ['a transport that dies without resumption', (c: FakeClient) => c.conn.events!.transportLost('socket reset')],
] as const) {
  t.test(`a session that ends with ${how} sends unavailable presence to subscribers and the user's other resources`, async (t) => {
    const others = await everyone(t);
    const alice = await online(server, 'alice', 'a');
    const other = await online(server, 'alice', 'other');
    t.teardown(() => closeAll(alice, other));
    const [rb, rc, rd, ro] = [new Reader(others.bob), new Reader(others.carol), new Reader(others.dave), new Reader(other)];
    end(alice);
    await drain();
    t.equal(unavailable(await rb.all(), 'alice@localhost/a').length, 1, 'bob');
    t.equal(unavailable(await rc.all(), 'alice@localhost/a').length, 1, 'carol');
    t.equal(unavailable(await rd.all(), 'alice@localhost/a').length, 0, 'not dave');
    t.equal(unavailable(await ro.all(), 'alice@localhost/a').length, 1, 'the other resource');
  });
}

t.test('a session that was never available ends without any presence', async (t) => {
  const others = await everyone(t);
  const alice = await server.login('alice', 'silent');
  const rb = new Reader(others.bob);
  alice.session.close();
  await drain();
  t.equal((await rb.stanzas('presence')).length, 0);
});

t.test('a hibernating session keeps its presence; unavailable goes out when the resume timeout ends it', async (t) => {
  const sm = await withFakeUsers(t, ['alice', 'bob'], { SM_RESUME_TIMEOUT: '1' });
  await seed(sm, 'alice', item('bob@localhost', 'both'));
  await seed(sm, 'bob', item('alice@localhost', 'both'));
  const bob = await online(sm, 'bob', 'b');
  const alice = await online(sm, 'alice', 'a');
  t.teardown(() => closeAll(alice, bob));
  alice.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`);
  await drain();
  const rb = new Reader(bob);
  alice.conn.events!.transportLost('page reload');
  await drain();
  t.equal(unavailable(await rb.all(), 'alice@localhost/a').length, 0, 'nothing while hibernating');
  t.ok(alice.session.presence, 'the session is still available');
  const gone = await rb.until((el) => el.attr('type') === 'unavailable' && el.attr('from') === 'alice@localhost/a', 'unavailable after the resume timeout', 4000);
  t.ok(gone, 'sent once the session is destroyed');
  t.ok(alice.session.destroyed);
});

t.test('directed presence reaches anyone, and its recipients get unavailable when the session ends', async (t) => {
  const others = await everyone(t);
  const alice = await online(server, 'alice', 'a');
  t.teardown(() => closeAll(alice));
  const re = new Reader(others.eve);
  const rd = new Reader(others.dave);
  alice.send(`<presence xmlns='jabber:client' to='eve@localhost'><status>hi eve</status></presence>`);
  alice.send(`<presence xmlns='jabber:client' to='dave@localhost/d'/>`);
  const toEve = available(await re.all(), 'alice@localhost/a');
  t.same(toEve.map((p) => p.getChildText('status')), ['hi eve'], 'eve (no subscription) gets the directed presence');
  t.equal(available(await rd.all(), 'alice@localhost/a').length, 1, 'dave\'s resource gets it at its full JID');
  t.equal(alice.session.presence?.getChildText('status'), undefined, 'session.presence stays the broadcast one (seed: non-directed)');
  alice.send(`<presence xmlns='jabber:client' to='dave@localhost/d' type='unavailable'/>`);
  t.equal(unavailable(await rd.all(), 'alice@localhost/a').length, 1, 'directed unavailable is delivered');
  alice.session.close();
  await drain();
  t.equal(unavailable(await re.all(), 'alice@localhost/a').length, 1, 'eve gets unavailable at the end (§4.6.3)');
  t.equal(unavailable(await rd.all(), 'alice@localhost/a').length, 0, 'dave does not get a second one');
});

t.test(`at most ${DIRECTED_MAX} directed-presence recipients are kept: the oldest beyond that gets unavailable at once`, async (t) => {
  const others = await everyone(t);
  const alice = await online(server, 'alice', 'a');
  t.teardown(() => closeAll(alice));
  const re = new Reader(others.eve);
  alice.send(`<presence xmlns='jabber:client' to='eve@localhost/e'/>`);
  // Recipients with no session: the presence is dropped, but they are remembered all the same.
  for (let i = 1; i < DIRECTED_MAX; i++) alice.send(`<presence xmlns='jabber:client' to='nobody${i}@localhost'/>`);
  await drain();
  t.equal(available(await re.all(), 'alice@localhost/a').length, 1, 'eve gets the directed presence');
  t.equal(alice.session.directed?.size, DIRECTED_MAX, 'all kept up to the bound');
  t.equal(unavailable(await re.all(), 'alice@localhost/a').length, 0, 'eve is not told yet');
  alice.send(`<presence xmlns='jabber:client' to='one-more@localhost'/>`);
  await drain();
  t.equal(unavailable(await re.all(), 'alice@localhost/a').length, 1, 'eve, the oldest, gets unavailable at once, not a ghost later');
  t.equal(alice.session.directed?.size, DIRECTED_MAX, 'still at the bound');
  t.notOk(alice.session.directed?.has('eve@localhost/e'), 'eve is forgotten');
  alice.session.close();
  await drain();
  t.equal(unavailable(await re.all(), 'alice@localhost/a').length, 0, 'eve does not get a second one at the end');
});

t.test('a client probe is answered for a contact the user is subscribed to, and ignored otherwise', async (t) => {
  const others = await everyone(t);
  const alice = await online(server, 'alice', 'a');
  t.teardown(() => closeAll(alice));
  const ra = new Reader(alice);
  alice.send(`<presence xmlns='jabber:client' to='dave@localhost' type='probe'/>`);
  t.equal(available(await ra.all(), 'dave@localhost/d').length, 1, 'dave (to) is answered by the server');
  alice.send(`<presence xmlns='jabber:client' to='carol@localhost' type='probe'/>`);
  alice.send(`<presence xmlns='jabber:client' to='eve@localhost' type='probe'/>`);
  alice.send(`<presence xmlns='jabber:client' to='nobody@localhost' type='probe'/>`);
  const out = await ra.stanzas('presence');
  t.same(out.map((p) => p.toString()), [], 'carol (from only), eve and a missing account reveal nothing, not even unsubscribed');
  t.equal((await new Reader(others.dave).all()).filter((el) => el.attr('type') === 'probe').length, 0, 'the probe itself never reaches the contact');
});

t.test('presence of an unknown type is bad-request; a subscription type without a to is ignored', async (t) => {
  const alice = await online(server, 'alice', 'a');
  t.teardown(() => closeAll(alice));
  const ra = new Reader(alice);
  alice.send(`<presence xmlns='jabber:client' type='bogus' id='b1'/>`);
  alice.send(`<presence xmlns='jabber:client' to='bob@localhost' type='bogus' id='b2'/>`);
  const errors = (await ra.stanzas('presence')).filter((p) => p.attr('type') === 'error');
  t.same(errors.map((e) => [e.attr('id'), condition(e)]), [['b1', 'bad-request'], ['b2', 'bad-request']]);
  alice.send(`<presence xmlns='jabber:client' type='subscribe'/>`);
  t.same((await ra.all()).map(String), []);
});

t.test('pat and quinn, both online, see each other come and go', async (t) => {
  const pat = await online(server, 'pat', 'p');
  const rp = new Reader(pat);
  const quinn = await online(server, 'quinn', 'q');
  t.teardown(() => closeAll(pat, quinn));
  t.equal(available(await rp.all(), 'quinn@localhost/q').length, 1, 'pat sees quinn arrive');
  t.ok(quinn.conn.out.some((el) => el.local === 'presence' && el.attr('from') === 'pat@localhost/p'), 'quinn got pat\'s presence when arriving');
  quinn.session.close();
  await drain();
  t.equal(unavailable(await rp.all(), 'quinn@localhost/q').length, 1, 'pat sees quinn leave');
});

t.test('a probe of a contact that does not let the user see its presence is answered with unsubscribed, which ends the stale subscription (RFC 6121 §4.3.2)', async (t) => {
  // hal's stored roster says 'to' for frank (offline) and ivy (online), 'both' for an account that is
  // gone; neither frank's nor ivy's roster has hal (the two halves disagree, as after a lost write).
  for (const u of ['hal', 'frank', 'ivy', 'kim']) await server.addUser(u);
  await seed(server, 'hal', item('frank@localhost', 'to'));
  await seed(server, 'hal', item('gone@localhost', 'both'));
  await seed(server, 'kim', item('ivy@localhost', 'to'));
  const ivy = await online(server, 'ivy', 'i');
  const hal = await online(server, 'hal', 'h');
  t.teardown(() => closeAll(ivy, hal));
  const [presences, pushes] = [new Reader(hal), new Reader(hal)];
  const answer = async (from: string, subscription: string) => {
    const unsubscribed = await presences.until((el) => el.local === 'presence' && el.attr('type') === 'unsubscribed', `unsubscribed from ${from}`);
    t.equal(unsubscribed.attr('from'), from, `unsubscribed comes from ${from}`);
    t.same(items(await pushes.until(isRosterPush, `the push for ${from}`)), [{ jid: from, subscription, groups: [] }], `${from} is '${subscription}' now`);
  };
  hal.send(`<presence xmlns='jabber:client' to='frank@localhost' type='probe'/>`);
  await answer('frank@localhost', 'none');
  hal.send(`<presence xmlns='jabber:client' to='gone@localhost' type='probe'/>`);
  await answer('gone@localhost', 'from');
  t.same((await storedState(server, 'hal', 'frank@localhost')).item?.subscription, 'none', 'stored');

  // The probes the server sends for a resource's initial presence (§4.3.1) get the same answer from a contact in memory.
  const kim = await server.login('kim', 'k');
  t.teardown(() => closeAll(kim));
  await rosterGet(kim);
  const rk = new Reader(kim);
  kim.send(`<presence xmlns='jabber:client'/>`);
  t.equal((await rk.until((el) => el.local === 'presence' && el.attr('type') === 'unsubscribed', 'unsubscribed from ivy')).attr('from'), 'ivy@localhost');
  t.equal((await storedState(server, 'kim', 'ivy@localhost')).item?.subscription, 'none', 'kim no longer claims to see ivy');
  t.equal((await new Reader(ivy).stanzas('presence')).filter((p) => p.attr('from')?.startsWith('kim@')).length, 0, 'ivy is not told anything');
});

/**
 * A fair event loop for fan-outs (issue 10): a presence broadcast to a large
 * roster is spread over event-loop turns, so other sessions are served
 * meanwhile, and the sending session's later stanzas still take effect
 * after it (RFC 6120 §10.1). Through the fake transport; turns are counted
 * with setImmediate, nothing is timed.
 */
import t from 'tap';
import { withFakeUsers, type FakeClient } from '../helpers/fake-conn.js';
import { closeAll, drain, item, online, Reader, seed } from '../helpers/roster-kit.js';
import { FANOUT_BATCH } from '../../src/xmpp/features/accounts/fanout.js';
import { MAX_QUEUED_INPUT_BYTES as MAX_HELD_BYTES } from '../../src/xmpp/core.js';
import type { XmlElement } from '../../src/xml/index.js';

const CONTACTS = 1000;
const PRESENCE = `<presence xmlns='jabber:client'/>`;
const nextTurn = () => new Promise<void>((r) => setImmediate(r));

const server = await withFakeUsers(t, ['alice', 'bob', 'zoe']);
// alice has a large roster: CONTACTS subscribers on another server (looked at, nobody to send to) and zoe,
// whose JID sorts after them (the roster is loaded in JID order), so she comes last.
for (let i = 0; i < CONTACTS; i++) await seed(server, 'alice', item(`c${i}@remote.example`, 'from'), i + 1);
await seed(server, 'alice', item('zoe@localhost', 'both'), CONTACTS + 1);
await seed(server, 'zoe', item('alice@localhost', 'both'));

/**
 * Closes the clients and lets alice's unavailable broadcast (RFC 6121 §4.5.2), itself spread over
 * CONTACTS / FANOUT_BATCH turns, finish: otherwise it reaches zoe during the next test.
 */
async function closeAndSettle(...clients: FakeClient[]): Promise<void> {
  await closeAll(...clients);
  await drain(Math.ceil((CONTACTS + 1) / FANOUT_BATCH) + 10);
}

const ownEcho = (el: XmlElement) => el.local === 'presence' && el.attr('type') === undefined && el.attr('from') === 'alice@localhost/a';

t.test(`a presence broadcast to ${CONTACTS} contacts leaves the event loop between batches, and another session is served meanwhile`, async (t) => {
  const bob = await online(server, 'bob', 'b');
  const alice = await server.login('alice', 'a');
  await drain(); // alice's roster is loaded
  alice.send(PRESENCE);
  let turns = 0;
  let pingAnsweredDuringBroadcast = false;
  // The broadcast ends with alice's own echo (RFC 6121 §4.2.2). Count the turns the loop makes before it.
  const pong = new Reader(bob);
  for (; turns < 100 && !alice.conn.out.some(ownEcho); turns++) {
    if (turns === 1) bob.send(`<iq xmlns='jabber:client' type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await nextTurn();
    if (bob.conn.out.some((el) => el.attr('id') === 'p1') && !alice.conn.out.some(ownEcho)) pingAnsweredDuringBroadcast = true;
  }
  t.ok(alice.conn.out.some(ownEcho), 'the broadcast finished: alice got her own presence');
  t.ok(turns >= Math.floor(CONTACTS / FANOUT_BATCH) - 1, `it took several event-loop turns (${turns}), not one`);
  t.ok(pingAnsweredDuringBroadcast, "bob's ping was answered while alice's broadcast was still going on");
  const fromAlice = (await pong.stanzas('presence')).filter((p) => p.attr('from') === 'alice@localhost/a');
  t.equal(fromAlice.length, 0, 'bob, no subscriber, got nothing from alice');
  await closeAndSettle(alice, bob);
});

t.test("stanzas a session sends while its broadcast is spread over turns wait for it: zoe sees alice's presence before her message", async (t) => {
  const zoe = await online(server, 'zoe', 'z');
  const alice = await server.login('alice', 'a');
  await drain();
  const seen = new Reader(zoe);
  const answers = new Reader(alice);
  alice.send(PRESENCE);
  await nextTurn(); // the broadcast has yielded at least once: zoe (the last item) has not had it yet
  t.notOk(zoe.conn.out.some((el) => el.attr('from') === 'alice@localhost/a'), 'the broadcast is still under way');
  alice.send(`<message xmlns='jabber:client' type='chat' to='zoe@localhost/z' id='m1'><body>after my presence</body></message>`);
  alice.send(`<iq xmlns='jabber:client' type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`);
  await seen.until((el) => el.local === 'message', 'the message');
  const fromAlice = (await drain(), zoe.conn.out).filter((el) => el.attr('from')?.startsWith('alice@localhost'));
  t.same(fromAlice.map((el) => el.local), ['presence', 'message'], 'presence first, then the message, as alice sent them');
  const result = await answers.until((el) => el.attr('id') === 'r1', 'the roster result');
  t.equal(result.attr('type'), 'result', 'an IQ sent meanwhile is answered too');
  await closeAndSettle(alice, zoe);
});

t.test('a session that sends more than the held-input bound during its broadcast is closed with policy-violation, and what it sent is still delivered', async (t) => {
  const bob = await online(server, 'bob', 'b');
  const alice = await server.login('alice', 'a');
  await drain();
  alice.send(PRESENCE);
  await nextTurn();
  const body = 'x'.repeat(1000);
  // A real transport delivers nothing after the close: stop there too.
  let n = 0;
  for (; n < 2 * MAX_HELD_BYTES / 1000 && !alice.conn.closed; n++) alice.send(`<message xmlns='jabber:client' type='chat' to='bob@localhost/b' id='f${n}'><body>${body}</body></message>`);
  // Each message is a little over 1,000 bytes: the close comes between MAX_HELD_BYTES / 1,200 and / 1,000 of them.
  t.ok(n > MAX_HELD_BYTES / 1200 && n <= MAX_HELD_BYTES / 1000 + 1, `closed once about ${MAX_HELD_BYTES} bytes were held (${n} messages)`);
  const closing = alice.conn.out.find((el) => el.local === 'error' && el.getChild('policy-violation') !== undefined);
  t.ok(closing, 'policy-violation stream error');
  t.ok(alice.conn.closed, 'the stream is closed');
  const got = new Reader(bob);
  await got.until((el) => el.attr('id') === `f${n - 1}`, 'the last message', 10_000);
  const ids = bob.conn.out.filter((el) => el.local === 'message').map((el) => el.attr('id'));
  t.same(ids, Array.from({ length: n }, (_, i) => `f${i}`), `all ${n} messages reached bob, in the order sent`);
  await closeAndSettle(bob);
});

t.test('a roster push to 250 interested resources is spread over event-loop turns, and the roster set is answered after the last push', async (t) => {
  const many = await withFakeUsers(t, ['carl'], { MAX_RESOURCES_PER_USER: '300' });
  const resources: FakeClient[] = [];
  for (let i = 0; i < 250; i++) {
    const c = await many.login('carl', `r${i}`);
    c.send(`<iq xmlns='jabber:client' type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>`); // interested (RFC 6121 §2.2)
    resources.push(c);
  }
  await drain();
  const pushed = () => resources.filter((c) => c.conn.out.some((el) => el.attr('type') === 'set' && el.getChild('query') !== undefined)).length;
  const setter = resources[0]!;
  setter.send(`<iq xmlns='jabber:client' type='set' id='s1'><query xmlns='jabber:iq:roster'><item jid='dana@localhost'/></query></iq>`);
  await nextTurn();
  const afterOneTurn = pushed();
  t.ok(afterOneTurn > 0 && afterOneTurn < resources.length, `one turn later some, not all, resources have the push (${afterOneTurn})`);
  t.notOk(setter.conn.out.some((el) => el.attr('id') === 's1'), 'the set is not answered yet');
  await new Reader(setter).until((el) => el.attr('id') === 's1', 'the roster set result');
  t.equal(pushed(), resources.length, 'in the end every interested resource has the push');
  for (const c of resources) c.session.close();
  await drain();
});

/**
 * Roster management (RFC 6121 §2) and roster versioning (XEP-0237) through
 * the fake transport: get, set, remove, the §2.3.3 error cases, pushes to
 * interested resources only, the roster size limit, persistence.
 */
import t from 'tap';
import { NS, parseXml } from '../../src/xml/index.js';
import { FakeConn, withFakeUsers } from '../helpers/fake-conn.js';
import { closeAll, condition, drain, iq, isRosterPush, items, Reader, rosterGet } from '../helpers/roster-kit.js';

const server = await withFakeUsers(t, ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'gina'], { MAX_ROSTER_ITEMS: '3' });

const set = (itemXml: string) => `<query xmlns='${NS.ROSTER}'>${itemXml}</query>`;

t.test('the stream features after authentication offer roster versioning and pre-approval', async (t) => {
  const c = await server.login('alice', 'features');
  c.session.streamOpened({ to: 'localhost', version: '1.0' });
  const features = c.conn.take().find((el) => el.local === 'features');
  t.ok(features?.getChild('ver', 'urn:xmpp:features:rosterver'), 'XEP-0237 <ver/>');
  t.ok(features?.getChild('sub', 'urn:xmpp:features:pre-approval'), 'RFC 6121 §3.4 <sub/>');
  await closeAll(c);
});

t.test('an empty roster is an empty query with a version', async (t) => {
  const c = await server.login('gina', 'empty');
  const reply = await rosterGet(c);
  t.equal(reply.attr('type'), 'result');
  t.same(items(reply), []);
  t.type(reply.getChild('query', NS.ROSTER)?.attr('ver'), 'string', 'a ver attribute is always there');
  await closeAll(c);
});

t.test('a roster set adds an item, answers with a result and pushes it to every interested resource only', async (t) => {
  const a1 = await server.login('alice', 'a1');
  const a2 = await server.login('alice', 'a2');
  const quiet = await server.login('alice', 'quiet');
  await rosterGet(a1);
  await rosterGet(a2);
  const r1 = new Reader(a1);
  const r2 = new Reader(a2);
  const rq = new Reader(quiet);
  const reply = await iq(a1, 'set', set(`<item jid='Bob@LocalHost' name='Bob'><group>Friends</group><group>Work</group></item>`));
  t.equal(reply.attr('type'), 'result', 'the set succeeds');
  for (const [name, r] of [['the resource that sent it', r1], ['the other interested resource', r2]] as const) {
    const push = await r.until(isRosterPush, `a push to ${name}`);
    t.same(items(push), [{ jid: 'bob@localhost', subscription: 'none', ask: undefined, approved: undefined, name: 'Bob', groups: ['Friends', 'Work'] }],
      `${name} gets the normalised item`);
    t.equal(push.attr('to'), name === 'the resource that sent it' ? 'alice@localhost/a1' : 'alice@localhost/a2');
    t.equal(push.attr('from'), undefined, 'a push has no from (RFC 6121 §2.1.6)');
  }
  t.equal((await rq.all()).filter(isRosterPush).length, 0, 'a resource that never asked for the roster gets no push');
  t.ok(quiet.session.interested !== true, 'and is not interested');
  t.equal(a1.session.interested, true, 'a resource that asked is interested (seed)');

  const update = await iq(a2, 'set', set(`<item jid='bob@localhost' name='Robert'/>`));
  t.equal(update.attr('type'), 'result', 'an update succeeds');
  const [listed] = items(await rosterGet(a1));
  t.same(listed, { jid: 'bob@localhost', subscription: 'none', ask: undefined, approved: undefined, name: 'Robert', groups: [] }, 'the update replaced name and groups');
  await iq(a1, 'set', set(`<item jid='bob@localhost' subscription='remove'/>`));
  await closeAll(a1, a2, quiet);
});

t.test('the roster object is shared by an account\'s sessions and released with the last one', async (t) => {
  const a1 = await server.login('carol', 'one');
  const a2 = await server.login('carol', 'two');
  await drain();
  t.ok(a1.session.roster, 'loaded when the resource was bound (seed)');
  t.equal(a1.session.roster, a2.session.roster, 'one roster object for both sessions');
  const accounts = () => (a1.session.roster as { username: string }).username;
  t.equal(accounts(), 'carol');
  a1.session.close();
  await drain();
  t.equal(a2.session.roster, a1.session.roster, 'still shared while one session remains');
  a2.session.close();
  await drain();
  const again = await server.login('carol', 'three');
  await drain();
  t.not(again.session.roster, a1.session.roster, 'a fresh object after the last session ended');
  await closeAll(again);
});

t.test('roster sets that break RFC 6121 §2.3.3 get their specified errors and change nothing', async (t) => {
  const c = await server.login('dave', 'errors');
  const before = items(await rosterGet(c));
  const cases: Array<[string, string, string]> = [
    ['two items', set(`<item jid='x@localhost'/><item jid='y@localhost'/>`), 'bad-request'],
    ['no item', set(''), 'bad-request'],
    ['an item without jid', set(`<item name='x'/>`), 'bad-request'],
    ['a malformed JID', set(`<item jid='a@b@c'/>`), 'jid-malformed'],
    ['a full JID', set(`<item jid='x@localhost/res'/>`), 'bad-request'],
    ["the user's own JID", set(`<item jid='dave@localhost'/>`), 'not-allowed'],
    ['a duplicate group', set(`<item jid='x@localhost'><group>G</group><group>G</group></item>`), 'bad-request'],
    ['an empty group', set(`<item jid='x@localhost'><group></group></item>`), 'not-acceptable'],
    ['a too long group', set(`<item jid='x@localhost'><group>${'g'.repeat(1025)}</group></item>`), 'not-acceptable'],
    ['a too long name', set(`<item jid='x@localhost' name='${'n'.repeat(1025)}'/>`), 'not-acceptable'],
    ['removing an item that is not there', set(`<item jid='nobody@localhost' subscription='remove'/>`), 'item-not-found'],
  ];
  for (const [what, payload, expected] of cases) {
    const reply = await iq(c, 'set', payload);
    t.equal(reply.attr('type'), 'error', `${what} is an error`);
    t.equal(condition(reply), expected, `${what} is ${expected}`);
  }
  t.same(items(await rosterGet(c)), before, 'the roster did not change');
  await closeAll(c);
});

t.test('a client cannot set the subscription state: only name and groups come from a roster set', async (t) => {
  const c = await server.login('dave', 'state');
  await rosterGet(c);
  await iq(c, 'set', set(`<item jid='z@localhost' subscription='both' ask='subscribe' approved='true'/>`));
  const [z] = items(await rosterGet(c));
  t.same([z?.subscription, z?.ask, z?.approved], ['none', undefined, undefined]);
  await iq(c, 'set', set(`<item jid='z@localhost' subscription='remove'/>`));
  await closeAll(c);
});

t.test('another account\'s roster is forbidden, and so is the server\'s', async (t) => {
  const c = await server.login('dave', 'other');
  const get = await iq(c, 'get', `<query xmlns='${NS.ROSTER}'/>`, 'alice@localhost');
  t.equal(condition(get), 'forbidden', 'a roster get to another account');
  const put = await iq(c, 'set', set(`<item jid='x@localhost'/>`), 'alice@localhost');
  t.equal(condition(put), 'forbidden', 'a roster set to another account');
  const own = await iq(c, 'get', `<query xmlns='${NS.ROSTER}'/>`, 'dave@localhost');
  t.equal(own.attr('type'), 'result', 'the own bare JID is fine');
  await closeAll(c);
});

t.test('roster versioning: the same ver gets an empty result, an old or unknown one the full roster', async (t) => {
  const c = await server.login('erin', 'ver');
  const first = await rosterGet(c, '');
  const v0 = first.getChild('query', NS.ROSTER)!.attr('ver')!;
  t.ok(first.getChild('query', NS.ROSTER), 'ver="" bootstraps: the full roster');
  const same = await rosterGet(c, v0);
  t.equal(same.attr('type'), 'result');
  t.equal(same.getChildren().length, 0, 'an up-to-date ver gets an empty IQ result (not an empty query)');

  const reader = new Reader(c);
  await iq(c, 'set', set(`<item jid='v1@localhost'/>`));
  const push1 = await reader.until(isRosterPush, 'the first push');
  const v1 = push1.getChild('query', NS.ROSTER)!.attr('ver')!;
  await iq(c, 'set', set(`<item jid='v2@localhost'/>`));
  const push2 = await reader.until(isRosterPush, 'the second push');
  const v2 = push2.getChild('query', NS.ROSTER)!.attr('ver')!;
  t.not(v1, v0, 'a change makes a new version');
  t.not(v2, v1, 'every push carries its own version');

  const stale = await rosterGet(c, v1);
  t.same(items(stale).map((i) => i.jid), ['v1@localhost', 'v2@localhost'], 'an old ver gets the full roster');
  t.equal(stale.getChild('query', NS.ROSTER)!.attr('ver'), v2, 'with the current version');
  t.same(items(await rosterGet(c, 'bogus')).length, 2, 'an unknown ver gets the full roster');
  t.equal((await rosterGet(c, v2)).getChildren().length, 0, 'the current ver gets an empty result');
  t.same(items(await rosterGet(c)).length, 2, 'no ver (no versioning) always gets the full roster');

  await iq(c, 'set', set(`<item jid='v1@localhost' subscription='remove'/>`));
  const removal = await reader.until((el) => isRosterPush(el) && items(el)[0]?.subscription === 'remove', 'the removal push');
  t.same(items(removal), [{ jid: 'v1@localhost', subscription: 'remove', ask: undefined, approved: undefined, name: undefined, groups: [] }]);
  t.equal((await rosterGet(c, v2)).getChild('query', NS.ROSTER)?.attr('ver'), removal.getChild('query', NS.ROSTER)!.attr('ver'),
    'the version before the removal is stale');
  await iq(c, 'set', set(`<item jid='v2@localhost' subscription='remove'/>`));
  await closeAll(c);
});

t.test('the roster is kept across sessions, and the version with it', async (t) => {
  const c = await server.login('frank', 'keep');
  await rosterGet(c);
  await iq(c, 'set', set(`<item jid='kept@localhost' name='K'><group>G</group></item>`));
  const ver = (await rosterGet(c)).getChild('query', NS.ROSTER)!.attr('ver')!;
  await closeAll(c);
  const stored = await server.storage.rosters.load('localhost', 'frank');
  t.same(stored.items.map((i) => [i.jid, i.name, i.groups]), [['kept@localhost', 'K', ['G']]], 'stored');
  const again = await server.login('frank', 'again');
  t.equal((await rosterGet(again, ver)).getChildren().length, 0, 'the cached version is still current after a new login');
  t.same(items(await rosterGet(again)).map((i) => i.jid), ['kept@localhost']);
  await iq(again, 'set', set(`<item jid='kept@localhost' subscription='remove'/>`));
  await closeAll(again);
});

t.test('a roster holds at most MAX_ROSTER_ITEMS items; one more is not-allowed, updates still work', async (t) => {
  const c = await server.login('gina', 'limit');
  for (const n of [1, 2, 3]) t.equal((await iq(c, 'set', set(`<item jid='n${n}@localhost'/>`))).attr('type'), 'result', `item ${n} fits`);
  const full = await iq(c, 'set', set(`<item jid='n4@localhost'/>`));
  t.equal(condition(full), 'not-allowed', 'the fourth is refused');
  t.equal(full.getChild('error')?.attr('type'), 'cancel');
  t.equal((await iq(c, 'set', set(`<item jid='n1@localhost' name='renamed'/>`))).attr('type'), 'result', 'an existing item can still change');
  const sub = new Reader(c);
  c.send(`<presence xmlns='jabber:client' to='n5@localhost' type='subscribe' id='s5'/>`);
  const refused = await sub.until((el) => el.local === 'presence' && el.attr('type') === 'error', 'the error for a subscription that needs a new item');
  t.equal(condition(refused), 'not-allowed', 'a subscribe that would add an item is refused too');
  t.equal(items(await rosterGet(c)).length, 3);
  for (const n of [1, 2, 3]) await iq(c, 'set', set(`<item jid='n${n}@localhost' subscription='remove'/>`));
  await closeAll(c);
});

t.test('an ANONYMOUS account keeps its roster in memory only, and only while it has a session', async (t) => {
  const anon = await withFakeUsers(t, ['alice'], { SASL_ANONYMOUS_HOSTS: 'localhost' });
  const loginAnonymous = async () => {
    const conn = new FakeConn();
    const session = anon.app.core.connect(conn);
    conn.attach(session);
    const c = { conn, session, send: (xml: string) => conn.events!.element(parseXml(xml, undefined, NS.CLIENT)) };
    session.streamOpened({ to: 'localhost', version: '1.0' });
    c.send(`<auth xmlns='${NS.SASL}' mechanism='ANONYMOUS'/>`);
    await drain();
    session.streamOpened({ to: 'localhost', version: '1.0' });
    c.send(`<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='${NS.BIND}'/></iq>`);
    await drain();
    t.ok(session.full_jid, 'bound');
    return c;
  };
  const a = await loginAnonymous();
  const name = a.session.username!;
  await rosterGet(a);
  t.equal((await iq(a, 'set', set(`<item jid='alice@localhost' name='A'/>`))).attr('type'), 'result');
  t.same(items(await rosterGet(a)).map((i) => i.name), ['A'], 'the roster works');
  t.same((await anon.storage.rosters.load('localhost', name)).items, [], 'nothing reaches the real store');

  const alice = await anon.login('alice', 'a');
  alice.send(`<presence xmlns='jabber:client' to='${name}@localhost' type='subscribe'/>`);
  a.send(`<presence xmlns='jabber:client'/>`);
  const request = await new Reader(a).until((el) => el.attr('type') === 'subscribe', 'alice\'s request at the anonymous user', 2000).catch(() => undefined);
  t.equal(request?.attr('from'), 'alice@localhost', 'a registered user can ask an anonymous one (kept in its memory roster)');

  a.session.close();
  await drain();
  const b = await loginAnonymous();
  t.not(b.session.username, name, 'a new anonymous login is a new account');
  t.same(items(await rosterGet(b)), [], 'with an empty roster');
  await closeAll(alice, b);
});

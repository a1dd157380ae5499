/**
 * Offline messages (XEP-0160 with XEP-0203 delay) through the fake
 * transport: what is stored, what bounces, delivery on becoming available,
 * the per-account limit, and that stream management's hand-over (resume
 * timeout, shutdown) lands unacked messages offline exactly once.
 */
import t from 'tap';
import { enableSm, settled, startFakeServer, withFakeUsers, type FakeServer } from '../helpers/fake-conn.js';
import { stanzaErrorCondition } from '../helpers/ws-client.js';
import { NS, parseXml, type XmlElement } from '../../src/xml/index.js';
import { openSqliteStorage } from '../../src/storage/index.js';
import { eventually } from '../helpers/eventually.js';

const chat = (to: string, body: string, extra = '', type = 'chat'): string =>
  `<message xmlns='jabber:client' to='${to}' type='${type}' id='${body}'><body>${body}</body>${extra}</message>`;
const PRESENCE = `<presence xmlns='jabber:client'/>`;

const bodies = (messages: XmlElement[]): string[] => messages.map((m) => m.getChildText('body') ?? '');
const delaysOf = (m: XmlElement): XmlElement[] => m.getChildren('delay', NS.DELAY);
const count = (server: FakeServer, user: string) => server.storage.offline.count('localhost', user);

const server = await withFakeUsers(t, ['alice', 'bob', 'carol', 'dave', 'erin']);

t.test('a chat message to an account with no available resource is stored, then delivered with a delay stamp on initial presence and deleted', async (t) => {
  const alice = await server.login('alice', 'a');
  const before = Date.now();
  alice.send(chat('bob@localhost', 'hello'));
  await settled();
  t.same(alice.conn.takeStanzas('message'), [], 'the sender gets no error');
  t.equal(await count(server, 'bob'), 1, 'stored');

  const bob = await server.login('bob', 'b');
  await settled();
  t.same(bob.conn.takeStanzas('message'), [], 'nothing before initial presence');
  bob.send(PRESENCE);
  await settled();
  const got = bob.conn.takeStanzas('message');
  t.same(bodies(got), ['hello']);
  t.equal(got[0]!.attr('from'), 'alice@localhost/a');
  const [delay, ...more] = delaysOf(got[0]!);
  t.equal(more.length, 0, 'one delay notation');
  t.equal(delay!.attr('from'), 'localhost');
  const stamp = Date.parse(delay!.attr('stamp')!);
  t.ok(delay!.attr('stamp')!.endsWith('Z'), 'UTC (XEP-0082)');
  t.ok(stamp >= before - 1000 && stamp <= Date.now(), 'stamped when stored');
  t.equal(await count(server, 'bob'), 0, 'deleted after delivery');

  const bob2 = await server.login('bob', 'b2');
  bob2.send(PRESENCE);
  await settled();
  t.same(bob2.conn.takeStanzas('message'), [], 'another resource becoming available gets nothing more');
  for (const c of [alice, bob, bob2]) c.session.close();
});

t.test('normal messages are stored; headline and error are dropped and groupchat bounces, none stored', async (t) => {
  const alice = await server.login('alice', 'a');
  alice.send(`<message xmlns='jabber:client' to='carol@localhost' id='n'><body>normal</body></message>`);
  alice.send(chat('carol@localhost', 'headline', '', 'headline'));
  alice.send(chat('carol@localhost', 'error', '', 'error'));
  alice.send(chat('carol@localhost', 'groupchat', '', 'groupchat'));
  await settled();
  const errors = alice.conn.takeStanzas('message');
  t.same(errors.map((e) => [e.attr('id'), stanzaErrorCondition(e)]), [['groupchat', 'service-unavailable']]);
  const stored = await server.storage.offline.list('localhost', 'carol');
  t.same(stored.map((m) => m.stanza.includes('>normal<')), [true], 'only the normal message');
  const carol = await server.login('carol', 'c');
  carol.send(PRESENCE);
  await settled();
  const got = carol.conn.takeStanzas('message');
  t.same(bodies(got), ['normal']);
  t.equal(got[0]!.attr('type'), undefined, 'delivered as it was sent');
  for (const c of [alice, carol]) c.session.close();
});

t.test('a message to an unknown account is not stored and gets service-unavailable, as before', async (t) => {
  const alice = await server.login('alice', 'a');
  alice.send(chat('nobody@localhost', 'x'));
  await settled();
  const [err] = alice.conn.takeStanzas('message');
  t.equal(err?.attr('type'), 'error');
  t.equal(stanzaErrorCondition(err!), 'service-unavailable');
  t.equal(err!.getChild('error')!.attr('type'), 'cancel');
  t.equal(await count(server, 'nobody'), 0);
  alice.session.close();
});

t.test('chat states alone and <no-store/> messages are not stored: they get the answer of a server without storage', async (t) => {
  const alice = await server.login('alice', 'a');
  alice.send(`<message xmlns='jabber:client' to='dave@localhost' type='chat' id='cs'><composing xmlns='${NS.CHATSTATES}'/><thread>t1</thread></message>`);
  alice.send(chat('dave@localhost', 'nostore', `<no-store xmlns='${NS.HINTS}'/>`));
  alice.send(chat('dave@localhost', 'kept', `<active xmlns='${NS.CHATSTATES}'/>`));
  await settled();
  const errors = alice.conn.takeStanzas('message');
  t.same(errors.map((e) => [e.attr('id'), stanzaErrorCondition(e)]), [['cs', 'service-unavailable'], ['nostore', 'service-unavailable']]);
  t.equal(await count(server, 'dave'), 1, 'a body with a chat state is stored');
  await server.storage.offline.remove('localhost', 'dave', (await server.storage.offline.list('localhost', 'dave')).map((m) => m.id));
  alice.session.close();
});

t.test('a resource that is only connected, or available with a negative priority, does not stop storage; negative presence gets nothing', async (t) => {
  const erin = await server.login('erin', 'connected');
  const neg = await server.login('erin', 'negative');
  neg.send(`<presence xmlns='jabber:client'><priority>-1</priority></presence>`);
  const alice = await server.login('alice', 'a');
  await settled();
  erin.conn.take();
  neg.conn.take();
  alice.send(chat('erin@localhost', 'm1'));
  await settled();
  t.equal(await count(server, 'erin'), 1, 'stored (RFC 6121 §8.5.2.1.1: negative priority never gets bare-JID messages)');
  t.same(erin.conn.takeStanzas('message'), []);
  t.same(neg.conn.takeStanzas('message'), []);
  const neg2 = await server.login('erin', 'negative2');
  neg2.send(`<presence xmlns='jabber:client'><priority>-5</priority></presence>`);
  await settled();
  t.same(neg2.conn.takeStanzas('message'), [], 'XEP-0160 §2: only non-negative presence gets offline messages');
  neg.send(`<presence xmlns='jabber:client'><priority>3</priority></presence>`);
  await settled();
  t.same(bodies(neg.conn.takeStanzas('message')), ['m1'], 'going from negative to non-negative delivers');
  t.equal(await count(server, 'erin'), 0);
  for (const c of [erin, neg, neg2, alice]) c.session.close();
});

t.test('a message to a full JID whose resource is gone is stored when the account has no available resource', async (t) => {
  const alice = await server.login('alice', 'a');
  alice.send(chat('bob@localhost/gone', 'to-full'));
  await settled();
  t.equal(await count(server, 'bob'), 1);
  const bob = await server.login('bob', 'b');
  bob.send(PRESENCE);
  await settled();
  const [m] = bob.conn.takeStanzas('message');
  t.equal(m?.attr('to'), 'bob@localhost/gone', 'delivered unchanged');
  for (const c of [alice, bob]) c.session.close();
});

t.test('order holds across storage and delivery: stored messages come first, then one sent right after the presence', async (t) => {
  const alice = await server.login('alice', 'a');
  for (const b of ['1', '2', '3']) alice.send(chat('bob@localhost', b));
  const bob = await server.login('bob', 'b');
  bob.send(PRESENCE);
  // Sent before the stored ones have been read back: it must wait behind them.
  alice.send(chat('bob@localhost', '4'));
  alice.send(chat('bob@localhost/b', '5'));
  await settled();
  t.same(bodies(bob.conn.takeStanzas('message')), ['1', '2', '3', '4', '5']);
  t.equal(await count(server, 'bob'), 0);
  for (const c of [alice, bob]) c.session.close();
});

t.test('a delay notation a client forges in our name is removed; others stay', async (t) => {
  const alice = await server.login('alice', 'a');
  alice.send(chat('bob@localhost', 'forged',
    `<delay xmlns='${NS.DELAY}' from='localhost' stamp='2001-01-01T00:00:00Z'/><delay xmlns='${NS.DELAY}' from='muc.example' stamp='2002-02-02T00:00:00Z'/>`));
  await settled();
  const bob = await server.login('bob', 'b');
  bob.send(PRESENCE);
  await settled();
  const [m] = bob.conn.takeStanzas('message');
  const delays = delaysOf(m!);
  t.same(delays.map((d) => d.attr('from')).sort(), ['localhost', 'muc.example']);
  t.not(delays.find((d) => d.attr('from') === 'localhost')!.attr('stamp'), '2001-01-01T00:00:00Z', 'ours is the real one');
  for (const c of [alice, bob]) c.session.close();
});

t.test("a forged delay notation is removed when its from names our domain with a final dot (RFC 7622 §3.2)", async (t) => {
  const bob = await server.login('bob', 'b');
  bob.send(PRESENCE);
  await settled();
  bob.conn.take();
  const alice = await server.login('alice', 'a');
  alice.send(chat('bob@localhost', 'dotted',
    `<delay xmlns='${NS.DELAY}' from='localhost.' stamp='2001-01-01T00:00:00Z'/><delay xmlns='${NS.DELAY}' from='LocalHost.' stamp='2002-02-02T00:00:00Z'/>`));
  await settled();
  const [m] = bob.conn.takeStanzas('message');
  t.equal(m?.getChildText('body'), 'dotted', 'delivered live');
  t.same(delaysOf(m!).map((d) => d.attr('from')), [], 'no delay notation in our name is left');
  for (const c of [alice, bob]) c.session.close();
});

t.test('msgoffline is advertised in the server disco#info', async (t) => {
  const alice = await server.login('alice', 'a');
  alice.send(`<iq xmlns='jabber:client' to='localhost' type='get' id='d'><query xmlns='${NS.DISCO_INFO}'/></iq>`);
  await settled();
  const [res] = alice.conn.takeStanzas('iq');
  const features = res!.getChild('query', NS.DISCO_INFO)!.getChildren('feature').map((f) => f.attr('var'));
  t.ok(features.includes('msgoffline'));
  alice.session.close();
});

t.test('a full offline store answers resource-constraint (type wait) and drops nothing it holds', async (t) => {
  const small = await withFakeUsers(t, ['alice', 'bob'], { MAX_OFFLINE_MESSAGES: '2' });
  const alice = await small.login('alice', 'a');
  for (const b of ['1', '2', '3']) alice.send(chat('bob@localhost', b));
  await settled();
  const [err, ...more] = alice.conn.takeStanzas('message');
  t.equal(more.length, 0);
  t.equal(err?.attr('id'), '3');
  t.equal(stanzaErrorCondition(err!), 'resource-constraint');
  t.equal(err!.getChild('error')!.attr('type'), 'wait');
  const bob = await small.login('bob', 'b');
  bob.send(PRESENCE);
  await settled();
  t.same(bodies(bob.conn.takeStanzas('message')), ['1', '2']);
  alice.send(chat('bob@localhost', 'online'));
  await settled();
  t.same(bodies(bob.conn.takeStanzas('message')), ['online'], 'with room again and bob online, delivery is direct');
});

t.test('MAX_OFFLINE_MESSAGES=0 disables storage: service-unavailable as without the feature, and no msgoffline', async (t) => {
  const none = await withFakeUsers(t, ['alice', 'bob'], { MAX_OFFLINE_MESSAGES: '0' });
  const alice = await none.login('alice', 'a');
  alice.send(chat('bob@localhost', 'x'));
  alice.send(`<iq xmlns='jabber:client' to='localhost' type='get' id='d'><query xmlns='${NS.DISCO_INFO}'/></iq>`);
  await settled();
  const out = alice.conn.take();
  t.equal(stanzaErrorCondition(out.find((el) => el.local === 'message')!), 'service-unavailable');
  const features = out.find((el) => el.local === 'iq')!.getChild('query', NS.DISCO_INFO)!.getChildren('feature').map((f) => f.attr('var'));
  t.notOk(features.includes('msgoffline'));
  t.equal(await none.storage.offline.count('localhost', 'bob'), 0);
});

t.test('a message to a resumable session that is cut and never resumed is delivered exactly once, with a delay, at the next login', async (t) => {
  const sm = await withFakeUsers(t, ['alice', 'bob'], { SM_RESUME_TIMEOUT: '1' });
  const bob = await sm.login('bob', 'tab');
  await enableSm(bob);
  bob.send(PRESENCE);
  await settled();
  bob.conn.events!.transportLost('the page was closed');
  const alice = await sm.login('alice', 'a');
  alice.send(chat('bob@localhost', 'while-away'));
  await settled();
  t.same(alice.conn.takeStanzas('message'), [], 'the hibernating session took it');
  t.equal(await sm.storage.offline.count('localhost', 'bob'), 0, 'not stored yet: buffered for a resume');
  await eventually(() => bob.session.destroyed, { timeout: 3000, message: 'the resume timeout' });
  await eventually(async () => (await sm.storage.offline.count('localhost', 'bob')) === 1, { timeout: 3000, message: 'the hand-over to land offline' });

  const again = await sm.login('bob', 'tab2');
  again.send(PRESENCE);
  await settled();
  const got = again.conn.takeStanzas('message');
  t.same(bodies(got), ['while-away'], 'exactly once');
  const delays = delaysOf(got[0]!);
  t.equal(delays.length, 1, 'one delay notation');
  t.equal(delays[0]!.attr('from'), 'localhost');
  t.ok(Date.parse(delays[0]!.attr('stamp')!) <= Date.now());
  t.same(alice.conn.takeStanzas('message'), [], 'the sender never got an error');
  t.equal(await sm.storage.offline.count('localhost', 'bob'), 0);
  await settled();
  t.same(again.conn.takeStanzas('message'), [], 'and nothing twice');
});

t.test('at shutdown, unacked messages of connected and hibernating sessions end up offline', async (t) => {
  const sm = await startFakeServer({ SM_RESUME_TIMEOUT: '600' });
  await sm.addUser('alice');
  await sm.addUser('bob');
  await sm.addUser('carol');
  const alice = await sm.login('alice', 'a');
  const bob = await sm.login('bob', 'b');
  await enableSm(bob);
  bob.send(PRESENCE);
  const carol = await sm.login('carol', 'c');
  await enableSm(carol);
  carol.send(PRESENCE);
  await settled();
  carol.conn.events!.transportLost('cut');
  alice.send(chat('bob@localhost', 'b1'));
  alice.send(chat('bob@localhost', 'b2'));
  alice.send(chat('carol@localhost', 'c1'));
  await settled();
  t.same(bodies(bob.conn.takeStanzas('message')), ['b1', 'b2'], 'written to bob, never acked');
  await sm.close();
  // Memory storage keeps its data after close(), so it can be read here.
  t.same((await sm.storage.offline.list('localhost', 'bob')).map((m) => m.stanza.includes('>b1<') ? 'b1' : 'b2'), ['b1', 'b2']);
  t.equal(await sm.storage.offline.count('localhost', 'carol'), 1);
});

t.test('at shutdown, messages handed over by one tab are stored, not given to another tab that is closing too', async (t) => {
  const sm = await startFakeServer();
  await sm.addUser('alice');
  await sm.addUser('bob');
  const withSm = await sm.login('bob', 'sm');
  await enableSm(withSm);
  withSm.send(`<presence xmlns='jabber:client'><priority>5</priority></presence>`);
  const plain = await sm.login('bob', 'plain');
  plain.send(PRESENCE);
  const alice = await sm.login('alice', 'a');
  await settled();
  alice.send(chat('bob@localhost', 'to-the-top'));
  await settled();
  t.same(bodies(withSm.conn.takeStanzas('message')), ['to-the-top'], 'the higher-priority tab got it, never acked');
  plain.conn.take();
  await sm.close();
  t.same(plain.conn.takeStanzas('message'), [], 'the tab without stream management, closing as well, did not get it');
  t.equal(await sm.storage.offline.count('localhost', 'bob'), 1, 'stored for the next login');
});

t.test('at shutdown with SQLite, the unacked messages are written before the database closes, and are there after a restart', async (t) => {
  const dir = t.testdir();
  const storage = openSqliteStorage(dir);
  // A networked backend answers later than better-sqlite3 does: shutdown must wait for the writes.
  const { push } = storage.offline;
  storage.offline = { ...storage.offline, push: async (...args) => { await new Promise((r) => setTimeout(r, 30)); return push(...args); } };
  const app = await startFakeServer({ DATA_DIR: dir }, false, storage);
  for (const u of ['alice', 'bob']) await app.addUser(u);
  const alice = await app.login('alice', 'a');
  const bob = await app.login('bob', 'b');
  await enableSm(bob);
  bob.send(PRESENCE);
  await settled();
  alice.send(chat('bob@localhost', 'one'));
  alice.send(chat('bob@localhost', 'two'));
  await settled();
  t.same(bodies(bob.conn.takeStanzas('message')), ['one', 'two'], 'written, not acked');
  await app.close();
  const reopened = openSqliteStorage(dir);
  t.teardown(() => reopened.close());
  const stored = await reopened.offline.list('localhost', 'bob');
  t.same(stored.map((m) => parseXml(m.stanza, undefined, NS.CLIENT).getChildText('body')), ['one', 'two']);
});

/**
 * XEP-0191 Blocking Command through the fake transport: the blocklist
 * protocol, its pushes, and what blocking does to stanzas both ways.
 */
import t from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { withFakeUsers } from '../helpers/fake-conn.js';
import { closeAll, condition, drain, iq, item, online, Reader, seed } from '../helpers/roster-kit.js';

const server = await withFakeUsers(t, ['alice', 'bob', 'carol', 'dave', 'erin'], { MAX_BLOCKLIST_ITEMS: '4' });
await seed(server, 'alice', item('bob@localhost', 'both'));
await seed(server, 'bob', item('alice@localhost', 'both'));

const blocklist = async (c: Parameters<typeof iq>[0]) =>
  (await iq(c, 'get', `<blocklist xmlns='${NS.BLOCKING}'/>`)).getChild('blocklist', NS.BLOCKING)!.getChildren('item').map((i) => i.attr('jid'));
const block = (c: Parameters<typeof iq>[0], ...jids: string[]) =>
  iq(c, 'set', `<block xmlns='${NS.BLOCKING}'>${jids.map((j) => `<item jid='${j}'/>`).join('')}</block>`);
const unblock = (c: Parameters<typeof iq>[0], ...jids: string[]) =>
  iq(c, 'set', `<unblock xmlns='${NS.BLOCKING}'>${jids.map((j) => `<item jid='${j}'/>`).join('')}</unblock>`);
const isPush = (action: string) => (el: XmlElement) => el.local === 'iq' && el.attr('type') === 'set' && el.getChild(action, NS.BLOCKING) !== undefined;

t.test('the server announces urn:xmpp:blocking in disco#info', async (t) => {
  const c = await server.login('erin', 'disco');
  t.teardown(() => closeAll(c));
  const info = await iq(c, 'get', `<query xmlns='${NS.DISCO_INFO}'/>`, 'localhost');
  t.ok(info.getChild('query', NS.DISCO_INFO)?.getChildren('feature').some((f) => f.attr('var') === NS.BLOCKING));
});

t.test('block, unblock and unblock-all change the list, are pushed to resources that asked for it, and persist', async (t) => {
  const c1 = await server.login('carol', 'one');
  const c2 = await server.login('carol', 'two');
  const c3 = await server.login('carol', 'never-asked');
  t.teardown(() => closeAll(c1, c2, c3));
  t.same(await blocklist(c1), [], 'an empty list is an empty <blocklist/>');
  t.same(await blocklist(c2), []);
  const [r1, r2, r3] = [new Reader(c1), new Reader(c2), new Reader(c3)];

  const reply = await block(c1, 'Spam@LocalHost', 'example.org');
  t.equal(reply.attr('type'), 'result');
  for (const [who, r] of [['the sender', r1], ['the other resource', r2]] as const) {
    const push = await r.until(isPush('block'), `the block push to ${who}`);
    t.same(push.getChild('block', NS.BLOCKING)!.getChildren('item').map((i) => i.attr('jid')), ['spam@localhost', 'example.org'], `${who}: normalised JIDs`);
  }
  t.equal((await r3.all()).filter(isPush('block')).length, 0, 'no push to a resource that never asked for the blocklist');
  t.same(await blocklist(c2), ['example.org', 'spam@localhost']);

  await unblock(c2, 'example.org');
  await r1.until(isPush('unblock'), 'the unblock push');
  t.same(await blocklist(c1), ['spam@localhost']);
  t.same(await server.storage.blocklists.list('localhost', 'carol'), ['spam@localhost'], 'stored');

  await block(c1, 'a@x', 'b@x');
  await unblock(c1);
  const all = await r2.until((el) => isPush('unblock')(el) && el.getChild('unblock', NS.BLOCKING)!.getChildren().length === 0, 'the unblock-all push');
  t.ok(all, 'an empty <unblock/> is pushed for unblock-all');
  t.same(await blocklist(c1), []);
  t.same(await server.storage.blocklists.list('localhost', 'carol'), []);
});

t.test('bad block commands get their errors and change nothing', async (t) => {
  const c = await server.login('dave', 'errors');
  t.teardown(() => closeAll(c));
  const cases: Array<[string, string, string]> = [
    ['a block without items', `<block xmlns='${NS.BLOCKING}'/>`, 'bad-request'],
    ['an item without jid', `<block xmlns='${NS.BLOCKING}'><item/></block>`, 'bad-request'],
    ['a malformed JID', `<block xmlns='${NS.BLOCKING}'><item jid='a@b@c'/></block>`, 'jid-malformed'],
    ['the user\'s own JID', `<block xmlns='${NS.BLOCKING}'><item jid='dave@localhost/x'/></block>`, 'not-acceptable'],
    ['more than MAX_BLOCKLIST_ITEMS', `<block xmlns='${NS.BLOCKING}'>${[1, 2, 3, 4, 5].map((n) => `<item jid='n${n}@x'/>`).join('')}</block>`, 'not-allowed'],
  ];
  for (const [what, payload, expected] of cases) t.equal(condition(await iq(c, 'set', payload)), expected, `${what}: ${expected}`);
  t.same(await blocklist(c), []);
});

t.test('a blocked JID\'s messages and IQs get service-unavailable, its presence vanishes silently', async (t) => {
  const alice = await online(server, 'alice', 'a');
  const erin = await online(server, 'erin', 'e');
  t.teardown(() => closeAll(alice, erin));
  await block(alice, 'erin@localhost');
  const [ra, re] = [new Reader(alice), new Reader(erin)];
  erin.send(`<message xmlns='jabber:client' to='alice@localhost' type='chat' id='m1'><body>hi</body></message>`);
  erin.send(`<message xmlns='jabber:client' to='alice@localhost/a' type='chat' id='m2'><body>hi</body></message>`);
  erin.send(`<iq xmlns='jabber:client' to='alice@localhost/a' type='get' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>`);
  erin.send(`<presence xmlns='jabber:client' to='alice@localhost'/>`);
  erin.send(`<presence xmlns='jabber:client' to='alice@localhost' type='subscribe'/>`);
  t.same((await ra.all()).map(String), [], 'alice gets nothing at all');
  const back = await re.all();
  t.same(back.filter((el) => el.attr('type') === 'error').map((el) => [el.local, el.attr('id'), condition(el)]),
    [['message', 'm1', 'service-unavailable'], ['message', 'm2', 'service-unavailable'], ['iq', 'q1', 'service-unavailable']],
    'messages and the IQ get service-unavailable, the presence nothing (the user looks offline)');
  t.same((await server.storage.rosters.load('localhost', 'alice')).pending, [], 'the blocked subscription request is not kept either');
  t.same((await server.storage.rosters.load('localhost', 'erin')).items.map((i) => [i.jid, i.ask]), [['alice@localhost', true]],
    'while the sender\'s own roster shows its request as pending, as for any unanswered one (A.2.1)');
  await unblock(alice, 'erin@localhost');
  erin.send(`<message xmlns='jabber:client' to='alice@localhost' type='chat' id='m3'><body>again</body></message>`);
  t.same((await ra.stanzas('message')).map((m) => m.attr('id')), ['m3'], 'after unblocking, stanzas flow again');
});

t.test('stanzas to a blocked JID get not-acceptable with <blocked/>', async (t) => {
  const alice = await online(server, 'alice', 'a');
  const erin = await online(server, 'erin', 'e');
  t.teardown(() => closeAll(alice, erin));
  await block(alice, 'erin@localhost');
  t.teardown(() => unblock(alice));
  const [ra, re] = [new Reader(alice), new Reader(erin)];
  alice.send(`<message xmlns='jabber:client' to='erin@localhost' type='chat' id='o1'><body>x</body></message>`);
  alice.send(`<iq xmlns='jabber:client' to='erin@localhost/e' type='get' id='o2'><ping xmlns='urn:xmpp:ping'/></iq>`);
  alice.send(`<presence xmlns='jabber:client' to='erin@localhost' type='subscribe' id='o3'/>`);
  alice.send(`<iq xmlns='jabber:client' to='erin@localhost/e' type='result' id='o4'/>`);
  const errors = (await ra.all()).filter((el) => el.attr('type') === 'error');
  t.same(errors.map((e) => [e.local, e.attr('id'), condition(e), e.getChild('error')?.attr('type')]),
    [['message', 'o1', 'not-acceptable', 'cancel'], ['iq', 'o2', 'not-acceptable', 'cancel'], ['presence', 'o3', 'not-acceptable', 'cancel']],
    'every request is refused (an IQ result is just dropped)');
  t.ok(errors.every((e) => e.getChild('error')!.getChild('blocked', NS.BLOCKING_ERRORS)), 'each with <blocked xmlns=\'urn:xmpp:blocking:errors\'/>');
  t.same((await re.all()).map(String), [], 'erin gets nothing');
  t.same((await server.storage.rosters.load('localhost', 'alice')).items.map((i) => i.jid), ['bob@localhost'], 'the refused subscribe changed no roster');
  const own = await iq(alice, 'get', `<ping xmlns='urn:xmpp:ping'/>`, 'localhost');
  t.equal(own.attr('type'), 'result', 'the server itself is never blocked');
});

t.test('blocking a subscriber sends it unavailable presence and hides further presence; unblocking sends current presence', async (t) => {
  const alice = await online(server, 'alice', 'a');
  const bob = await online(server, 'bob', 'b');
  t.teardown(() => closeAll(alice, bob));
  const [ra, rb] = [new Reader(alice), new Reader(bob)];
  await block(alice, 'bob@localhost');
  const out = await rb.all();
  t.same(out.filter((el) => el.local === 'presence').map((p) => [p.attr('type'), p.attr('from')]), [['unavailable', 'alice@localhost/a']],
    'bob sees alice go offline (§3.3)');
  alice.send(`<presence xmlns='jabber:client'><show>chat</show></presence>`);
  bob.send(`<presence xmlns='jabber:client'><show>xa</show></presence>`);
  await drain();
  t.equal((await rb.stanzas('presence')).filter((p) => p.attr('from') === 'alice@localhost/a').length, 0, 'alice\'s updates no longer reach bob');
  t.equal((await ra.stanzas('presence')).filter((p) => p.attr('from') === 'bob@localhost/b').length, 0, 'nor bob\'s reach alice');

  await unblock(alice, 'bob@localhost');
  const back = (await rb.stanzas('presence')).filter((p) => p.attr('from') === 'alice@localhost/a');
  t.same(back.map((p) => [p.attr('type'), p.getChildText('show')]), [[undefined, 'chat']], 'bob gets alice\'s current presence (§3.4)');
  const seen = (await ra.stanzas('presence')).filter((p) => p.attr('from') === 'bob@localhost/b');
  t.same(seen.map((p) => p.getChildText('show')), ['xa'], 'and alice learns bob\'s current presence again');
});

t.test('a message from a blocked JID to an offline user is refused too', async (t) => {
  await server.storage.blocklists.add('localhost', 'dave', ['erin@localhost']);
  const erin = await online(server, 'erin', 'e');
  t.teardown(() => closeAll(erin));
  const re = new Reader(erin);
  erin.send(`<message xmlns='jabber:client' to='dave@localhost' type='chat' id='off1'><body>x</body></message>`);
  const err = await re.until((el) => el.attr('id') === 'off1', 'the refusal');
  t.equal(condition(err), 'service-unavailable');
  await drain();
  t.equal(await server.storage.offline.count('localhost', 'dave'), 0, 'nothing was stored for dave');
  await server.storage.blocklists.clear('localhost', 'dave');
});

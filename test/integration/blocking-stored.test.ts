/**
 * XEP-0191 §3.3 ("the user's server MUST NOT deliver any XML stanzas from the
 * JID to the user") for what was stored before the block: a subscription
 * request and an offline message from a JID the user blocked since.
 */
import t from 'tap';
import { NS } from '../../src/xml/index.js';
import { withFakeUsers } from '../helpers/fake-conn.js';
import { closeAll, condition, drain, iq, online, Reader, rosterGet } from '../helpers/roster-kit.js';

const block = (c: Parameters<typeof iq>[0], verb: 'block' | 'unblock', jid: string) =>
  iq(c, 'set', `<${verb} xmlns='${NS.BLOCKING}'><item jid='${jid}'/></${verb}>`);

t.test('a stored subscription request from a JID blocked since is not delivered at the next login; after an unblock it is', async (t) => {
  const server = await withFakeUsers(t, ['alice', 'bob']);
  const bob = await online(server, 'bob', 'b');
  bob.send(`<presence xmlns='jabber:client' type='subscribe' to='alice@localhost'/>`);
  await drain(20);
  await closeAll(bob);
  const alice = await server.login('alice', 'a');
  await rosterGet(alice);
  t.equal((await block(alice, 'block', 'bob@localhost')).attr('type'), 'result');
  const r = new Reader(alice);
  alice.send(`<presence xmlns='jabber:client'/>`);
  const subscribes = async () => (await r.all()).filter((el) => el.local === 'presence' && el.attr('type') === 'subscribe').map((el) => el.attr('from'));
  t.same(await subscribes(), [], 'nothing from the blocked JID');
  await closeAll(alice);
  const again = await server.login('alice', 'a2');
  t.teardown(() => closeAll(again));
  await rosterGet(again);
  t.equal((await block(again, 'unblock', 'bob@localhost')).attr('type'), 'result');
  const r2 = new Reader(again);
  again.send(`<presence xmlns='jabber:client'/>`);
  t.same((await r2.all()).filter((el) => el.local === 'presence' && el.attr('type') === 'subscribe').map((el) => el.attr('from')), ['bob@localhost'], 'kept: shown once unblocked');
});

t.test('an offline message from a JID blocked since is not delivered: taken out, its sender gets service-unavailable', async (t) => {
  const server = await withFakeUsers(t, ['alice', 'bob', 'carol']);
  const bob = await online(server, 'bob', 'b');
  const carol = await online(server, 'carol', 'c');
  t.teardown(() => closeAll(bob, carol));
  bob.send(`<message xmlns='jabber:client' type='chat' to='alice@localhost' id='m1'><body>spam</body></message>`);
  carol.send(`<message xmlns='jabber:client' type='chat' to='alice@localhost' id='m2'><body>hello</body></message>`);
  await drain(20);
  t.equal(await server.storage.offline.count('localhost', 'alice'), 2, 'both stored while alice was offline');
  const bobReader = new Reader(bob);
  const alice = await server.login('alice', 'a');
  t.teardown(() => closeAll(alice));
  await rosterGet(alice);
  t.equal((await block(alice, 'block', 'bob@localhost')).attr('type'), 'result');
  const r = new Reader(alice);
  alice.send(`<presence xmlns='jabber:client'/>`);
  await drain(20);
  const messages = (await r.all()).filter((el) => el.local === 'message');
  t.same(messages.map((m) => m.attr('id')), ['m2'], "only carol's message is delivered");
  const errors = (await bobReader.all()).filter((el) => el.local === 'message' && el.attr('type') === 'error');
  t.same(errors.map((e) => [e.attr('id'), condition(e)]), [['m1', 'service-unavailable']], 'bob is told, as for a message sent after the block');
  t.equal(await server.storage.offline.count('localhost', 'alice'), 0, 'nothing left stored');
});

t.test('blocking a JID that got directed presence: it is told unavailable at once, and nothing more at the session end', async (t) => {
  const server = await withFakeUsers(t, ['alice', 'eve', 'frank']);
  const eve = await online(server, 'eve', 'e');
  const frank = await online(server, 'frank', 'f');
  t.teardown(() => closeAll(eve, frank));
  const alice = await online(server, 'alice', 'a');
  const re = new Reader(eve);
  const rf = new Reader(frank);
  const fromAlice = (type: string | undefined) => (el: { local: string; attr(n: string): string | undefined }) =>
    el.local === 'presence' && el.attr('from') === 'alice@localhost/a' && el.attr('type') === type;
  alice.send(`<presence xmlns='jabber:client' to='eve@localhost'/>`);
  alice.send(`<presence xmlns='jabber:client' to='frank@localhost/f'/>`);
  await re.until(fromAlice(undefined), 'directed presence at eve');
  await rf.until(fromAlice(undefined), 'directed presence at frank');
  t.equal((await block(alice, 'block', 'eve@localhost')).attr('type'), 'result');
  await drain(20);
  t.equal((await re.all()).filter(fromAlice('unavailable')).length, 1, 'XEP-0191 §3.3: eve is told at the block');
  t.equal((await rf.all()).filter(fromAlice('unavailable')).length, 0, 'frank, not blocked, still sees alice');
  alice.session.close();
  await drain(20);
  t.equal((await re.all()).filter(fromAlice('unavailable')).length, 0, 'eve: nothing more when the session ends');
  t.equal((await rf.all()).filter(fromAlice('unavailable')).length, 1, 'frank is told when the session ends (RFC 6121 §4.6.3)');
});

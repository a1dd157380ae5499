/**
 * RFC 6121 §5.2.2: a message with a type the server does not understand is
 * handled as type normal: stored offline for an account with no available
 * resource (to its bare JID or to a full JID whose resource is gone), copied
 * by carbons and archived like normal, relayed with its type as sent.
 */
import t from 'tap';
import { eventually } from '../helpers/eventually.js';
import { NS } from '../../src/xml/index.js';
import { withFakeUsers } from '../helpers/fake-conn.js';
import { closeAll, drain, online, Reader } from '../helpers/roster-kit.js';

const odd = (to: string, id: string) => `<message xmlns='jabber:client' type='foo' to='${to}' id='${id}'><body>hi</body></message>`;

t.test('to an account with no resource, at its bare JID or a full JID: stored as normal, no error', async (t) => {
  const server = await withFakeUsers(t, ['alice', 'bob']);
  const bob = await online(server, 'bob', 'b');
  t.teardown(() => closeAll(bob));
  const r = new Reader(bob);
  bob.send(odd('alice@localhost', 'm1'));
  bob.send(odd('alice@localhost/gone', 'm2'));
  await drain(20);
  const errors = (await r.all()).filter((el) => el.local === 'message' && el.attr('type') === 'error');
  t.same(errors.map((e) => e.attr('id')), [], 'no error for either');
  t.equal(await server.storage.offline.count('localhost', 'alice'), 2, 'both stored offline');
  const alice = await online(server, 'alice', 'a');
  t.teardown(() => closeAll(alice));
  await drain(20);
  const got = alice.conn.takeStanzas('message').filter((m) => m.getChildText('body') === 'hi');
  t.same(got.map((m) => [m.attr('id'), m.attr('type')]), [['m1', 'foo'], ['m2', 'foo']], 'delivered at login, the type as sent');
});

t.test('to an online account: delivered, copied to the sender\'s other resource and archived as normal', async (t) => {
  const server = await withFakeUsers(t, ['alice', 'bob']);
  const bob = await online(server, 'bob', 'b');
  const bob2 = await online(server, 'bob', 'b2');
  const alice = await online(server, 'alice', 'a');
  t.teardown(() => closeAll(bob, bob2, alice));
  bob2.send(`<iq xmlns='jabber:client' type='set' id='c'><enable xmlns='${NS.CARBONS}'/></iq>`);
  await drain(20);
  bob2.conn.take();
  bob.send(odd('alice@localhost', 'm3'));
  await drain(20);
  t.ok(alice.conn.takeStanzas('message').some((m) => m.attr('id') === 'm3'), 'delivered');
  t.ok(bob2.conn.takeStanzas('message').some((m) => m.getChild('sent', NS.CARBONS)), 'a <sent/> carbon, as for normal with a body');
  // Once the archive's batch (BATCH_MS) is committed.
  t.ok(await eventually(async () => {
    const page = await server.storage.archive.query('localhost', 'alice', { limit: 10, direction: 'forward' });
    return page !== 'item-not-found' && page.messages.some((m) => m.stanza.includes('id="m3"'));
  }, { message: "m3 in alice's archive" }), "in alice's archive");
});

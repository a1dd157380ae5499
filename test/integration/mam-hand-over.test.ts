/**
 * XEP-0313 results a session never acknowledged (XEP-0198) when it ends for
 * good: answers to its own query, not messages to the account. They are not
 * handed to another resource nor stored offline; a chat message in the same
 * unacked queue still is (hand-over.ts).
 */
import t from 'tap';
import { settled, withFakeUsers } from '../helpers/fake-conn.js';
import { waitUntil } from '../helpers/eventually.js';
import { NS } from '../../src/xml/index.js';

const NS_MAM = 'urn:xmpp:mam:2';

t.test("a MAM page that dies unacked with its session is neither delivered to another resource nor stored offline", async (t) => {
  const server = await withFakeUsers(t, ['alice', 'bob'], { SM_RESUME_TIMEOUT: '1' });
  const alice = await server.login('alice', 'a');
  const top = await server.login('bob', 'top');
  top.send(`<presence xmlns='jabber:client'><priority>5</priority></presence>`);
  for (const n of [1, 2, 3]) alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m${n}'><body>history ${n}</body></message>`);
  await settled();

  const tab = await server.login('bob', 'tab');
  tab.send(`<enable xmlns='${NS.SM}' resume='true'/>`);
  tab.send(`<presence xmlns='jabber:client'/>`);
  tab.send(`<iq xmlns='jabber:client' type='set' id='page'><query xmlns='${NS_MAM}' queryid='q1'/></iq>`);
  await waitUntil(() => tab.conn.out.some((el) => el.local === 'iq' && el.attr('id') === 'page'), { timeout: 5000 });
  const results = tab.conn.out.filter((el) => el.local === 'message' && el.getChild('result', NS_MAM) !== undefined);
  t.equal(results.length, 3, 'the page held the three archived messages');
  // One real message in the same unacked queue: the hand-over must still carry it to the other resource.
  alice.send(`<message xmlns='jabber:client' to='bob@localhost/tab' type='chat' id='late'><body>to the tab</body></message>`);
  await settled();
  t.ok(tab.conn.out.some((el) => el.local === 'message' && el.attr('id') === 'late'), 'the tab got the direct message');
  top.conn.take();

  tab.conn.events!.transportLost('cut');
  await waitUntil(() => tab.session.destroyed, { timeout: 5000 });
  await settled();
  const toTop = top.conn.takeStanzas('message');
  t.same(toTop.filter((m) => m.getChild('result', NS_MAM) !== undefined).map(String), [], 'no query result went to the other resource');
  t.same(toTop.map((m) => m.attr('id')), ['late'], 'the unacked chat message was handed to the other resource');
  t.equal(await server.storage.offline.count('localhost', 'bob'), 0, 'nothing was stored offline');
  t.same(alice.conn.takeStanzas('message').filter((m) => m.attr('type') === 'error').map(String), [], 'nothing was bounced to anyone');
});

t.test('with no other resource, the unacked chat messages go to offline storage and the unacked page does not', async (t) => {
  const server = await withFakeUsers(t, ['alice', 'bob'], { SM_RESUME_TIMEOUT: '1' });
  const alice = await server.login('alice', 'a');
  const tab = await server.login('bob', 'tab');
  tab.send(`<enable xmlns='${NS.SM}' resume='true'/>`);
  tab.send(`<presence xmlns='jabber:client'/>`);
  await settled();
  for (const n of [1, 2]) alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m${n}'><body>unacked ${n}</body></message>`);
  await settled();
  t.equal(tab.conn.out.filter((el) => el.local === 'message').length, 2, 'the tab got both messages (and acknowledges neither)');
  tab.send(`<iq xmlns='jabber:client' type='set' id='page'><query xmlns='${NS_MAM}' queryid='q2'/></iq>`);
  await waitUntil(() => tab.conn.out.some((el) => el.local === 'iq' && el.attr('id') === 'page'), { timeout: 5000 });
  t.equal(tab.conn.out.filter((el) => el.local === 'message' && el.getChild('result', NS_MAM) !== undefined).length, 2, 'the page held both messages');

  tab.conn.events!.transportLost('cut');
  await waitUntil(() => tab.session.destroyed, { timeout: 5000 });
  await settled();
  t.equal(await server.storage.offline.count('localhost', 'bob'), 2, 'the two chat messages were stored offline, the two results were not');
  const next = await server.login('bob', 'next');
  next.send(`<presence xmlns='jabber:client'/>`);
  await waitUntil(() => next.conn.out.filter((el) => el.local === 'message').length >= 2, { timeout: 5000 });
  await settled();
  const replayed = next.conn.takeStanzas('message');
  t.same(replayed.map((m) => m.attr('id')), ['m1', 'm2'], 'the next login gets the two chat messages, in order');
  t.same(replayed.filter((m) => m.getChild('result', NS_MAM) !== undefined).map(String), [], 'and no query result');
});

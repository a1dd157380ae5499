/**
 * XEP-0313 §5.1.1 at shutdown: a message bounced after it was archived is taken out
 * of the recipient's archive even when the process stops before the removal's batch
 * time (BATCH_MS) is up; the sender's copy stays.
 */
import t from 'tap';
import { settled, startFakeServer } from '../helpers/fake-conn.js';
import { eventually } from '../helpers/eventually.js';

t.test('a removal gathered when the server stops is made by the drain', async (t) => {
  const server = await startFakeServer({ MAX_OFFLINE_MESSAGES: '1' });
  for (const u of ['alice', 'bob']) await server.addUser(u);
  const alice = await server.login('alice', 'a');
  alice.send("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='kept'><body>stored</body></message>");
  alice.send("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='refused'><body>over the quota</body></message>");
  await eventually(() => alice.conn.out.some((m) => m.attr('type') === 'error' && m.attr('id') === 'refused'), { interval: 1, message: 'the bounce' });
  // At once, within BATCH_MS of the bounce: the removal is still gathered.
  server.app.closeSessions();
  await server.app.drain();
  await settled();
  const ids = async (user: string) => {
    const page = await server.storage.archive.query('localhost', user, { limit: 10, direction: 'forward' });
    return page === 'item-not-found' ? [] : page.messages.map((m) => /id="([^"]+)"/.exec(m.stanza)?.[1]);
  };
  t.same(await ids('bob'), ['kept'], "bob's archive holds only what he took");
  t.same(await ids('alice'), ['kept', 'refused'], "alice's holds both");
  await server.storage.close();
});

/**
 * The core's ordering guarantees while a handler awaits (issue 12): a
 * session's later input — its acks, its close — waits behind the awaiting
 * handler, so nothing the client acknowledged is handed over again, and a
 * failing store is a stanza error, not the end of the sender's session.
 * Through the fake transport; the await is real (an offline contact's
 * account is loaded from storage by the blocking check).
 */
import t from 'tap';
import { startFakeServer, enableSm, settled, type FakeServer } from '../helpers/fake-conn.js';
import { stanzaErrorCondition } from '../helpers/ws-client.js';
import { NS } from '../../src/xml/index.js';

async function serverWith(users: string[]): Promise<FakeServer> {
  const server = await startFakeServer();
  for (const u of users) await server.addUser(u);
  return server;
}

t.test('a close that arrives while a handler awaits comes after the acks sent before it: nothing acked is handed over', async (t) => {
  const server = await serverWith(['alice', 'bob', 'carol']);
  t.teardown(() => server.close());
  const alice = await server.login('alice', 'a');
  const bob = await server.login('bob', 'b');
  await enableSm(alice);
  alice.send(`<presence/>`);
  await settled(5);
  alice.conn.take();
  for (let i = 0; i < 3; i++) bob.send(`<message to='alice@localhost/a' type='chat' id='m${i}'><body>hi ${i}</body></message>`);
  await settled(5);
  t.equal(alice.conn.takeStanzas('message').length, 3, 'alice got 3 messages');
  // carol is offline and not in memory: the blocking check loads her account, so alice's queue waits on it.
  alice.send(`<message to='carol@localhost' type='chat' id='c1'><body>hello carol</body></message>`);
  alice.send(`<a xmlns='${NS.SM}' h='4'/>`);
  alice.conn.events!.streamClosed();
  await settled(20);
  t.equal(await server.storage.offline.count('localhost', 'alice'), 0, 'the three acknowledged messages are not stored again for alice');
  t.equal(await server.storage.offline.count('localhost', 'carol'), 1, "alice's message to carol was stored for her");
});

t.test('a store that fails while routing answers the stanza with internal-server-error; the sender stays connected', async (t) => {
  const server = await serverWith(['alice', 'carol']);
  t.teardown(() => server.close());
  const alice = await server.login('alice', 'a');
  const load = server.storage.rosters.load.bind(server.storage.rosters);
  server.storage.rosters.load = async (host, user) => {
    if (user === 'carol') throw new Error('the database is down');
    return load(host, user);
  };
  t.teardown(() => { server.storage.rosters.load = load; });
  alice.send(`<message to='carol@localhost' type='chat' id='x1'><body>are you there?</body></message>`);
  await settled(20);
  const [reply] = alice.conn.takeStanzas('message');
  t.equal(reply?.attr('id'), 'x1');
  t.equal(stanzaErrorCondition(reply!), 'internal-server-error');
  t.notOk(alice.conn.closed, 'the stream is still open');
  t.notOk(alice.session.destroyed, 'the session goes on');
});

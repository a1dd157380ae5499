/**
 * XEP-0198 hand-over of a message that went to several resources at once: a
 * chat message to the bare JID reaches every resource of the top priority
 * (message.ts bareTargets), each as its own copy. When one of them ends with its
 * copy unacknowledged, the others that got it (and are still there) must not
 * get it a second time: it is handed over only when no other resource holds it.
 * Over a real WebSocket.
 */
import t from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient, availableWs } from '../helpers/ws-client.js';
import { waitUntil } from '../helpers/eventually.js';

const server = await withUsers(t, ['alice', 'bob', 'carol'], { ALLOW_INSECURE_PLAIN: 'true' });

const isMsg = (id: string) => (el: XmlElement): boolean => el.local === 'message' && el.attr('id') === id;

const online = (user: string, resource: string, sm = false): Promise<RawWsClient> => availableWs(t, server.wsUrl, user, resource, sm);

t.test('a chat message both tabs got is not given again to the tab that stays when the other ends without acking it', async (t) => {
  const tab = await online('alice', 'tab', true);
  const other = await online('alice', 'other');
  const bob = await online('bob', 'b');

  bob.send(`<message xmlns='jabber:client' to='alice@localhost' type='chat' id='both'><body>to both tabs</body></message>`);
  await tab.until(isMsg('both'));
  await other.until(isMsg('both'));

  tab.send(`<close xmlns='${NS.FRAMING}'/>`);
  await waitUntil(() => server.app.sessions.get('localhost', 'alice', 'tab') === undefined, { timeout: 5000 });
  await server.app.core.idle();
  bob.send(`<message xmlns='jabber:client' to='alice@localhost/other' type='chat' id='marker'><body>after the hand-over</body></message>`);
  await other.until(isMsg('marker'));

  const got = other.frames.filter((el) => el.local === 'message').map((el) => el.attr('id'));
  t.equal(got.filter((id) => id === 'both').length, 1, 'the tab that stays has the message once');
  t.equal(await server.storage.offline.count('localhost', 'alice'), 0, 'nothing stored offline');
});

t.test('when every tab that got it ends without acking it, it is handed over once: stored offline', async (t) => {
  const one = await online('carol', 'one', true);
  const two = await online('carol', 'two', true);
  const bob = await online('bob', 'b2');

  bob.send(`<message xmlns='jabber:client' to='carol@localhost' type='chat' id='kept'><body>to both, acked by neither</body></message>`);
  await one.until(isMsg('kept'));
  await two.until(isMsg('kept'));

  one.send(`<close xmlns='${NS.FRAMING}'/>`);
  await waitUntil(() => server.app.sessions.get('localhost', 'carol', 'one') === undefined, { timeout: 5000 });
  two.send(`<close xmlns='${NS.FRAMING}'/>`);
  await waitUntil(() => server.app.sessions.get('localhost', 'carol', 'two') === undefined, { timeout: 5000 });
  await server.app.core.idle();
  const stored = await server.storage.offline.list('localhost', 'carol');
  t.same(stored.map((m) => /id=["']([^"']+)/.exec(m.stanza)?.[1]), ['kept'], 'stored once, not lost and not twice');
  t.notOk(bob.frames.some((el) => el.local === 'message' && el.attr('type') === 'error'), 'no error to the sender');
});

/**
 * XEP-0198 §4 ("treat unacknowledged stanzas in the same way that it would
 * treat a stanza sent to an unavailable resource") with RFC 6121 §8.5.3.2.1:
 * a headline for a resource that is gone is silently ignored. A headline a
 * session never acknowledged is not handed to the account's other resources:
 * each of them got its own copy already (a contact's PEP notification, an
 * announcement, a headline to the bare JID), or was never meant to get it.
 * Chat messages in the same queue still are. Over a real WebSocket.
 */
import t from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient, availableWs } from '../helpers/ws-client.js';
import { waitUntil } from '../helpers/eventually.js';

const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true' });

const isMsg = (id: string) => (el: XmlElement): boolean => el.local === 'message' && el.attr('id') === id;

const online = (user: string, resource: string, sm = false): Promise<RawWsClient> => availableWs(t, server.wsUrl, user, resource, sm);

t.test('unacked headlines of a session that ends are not given to the other resources; its chat message is', async (t) => {
  const tab = await online('alice', 'tab', true);
  const other = await online('alice', 'other');
  const bob = await online('bob', 'b');

  bob.send(`<message xmlns='jabber:client' to='alice@localhost' type='headline' id='h-bare'><body>to every resource</body></message>`);
  bob.send(`<message xmlns='jabber:client' to='alice@localhost/tab' type='headline' id='h-full'><body>to the tab only</body></message>`);
  bob.send(`<message xmlns='jabber:client' to='alice@localhost/tab' type='chat' id='c-full'><body>a chat to the tab</body></message>`);
  await tab.until(isMsg('c-full'));
  await other.until(isMsg('h-bare'));

  // The tab leaves without acknowledging any of them: stream management hands them over.
  tab.send(`<close xmlns='${NS.FRAMING}'/>`);
  await waitUntil(() => server.app.sessions.get('localhost', 'alice', 'tab') === undefined, { timeout: 5000 });
  await server.app.core.idle();
  bob.send(`<message xmlns='jabber:client' to='alice@localhost/other' type='chat' id='marker'><body>after the hand-over</body></message>`);
  await other.until(isMsg('marker'));

  const got = other.frames.filter((el) => el.local === 'message').map((el) => el.attr('id'));
  t.equal(got.filter((id) => id === 'h-bare').length, 1, 'the headline to the bare JID reached the other resource once, not again');
  t.equal(got.filter((id) => id === 'h-full').length, 0, 'the headline to the tab did not go to another resource');
  t.equal(got.filter((id) => id === 'c-full').length, 1, 'the unacked chat message was handed to the other resource');
  t.notOk(bob.frames.some((el) => el.local === 'message' && el.attr('type') === 'error'), 'no error to the sender');
});

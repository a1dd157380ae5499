/**
 * RFC 6121 §8.5.3.2.1 while the account's offline delivery is under way: a
 * headline or an error to a full JID whose resource is not connected is
 * silently ignored, as when no delivery is running. A message that arrives
 * while stored ones are being delivered waits behind them (offline/index.ts);
 * when its turn comes it must still follow the rules for its type, not the
 * bare-JID rules that only chat and normal take (§8.5.3.2.1). Over a real
 * WebSocket, with stream management so the delivery waits for the client's ack.
 */
import t from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { waitUntil } from '../helpers/eventually.js';

const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true' });

const isMsg = (id: string) => (el: XmlElement): boolean => el.local === 'message' && el.attr('id') === id;
const isStanza = (el: XmlElement): boolean => el.local === 'message' || el.local === 'presence' || el.local === 'iq';

t.test('a headline or an error to a gone resource, arriving during offline delivery, reaches no other resource', async (t) => {
  const alice = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => alice.close());
  await alice.login('alice', 'alice-pw', 'a');
  alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='stored'><body>while you were away</body></message>`);
  await waitUntil(async () => (await server.storage.offline.count('localhost', 'bob')) === 1, { timeout: 5000 });

  const bob = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'b2');
  bob.send(`<enable xmlns='${NS.SM}'/>`);
  await bob.until((el) => el.is('enabled', NS.SM));
  const enabledAt = bob.frames.length;
  bob.send(`<presence xmlns='jabber:client'/>`);
  // The stored message is out; its delivery waits for bob's ack, so the account's delivery line is busy.
  await bob.until(isMsg('stored'));

  alice.send(`<message xmlns='jabber:client' to='bob@localhost/gone' type='headline' id='headline'><body>for a resource that is not there</body></message>`);
  alice.send(`<message xmlns='jabber:client' to='bob@localhost/gone' type='error' id='error'><error type='cancel'><item-not-found xmlns='${NS.STANZAS}'/></error></message>`);
  alice.send(`<message xmlns='jabber:client' to='bob@localhost/b2' type='chat' id='marker'><body>after them</body></message>`);
  // Answered after the three were routed (a session's stanzas are handled in order): they wait behind the delivery.
  alice.send(`<iq xmlns='jabber:client' to='localhost' type='get' id='ping'><ping xmlns='${NS.PING}'/></iq>`);
  await alice.until((el) => el.local === 'iq' && el.attr('id') === 'ping');
  const handled = bob.frames.slice(enabledAt).filter(isStanza).length;
  bob.send(`<a xmlns='${NS.SM}' h='${handled}'/>`);
  await bob.until(isMsg('marker'));

  const ids = bob.frames.filter((el) => el.local === 'message').map((el) => el.attr('id'));
  t.same(ids.filter((id) => id === 'headline' || id === 'error'), [], 'neither went to the connected resource');
  t.same(ids.filter((id) => id === 'stored' || id === 'marker'), ['stored', 'marker'], 'the stored message and the later one arrived, in order');
  t.equal(await server.storage.offline.count('localhost', 'bob'), 0, 'nothing more stored');
});

/**
 * RFC 6120 §10.1: what one entity sends to another is processed, and so
 * reaches it, in the order sent. While an account's stored messages are being
 * delivered (XEP-0160; the next messages wait behind them until the client
 * acknowledges the page, XEP-0198), a message to one of its resources waits,
 * and an IQ or a directed presence the same sender sent after it used to
 * overtake it: the resource got the IQ first. They now wait in the same line.
 * Over a real WebSocket, with Prosody's order (which has no such line) as the
 * yardstick.
 */
import t from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient, availableWs } from '../helpers/ws-client.js';
import { eventually } from '../helpers/eventually.js';

const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true' });
const isStanza = (el: XmlElement): boolean => el.ns === NS.CLIENT && (el.local === 'message' || el.local === 'presence' || el.local === 'iq');

t.test('a message, an IQ and a directed presence to a resource receiving its stored messages arrive in the order sent', async (t) => {
  const alice = await availableWs(t, server.wsUrl, 'alice', 'a');
  alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='stored'><body>while away</body></message>`);
  await eventually(async () => await server.storage.offline.count('localhost', 'bob') === 1, { message: 'the message stored' });

  const bob = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'b1');
  bob.send(`<enable xmlns='${NS.SM}'/>`);
  await bob.until((el) => el.is('enabled', NS.SM));
  const since = bob.frames.length;
  bob.send(`<presence xmlns='jabber:client'/>`);
  await bob.until((el) => el.attr('id') === 'stored');
  // bob has not acknowledged the stored page: the delivery still holds the account's line.
  alice.send(`<message xmlns='jabber:client' to='bob@localhost/b1' type='chat' id='m-after'><body>after</body></message>`);
  alice.send(`<iq xmlns='jabber:client' to='bob@localhost/b1' type='get' id='iq-after'><query xmlns='jabber:iq:version'/></iq>`);
  alice.send(`<presence xmlns='jabber:client' to='bob@localhost/b1' id='p-after'/>`);
  // What alice sent is processed (a ping to the server, sent after, is answered) before bob acknowledges.
  alice.send(`<iq xmlns='jabber:client' to='localhost' type='get' id='ping'><ping xmlns='${NS.PING}'/></iq>`);
  await alice.until((el) => el.attr('id') === 'ping');
  const h = bob.frames.slice(since).filter(isStanza).length;
  bob.send(`<a xmlns='${NS.SM}' h='${h}'/>`);
  const order = (): string[] => bob.frames.map((el) => el.attr('id') ?? '').filter((id) => id.endsWith('-after'));
  await eventually(() => order().length === 3, { message: () => `all three at bob (got ${order().join(', ')})` });
  t.same(order(), ['m-after', 'iq-after', 'p-after'], 'in the order alice sent them');
});

/**
 * RFC 6121 §8.5.2.1.1: a message of type error addressed to a bare JID is
 * silently ignored, even when the account has available resources (Prosody's
 * and ejabberd's behaviour too). An error is the answer to a stanza, and what
 * carries an account's bare JID as its sender is made by the server (carbons,
 * PEP notifications, MAM results): an error to it is nobody's to read. Before,
 * it went to the account's top resource like a chat message. Over a real
 * WebSocket.
 */
import t from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient, availableWs } from '../helpers/ws-client.js';

const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true' });

const isMsg = (id: string) => (el: XmlElement): boolean => el.local === 'message' && el.attr('id') === id;

const online = (user: string, resource: string): Promise<RawWsClient> => availableWs(t, server.wsUrl, user, resource);

t.test('an error message to a bare JID reaches none of its resources, and nothing answers it', async (t) => {
  const bob = await online('bob', 'b');
  const alice = await online('alice', 'a');
  alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='error' id='err'><error type='cancel'><service-unavailable xmlns='${NS.STANZAS}'/></error></message>`);
  alice.send(`<message xmlns='jabber:client' to='bob@localhost/b' type='error' id='err-full'><error type='cancel'><service-unavailable xmlns='${NS.STANZAS}'/></error></message>`);
  alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='marker'><body>after it</body></message>`);
  await bob.until(isMsg('marker'));
  const ids = bob.frames.filter((el) => el.local === 'message').map((el) => el.attr('id'));
  t.same(ids, ['err-full', 'marker'], 'the error to the full JID is delivered, the one to the bare JID is not');
  alice.send(`<iq xmlns='jabber:client' to='localhost' type='get' id='ping'><ping xmlns='${NS.PING}'/></iq>`);
  await alice.until((el) => el.attr('id') === 'ping');
  t.notOk(alice.frames.some((el) => el.local === 'message' && el.attr('type') === 'error'), 'no error answers an error');
});

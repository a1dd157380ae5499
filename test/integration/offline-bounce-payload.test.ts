/**
 * XEP-0160 §3 keeps a message that carries only chat states out of offline
 * storage (Converse.js marks its notifications <no-store/> too), so one to
 * an account with no available resource bounces with service-unavailable
 * (RFC 6121 §8.5.2.2.1). The bounce carries the notification back (RFC 6120
 * §8.3.1 lets an error include the original XML), as ejabberd's does: a
 * client tells from it that a notification failed, not a message, and
 * Converse.js then shows nothing (its issue 1317). Without it, Converse
 * showed an error in the chat each time its user typed to an offline
 * contact. A bounced message with a body still comes back without it: a
 * client that finds no message of its own by the id would show the text as
 * the contact's. Over a real WebSocket.
 */
import t from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { availableWs, stanzaErrorCondition } from '../helpers/ws-client.js';

const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true' });
const isError = (id: string) => (el: XmlElement): boolean => el.local === 'message' && el.attr('id') === id && el.attr('type') === 'error';

t.test('a chat state to an offline account bounces with the notification in the error', async (t) => {
  const alice = await availableWs(t, server.wsUrl, 'alice', 'a');
  // Converse.js's chat state notification, as it sends it (shared/actions.js sendChatState).
  alice.send(`<message xmlns='jabber:client' id='cs1' to='bob@localhost' type='chat'><composing xmlns='${NS.CHATSTATES}'/>`
    + `<no-store xmlns='${NS.HINTS}'/><no-permanent-store xmlns='${NS.HINTS}'/></message>`);
  const err = await alice.until(isError('cs1'));
  t.equal(stanzaErrorCondition(err), 'service-unavailable');
  t.equal(err.attr('from'), 'bob@localhost');
  t.ok(err.getChild('composing', NS.CHATSTATES), 'the chat state comes back with the error');
  t.equal(await server.storage.offline.count('localhost', 'bob'), 0, 'nothing stored');
});

t.test('a chat state to a full JID whose account is offline bounces the same way', async (t) => {
  const alice = await availableWs(t, server.wsUrl, 'alice', 'a2');
  alice.send(`<message xmlns='jabber:client' id='cs2' to='bob@localhost/gone' type='chat'><active xmlns='${NS.CHATSTATES}'/></message>`);
  const err = await alice.until(isError('cs2'));
  t.equal(stanzaErrorCondition(err), 'service-unavailable');
  t.ok(err.getChild('active', NS.CHATSTATES), 'the chat state comes back with the error');
});

t.test('a message with a body that is not stored bounces without its payload', async (t) => {
  const alice = await availableWs(t, server.wsUrl, 'alice', 'a3');
  alice.send(`<message xmlns='jabber:client' id='ns1' to='bob@localhost' type='chat'><body>not kept</body><no-store xmlns='${NS.HINTS}'/></message>`);
  const err = await alice.until(isError('ns1'));
  t.equal(stanzaErrorCondition(err), 'service-unavailable');
  t.same(err.getChildren().map((c) => c.local), ['error'], 'only the error');
});

/**
 * Interop over BOSH (XEP-0124/0206) and across transports: rosters,
 * subscriptions, presence, chat and offline messages with real client
 * libraries on a real port: strophe.js 5 and StanzaJS 12 over BOSH, and
 * Converse.js-style pairs where a BOSH user and a WebSocket user
 * (@xmpp/client or strophe.js) are each other's contacts. The adapters and
 * the scenario are in ../helpers/im-clients.ts and im-scenarios.ts (the same scenario runs over
 * WebSocket in roster-interop.test.ts). xmpp.js has no BOSH transport, so it
 * only appears on the WebSocket side.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { connectStanza, connectStrophe, connectXmppjs } from '../helpers/im-clients.js';
import { befriend, chatBothWays, subscribeChatAndOffline } from '../helpers/im-scenarios.js';

// A short BOSH wait (as in bosh-strophe/bosh-stanza) keeps idle long-polls from outliving the tests.
const users = Object.fromEntries(['s', 'z', 'm', 'n'].flatMap((p) => ['alice', 'bob'].map((u) => [`${p}${u}`, 'pw'])));
const server = await withUsers(t, users, { ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '10' });

t.test('strophe.js over BOSH: two users subscribe while one is offline, see each other, chat, get a roster push on a second resource and offline messages at the next login', async (t) => {
  await subscribeChatAndOffline(t, server, connectStrophe(server, 'bosh'), 's');
});

t.test('StanzaJS over BOSH: two users subscribe while one is offline, see each other, chat, get a roster push on a second resource and offline messages at the next login', async (t) => {
  await subscribeChatAndOffline(t, server, connectStanza(server, 'bosh'), 'z');
});

t.test('Converse.js-style: a strophe.js user over BOSH and an xmpp.js user over WebSocket add each other, see presence come and go, and chat both ways', async (t) => {
  // Like Converse: fetch the roster, send initial presence, add the contact with a name, then ask for a subscription.
  const a = await connectStrophe(server, 'bosh')(t, 'malice', 'converse');
  t.same(await a.rosterGet(), [], 'the BOSH user starts with an empty roster');
  a.presence();
  await a.events.until('presence', (e) => e.from === a.jid, 'the BOSH user\'s own presence reflected');
  const b = await connectXmppjs(server)(t, 'mbob', 'web');
  t.same(await b.rosterGet(), [], 'the WebSocket user starts with an empty roster');
  b.presence();
  await b.events.until('presence', (e) => e.from === b.jid, 'the WebSocket user\'s own presence reflected');

  await a.rosterSet('mbob@localhost', 'Bob');
  const added = await a.events.until('push', (e) => e.jid === 'mbob@localhost', 'the push for the added contact');
  t.same([added.name, added.subscription], ['Bob', 'none'], 'the contact is added with its name, no subscription yet');
  await befriend(t, a, b);
  t.same((await a.rosterGet()).map((i) => i.name), ['Bob'], 'the name survives the subscription handshake');

  await chatBothWays(t, a, b, 'BOSH-and-WebSocket');

  let seen = a.events.mark();
  b.presence({ show: 'away' });
  const away = await a.events.until('presence', (e) => e.from === b.jid && e.show === 'away', 'the WebSocket user\'s away presence at the BOSH user', seen);
  t.equal(away.type, 'available', 'away is an available presence with <show/>');

  seen = a.events.mark();
  await b.stop();
  await a.events.until('presence', (e) => e.type === 'unavailable' && e.from === b.jid, 'the WebSocket user leaving, at the BOSH user', seen);

  seen = a.events.mark();
  const b2 = await connectXmppjs(server)(t, 'mbob', 'web2');
  b2.presence();
  await a.events.until('presence', (e) => e.type === 'available' && e.from === b2.jid, 'the WebSocket user back, at the BOSH user', seen);
  await b2.events.until('presence', (e) => e.type === 'available' && e.from === a.jid, 'the BOSH user\'s presence at the returning WebSocket user');

  seen = b2.events.mark();
  await a.stop();
  await b2.events.until('presence', (e) => e.type === 'unavailable' && e.from === a.jid, 'the BOSH user leaving, at the WebSocket user', seen);
  await b2.stop();
});

t.test('Converse.js-style: a StanzaJS user over BOSH and a strophe.js user over WebSocket add each other, see presence, and chat both ways', async (t) => {
  const a = await connectStanza(server, 'bosh')(t, 'nalice', 'converse');
  await a.rosterGet();
  a.presence();
  await a.events.until('presence', (e) => e.from === a.jid, 'the BOSH user\'s own presence reflected');
  const b = await connectStrophe(server, 'websocket')(t, 'nbob', 'web');
  await b.rosterGet();
  b.presence();
  await b.events.until('presence', (e) => e.from === b.jid, 'the WebSocket user\'s own presence reflected');

  await befriend(t, a, b);
  await chatBothWays(t, a, b, 'StanzaJS-and-strophe.js');

  const seen = a.events.mark();
  await b.stop();
  await a.events.until('presence', (e) => e.type === 'unavailable' && e.from === b.jid, 'the WebSocket user leaving, at the BOSH user', seen);
  await a.stop();
});

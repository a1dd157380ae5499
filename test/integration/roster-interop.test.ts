/**
 * Interop: rosters, subscriptions, presence, chat and offline messages with
 * real client libraries over RFC 7395 WebSocket on a real port:
 * @xmpp/client (xmpp.js 0.14), strophe.js 5 and StanzaJS 12. The scenario
 * (see ../helpers/im-scenarios.ts) runs over one small adapter per library;
 * roster-interop-bosh.test.ts runs it over BOSH.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { connectStanza, connectStrophe, connectXmppjs } from '../helpers/im-clients.js';
import { subscribeChatAndOffline } from '../helpers/im-scenarios.js';

const users = Object.fromEntries(['x', 's', 'z'].flatMap((p) => ['alice', 'bob'].map((u) => [`${p}${u}`, 'pw'])));
const server = await withUsers(t, users, { ALLOW_INSECURE_PLAIN: 'true' });

const what = 'two users subscribe while one is offline, see each other, chat, get a roster push on a second resource and offline messages at the next login';

t.test(`xmpp.js over WebSocket: ${what}`, async (t) => {
  await subscribeChatAndOffline(t, server, connectXmppjs(server), 'x');
});

t.test(`strophe.js over WebSocket: ${what}`, async (t) => {
  await subscribeChatAndOffline(t, server, connectStrophe(server, 'websocket'), 's');
});

t.test(`StanzaJS over WebSocket: ${what}`, async (t) => {
  await subscribeChatAndOffline(t, server, connectStanza(server, 'websocket'), 'z');
});

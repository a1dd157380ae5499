/**
 * Interop: the gateway driven by a real third-party client library,
 * @xmpp/client (xmpp.js) 0.14, over RFC 7395 WebSocket.
 *
 * xmpp.js ships no TypeScript declarations, so the few parts of its API used
 * here are described by the local interfaces below and the module is loaded
 * with a dynamic import whose specifier tsc does not resolve.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import {
  NS_FRAMING, NS_SASL, NS_STREAM, becomeAvailable, createClient, login, ping, serverForgets, serverSession, within, xml,
  type XmppJsClient,
} from '../helpers/xmppjs.js';

function authMechanism(s: XmppJsClient): string | undefined {
  return s.sent.find((el) => el.is('auth', NS_SASL))?.attrs.mechanism;
}

function offeredMechanisms(s: XmppJsClient): string[] {
  const features = s.received.find((el) => el.is('features', NS_STREAM) && el.getChild('mechanisms', NS_SASL));
  return features?.getChild('mechanisms', NS_SASL)?.getChildren('mechanism').map((m) => m.text()) ?? [];
}

const server = await withUsers(t, ['alice', 'bob']);

t.test('xmpp.js logs in with SCRAM-SHA-1 when that mechanism is forced, binds the requested resource and gets a ping result', async (t) => {
  let supported: string[] = [];
  const s = await login(t, server, {
    resource: 'xmppjs-sha1',
    credentials: async (authenticate, mechanisms) => {
      supported = mechanisms;
      await authenticate({ username: 'alice', password: 'alice-pw' }, 'SCRAM-SHA-1');
    },
  });
  t.ok(supported.includes('SCRAM-SHA-1'), `xmpp.js saw SCRAM-SHA-1 among the usable mechanisms (${supported.join(', ')})`);
  t.equal(authMechanism(s), 'SCRAM-SHA-1', '<auth/> on the wire names SCRAM-SHA-1');
  t.ok(s.received.some((el) => el.is('success', NS_SASL)), 'the server answered with <success/>');
  t.equal(s.jid, 'alice@localhost/xmppjs-sha1', 'bound JID is alice@localhost/<requested resource>');
  t.equal(s.xmpp.status, 'online');

  const pong = await ping(s);
  t.equal(pong.attrs.type, 'result', 'the ping is answered with type=result');
  t.equal(pong.attrs.from, 'localhost', 'the answer comes from the server');
  t.same(s.errors, [], 'no errors were emitted');
});

t.test('xmpp.js logs in with its default mechanism choice and gets a server-assigned resource', async (t) => {
  const s = await login(t, server, { username: 'alice', password: 'alice-pw' });
  t.same(offeredMechanisms(s), ['SCRAM-SHA-256', 'SCRAM-SHA-1'], 'the server offers both SCRAM mechanisms and no PLAIN without TLS');
  // xmpp.js 0.14 implements SCRAM-SHA-1, PLAIN and ANONYMOUS but not
  // SCRAM-SHA-256 (see @xmpp/client/index.js), so SCRAM-SHA-1 is the best it
  // can pick; should a later version register SCRAM-SHA-256, it must pick that.
  const clientMechanisms = s.xmpp.saslFactory._mechs.map((m) => m.name);
  t.ok(clientMechanisms.includes('SCRAM-SHA-1'), `xmpp.js registers SCRAM-SHA-1 (${clientMechanisms.join(', ')})`);
  const expected = clientMechanisms.includes('SCRAM-SHA-256') ? 'SCRAM-SHA-256' : 'SCRAM-SHA-1';
  t.equal(authMechanism(s), expected, `<auth/> on the wire names ${expected}, the strongest mechanism both sides support`);
  t.match(s.jid, /^alice@localhost\/[^/]+$/, 'bound JID is alice@localhost/<generated resource>');
  const pong = await ping(s);
  t.equal(pong.attrs.type, 'result');
});

t.test('two xmpp.js clients exchange three chat messages each way, in order, stamped with the sender full JID', async (t) => {
  const alice = await login(t, server, { username: 'alice', password: 'alice-pw', resource: 'chat-a' });
  const bob = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'chat-b' });
  t.equal(alice.jid, 'alice@localhost/chat-a');
  t.equal(bob.jid, 'bob@localhost/chat-b');
  // RFC 6121: a bare-JID message goes to available resources only.
  await becomeAvailable(alice);
  await becomeAvailable(bob);

  const toBob = ['one', 'two & <three>', 'three ✓'];
  for (const [i, body] of toBob.entries()) {
    // The client sets no 'from': the server must stamp it.
    await alice.xmpp.send(xml('message', { to: 'bob@localhost', type: 'chat', id: `a${i}` }, xml('body', {}, body)));
  }
  for (const [i, body] of toBob.entries()) {
    const m = await bob.inbox.next(`bob's message #${i + 1} from alice`);
    t.equal(m.attrs.type, 'chat', `message #${i + 1} is a chat message`);
    t.equal(m.getChildText('body'), body, `bob gets alice's message #${i + 1} in order`);
    t.equal(m.attrs.from, alice.jid, 'from is alice\'s full JID');
    t.equal(m.attrs.id, `a${i}`, 'the id is kept');
  }

  // Reply to the address the message came from, as a chat client does.
  const replyTo = bob.inbox.items[0]!.attrs.from!;
  const toAlice = ['uno', 'dos', 'tres'];
  for (const [i, body] of toAlice.entries()) {
    await bob.xmpp.send(xml('message', { to: replyTo, type: 'chat', id: `b${i}` }, xml('body', {}, body)));
  }
  for (const [i, body] of toAlice.entries()) {
    const m = await alice.inbox.next(`alice's message #${i + 1} from bob`);
    t.equal(m.getChildText('body'), body, `alice gets bob's message #${i + 1} in order`);
    t.equal(m.attrs.from, bob.jid, 'from is bob\'s full JID');
    t.equal(m.attrs.to, alice.jid, 'to is alice\'s full JID');
  }
  t.equal(alice.inbox.items.length, 3, 'alice got exactly three messages');
  t.equal(bob.inbox.items.length, 3, 'bob got exactly three messages');
});

t.test('xmpp.js fails to log in with a wrong password with a not-authorized SASLError, without hanging', async (t) => {
  const s = createClient(t, server, { username: 'alice', password: 'wrong-pw', resource: 'bad' });
  const err = await within(s.xmpp.start().then(() => undefined, (e: unknown) => e), 'the rejection of start() with a wrong password');
  t.ok(err instanceof Error, 'start() rejects');
  t.equal((err as Error).name, 'SASLError', 'with the library\'s SASL error');
  t.equal((err as Error & { condition?: string }).condition, 'not-authorized', 'whose condition is not-authorized');
  t.equal(authMechanism(s), 'SCRAM-SHA-1', 'the attempt was a SCRAM exchange');
  t.notOk(s.received.some((el) => el.is('success', NS_SASL)), 'the server never sent <success/>');
  t.equal(serverSession(server, 'alice@localhost/bad'), undefined, 'no resource was bound');
  s.xmpp.reconnect.stop();
  await within(s.xmpp.stop(), 'stop() after the failed login');
  t.equal(s.xmpp.status, 'offline');
});

t.test('xmpp.js disconnects cleanly: its <close/> is answered with <close/> and the server drops the session', async (t) => {
  const s = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'leaving' });
  t.ok(serverSession(server, s.jid), 'the server holds the bound session');
  s.xmpp.reconnect.stop();
  const closeEl = await within(s.xmpp.stop(), 'xmpp.js stop()');
  t.ok(closeEl?.is('close', NS_FRAMING), `the server answered with <close xmlns='${NS_FRAMING}'/>`);
  t.equal(s.xmpp.status, 'offline', 'the client is offline');
  await serverForgets(server, s.jid);
  t.notOk(serverSession(server, s.jid), 'the server no longer holds bob@localhost/leaving');
  t.same(s.errors, [], 'no errors were emitted');
});

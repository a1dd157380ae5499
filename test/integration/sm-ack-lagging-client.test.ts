/**
 * SM_ACK_TIMEOUT (ejabberd's ack_timeout) is for a client that stops answering <r/>, not for one that answers
 * with an h short of what the server sent. xmpp.js 0.14 is such a client: on Node (`ws` delivers the frames of one
 * read in one task) it counts its own presence, reflected right after <enabled/>, before its enabled() handler
 * (stream-feature.js, after `await promiseEnable`) sets the count back to 0 (index.js `enabled()`); in a browser too,
 * it never counts the replies to its own IQ requests (see helpers/xmppjs.ts becomeAvailable), so after a roster get
 * every <a/> it sends is short. Such a client is alive
 * and answers every <r/>; ejabberd (resend_rack) and Prosody (handle_a) end the wait on any <a/>. The gateway
 * kept waiting for h to cover the last stanza and closed it with connection-timeout one SM_ACK_TIMEOUT after the
 * last stanza it received: every idle xmpp.js session, a minute after its last message; xmpp.js then logged in
 * afresh and got that message a second time from the hand-over.
 */
import t from 'tap';
import { NS } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { SmPeer, chat, routed } from '../helpers/sm-peer.js';
import { login, nextReceived, serverSession, sleep, xml } from '../helpers/xmppjs.js';
import { eventually } from '../helpers/eventually.js';

/** SM_ACK_TIMEOUT in seconds, and how long each test stays idle after the last <a/> to see the stream outlive it. */
const ACK_TIMEOUT = 1;
const IDLE_MS = 2500;

const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true', SM_ACK_TIMEOUT: String(ACK_TIMEOUT) });

t.test('an idle xmpp.js session whose acks lag one stanza behind stays connected past SM_ACK_TIMEOUT', async (t) => {
  const bob = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'desk' });
  const acks: number[] = [];
  bob.xmpp.on('send', (el) => { if (el.is('a', NS.SM)) acks.push(Number(el.attrs.h)); });
  const errors: string[] = [];
  bob.xmpp.on('element', (el) => { if (el.is('error', NS.STREAM)) errors.push(String(el)); });
  await bob.xmpp.send(xml('presence'));
  const session = serverSession(server, 'bob@localhost/desk');
  t.ok(session, 'the server holds the session');

  const alice = await login(t, server, { username: 'alice', password: 'alice-pw', resource: 'web' });
  const before = acks.length;
  const got = nextReceived(bob, (el) => el.is('message') && el.getChildText('body') === 'hello', 'the message at xmpp.js');
  await alice.xmpp.send(xml('message', { to: 'bob@localhost/desk', type: 'chat' }, xml('body', {}, 'hello')));
  await got;
  await eventually(() => acks.length > before, { message: 'xmpp.js to answer the <r/> that follows the message' });
  // Two stanzas went to bob after <enabled/>: his own presence, reflected, and the message.
  t.ok(acks.at(-1)! < 2, `its <a/> says h=${acks.at(-1)}, short of the 2 stanzas sent (the lag this test is about)`);
  let disconnects = 0;
  bob.xmpp.on('status', (status) => { if (status === 'disconnect') disconnects++; });

  await sleep(IDLE_MS);
  t.same(errors, [], 'no stream error');
  t.equal(disconnects, 0, 'xmpp.js was not disconnected');
  t.equal(serverSession(server, 'bob@localhost/desk'), session, 'the same server session');
  t.ok(session && !session.destroyed && session.conn, 'still connected on its first transport');
});

t.test('a client that answers every <r/> with an h that never covers the last stanza is not closed; one that stops answering is', async (t) => {
  const bob = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'sender');
  for (const [resource, answers] of [['lagging', true], ['silent', false]] as const) {
    const alice = await SmPeer.login(server.wsUrl, 'alice', 'alice-pw', resource, { autoAck: false });
    t.teardown(() => alice.c.close());
    bob.send(chat(`alice@localhost/${resource}`, `${resource}-1`));
    await routed(bob, `${resource}-p`);
    await alice.c.until((el) => el.is('r', NS.SM));
    if (answers) alice.ack(0); // alive: it answers, with an h short of the stanza sent
    await sleep(IDLE_MS);
    const errors = alice.c.frames.filter((el) => el.local === 'error' && el.ns === NS.STREAM).map(String);
    if (answers) {
      t.same(errors, [], `${resource}: no stream error`);
      t.ok(server.app.sessions.get('localhost', 'alice', resource)?.conn, `${resource}: still connected`);
    } else {
      t.match(errors.join(''), /connection-timeout/, `${resource}: closed with connection-timeout`);
    }
  }
});

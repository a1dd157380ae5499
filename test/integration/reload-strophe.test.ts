/**
 * The page-reload promise with strophe.js 5, whose XEP-0198 support is
 * native (since 4.1): a page (test/helpers/strophe-page.ts) keeps its SM
 * state in sessionStorage, the only thing that survives from one page load
 * to the next.
 */
import t from 'tap';
import { $msg, $pres } from 'strophe.js';
import { withUsers } from '../helpers/server.js';
import { ids, page } from '../helpers/strophe-page.js';
import { NS_BIND, NS_SM, WAIT_MS, login, ping, serverHibernates, serverSession, sleep, xml } from '../helpers/xmppjs.js';
import { eventually } from '../helpers/eventually.js';

const SETTLE_MS = 500;

const server = await withUsers(t, ['alice', 'bob']);

t.test('a reloaded strophe.js page resumes from its sessionStorage: no bind, the same server session, and exactly the 3 messages it missed', async (t) => {
  const me = 'alice@localhost/strophe-tab';
  const sessionStorage = new Map<string, string>();
  const page1 = page(t, server, sessionStorage);
  await page1.connect(me, 'alice-pw');
  await eventually(() => page1.conn.isStreamManagementEnabled(), { message: 'strophe.js to get <enabled/>' });
  t.equal(page1.conn.sm?.state.resumeSupported, true, 'the server granted a resumable session');
  page1.conn.send($pres());
  await eventually(() => page1.presences.some((p) => p.getAttribute('from') === me), { message: 'the server to reflect page 1\'s presence' });

  const bob = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'sender-s' });
  await bob.xmpp.send(xml('message', { to: me, type: 'chat', id: 'seen' }, xml('body', {}, 'read before the reload')));
  await eventually(() => page1.messages.length === 1, { message: 'the message before the reload' });
  const h = page1.conn.sm!.state.hIn;
  await eventually(() => page1.sent(new RegExp(`^<a [^>]*h="${h}"`)).length > 0, { message: `page 1 to answer the server's <r/> with h=${h}` });
  t.pass(`page 1 acknowledged h=${h}, which includes the message`);
  const session = serverSession(server, me);
  t.ok(session, 'the server holds the session');

  page1.unload();
  await serverHibernates(server, me);
  const missed: string[] = [];
  for (let i = 1; i <= 3; i++) {
    missed.push(`missed-${i}`);
    await bob.xmpp.send(xml('message', { to: me, type: 'chat', id: `missed-${i}` }, xml('body', {}, `missed message ${i}`)));
  }
  await ping(bob);
  t.ok([...sessionStorage.keys()].some((k) => k.startsWith('strophe-sm:')), 'page 1 left its SM state in sessionStorage');

  // The reloaded page: a new connection object; only sessionStorage carries over.
  const page2 = page(t, server, sessionStorage);
  await page2.connect('alice@localhost', 'alice-pw');
  t.ok(page2.conn.hasResumed(), 'strophe.js reports the session as resumed');
  t.equal(page2.conn.jid, me, 'with the full JID page 1 had bound');
  t.equal(page2.sent(/^<resume /).length, 1, 'page 2 sent one <resume/>');
  t.ok(page2.rawIn.some((f) => f.startsWith('<resumed ') && f.includes(NS_SM)), 'the server answered <resumed/>');
  t.same(page2.sent(new RegExp(NS_BIND)), [], 'page 2 never sent a bind request');

  await eventually(() => page2.messages.length >= 3, { timeout: WAIT_MS, message: 'the 3 missed messages' }).catch((err: unknown) => {
    throw new Error(`${String(err)}; got ${ids(page2.messages).join(', ') || 'nothing'}; frames in: ${page2.rawIn.join(' ')}`, { cause: err });
  });
  await sleep(SETTLE_MS);
  t.same(ids(page2.messages), missed, 'page 2 got exactly the 3 messages it missed, in order, and not the one acknowledged before');
  t.equal(serverSession(server, me), session, 'the server session object is the one page 1 bound');

  page2.conn.send($msg({ to: bob.jid, type: 'chat', id: 'after-reload' }).c('body').t('reloaded'));
  const reply = await bob.inbox.next('page 2\'s message');
  t.equal(reply.attrs.from, me, 'bob sees page 2 as the same full JID');
});

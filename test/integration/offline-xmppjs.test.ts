/**
 * Offline messages with a real client library, @xmpp/client (xmpp.js), over
 * WebSocket: a tab with stream management is closed without a goodbye, a
 * message arrives for it, the resume timeout passes, and the next login
 * gets the message once, stamped with a XEP-0203 delay.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import {
  NS_DELAY, becomeAvailable, cutOff, login, serverForgets, serverHibernates, sleep, smEnabled, within, xml,
} from '../helpers/xmppjs.js';

const server = await withUsers(t, ['alice', 'bob'], { SM_RESUME_TIMEOUT: '1' });

t.test('a message for a tab that was closed and never resumed reaches the next login once, with a delay stamp', async (t) => {
  const bob = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'tab' });
  await smEnabled(bob);
  await becomeAvailable(bob);
  bob.xmpp.reconnect.stop();
  cutOff(bob);
  await serverHibernates(server, bob.jid);

  const alice = await login(t, server, { username: 'alice', password: 'alice-pw', resource: 'desk' });
  await becomeAvailable(alice);
  const sentAt = Date.now();
  await alice.xmpp.send(xml('message', { to: 'bob@localhost', type: 'chat', id: 'm1' }, xml('body', {}, 'are you there?')));
  await serverForgets(server, bob.jid, 5000);

  const again = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'tab2' });
  await becomeAvailable(again);
  const message = await again.inbox.next('the offline message');
  t.equal(message.getChildText('body'), 'are you there?');
  t.equal(message.attrs.from, 'alice@localhost/desk');
  const delays = message.getChildren('delay', NS_DELAY);
  t.equal(delays.length, 1, 'one delay notation');
  t.equal(delays[0]!.attrs.from, 'localhost');
  const stamp = Date.parse(delays[0]!.attrs.stamp ?? '');
  t.ok(stamp >= sentAt - 1000 && stamp <= Date.now(), 'stamped when it first arrived');
  await sleep(200);
  t.equal(again.inbox.items.length, 1, 'exactly once');
  t.same(alice.inbox.items.filter((m) => m.attrs.type === 'error'), [], 'the sender got no error');
  await within(again.xmpp.stop(), 'stop');
  await within(alice.xmpp.stop(), 'stop');
});

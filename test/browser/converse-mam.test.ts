/**
 * Converse.js 14 in real Chromium and the message archive (XEP-0313): a
 * conversation held earlier, on another client, shows in a new page after
 * a fresh login (no resumption, an empty browser), fetched from MAM, and
 * nothing on the wire says service-unavailable for MAM.
 */
import t from 'tap';
import { launchBrowser, recordFrames, screenshot } from '../helpers/browser.js';
import { conversePage, converseAliceAndBob, loginWithForm, openChat, shownMessages, waitForMessage } from '../helpers/converse.js';
import { login, nextReceived, xml } from '../helpers/xmppjs.js';
import { eventually } from '../helpers/eventually.js';

const ALICE = 'alice@localhost';
const BOB = 'bob@localhost';

const { server, site } = await converseAliceAndBob(t);

t.test('a conversation held on another client shows in a new Converse page after a fresh login', async (t) => {
  // Earlier, on Node: bob and alice talk, and alice reads everything (nothing is left for offline delivery).
  const alice = await login(t, server, { username: 'alice', password: 'alice-pw', resource: 'phone' });
  const bob = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'desk' });
  await alice.xmpp.send(xml('presence'));
  await bob.xmpp.send(xml('presence'));
  const lines = ['first from bob', 'second from bob', 'third from bob'];
  for (const body of lines) {
    const got = nextReceived(alice, (el) => el.is('message') && el.getChildText('body') === body, `alice to get "${body}"`);
    await bob.xmpp.send(xml('message', { to: ALICE, type: 'chat' }, xml('body', {}, body)));
    await got;
  }
  await alice.xmpp.send(xml('message', { to: BOB, type: 'chat' }, xml('body', {}, 'a reply from alice')));
  await nextReceived(bob, (el) => el.is('message') && el.getChildText('body') === 'a reply from alice', 'bob to get the reply');
  await alice.xmpp.stop();
  await eventually(() => ([...server.app.sessions.resources('localhost', 'alice')].length === 0 ? true : undefined), { message: "alice's Node session to end" });
  t.equal(await server.storage.offline.count('localhost', 'alice'), 0, 'nothing waits offline: only the archive has it');

  // Now a new browser, a fresh login (no resumption), the chat with bob opened.
  const browser = await launchBrowser(t);
  const page = await conversePage(t, browser);
  const wire = recordFrames(page);
  await page.goto(site.url('websocket'));
  await loginWithForm(page, ALICE, 'alice-pw');
  t.notOk(wire.some((w) => w.dir === 'sent' && w.text.includes('<resume')), 'a fresh login, not a resumption');
  await openChat(page, BOB);
  try {
    for (const body of [...lines, 'a reply from alice']) await waitForMessage(page, BOB, body, 15_000);
  } catch (err) {
    await screenshot(page, 'converse-mam-history');
    throw err;
  }
  t.same((await shownMessages(page, BOB)).filter((m) => lines.includes(m) || m === 'a reply from alice'), [...lines, 'a reply from alice'], 'in order');
  const mamQueries = wire.filter((w) => w.dir === 'sent' && w.text.includes('urn:xmpp:mam:2'));
  t.ok(mamQueries.length > 0, 'Converse queried the archive');
  const refused = wire.filter((w) => w.dir === 'received' && w.text.includes('service-unavailable'));
  t.same(refused.filter((w) => w.text.includes('urn:xmpp:mam')), [], 'no service-unavailable for MAM');
  t.ok(wire.some((w) => w.dir === 'received' && w.text.includes('<fin')), 'the archive answered with <fin/>');
});

/**
 * Converse.js 14 in real Chromium, typing to a contact who is offline: its
 * chat state notifications (<no-store/>, chat states only) are not kept
 * offline (XEP-0160 §3) and bounce with service-unavailable. The bounce
 * carries the notification back (as ejabberd's does), so Converse knows a
 * notification failed and shows nothing (its issue 1317); before, it showed
 * an error in the chat as soon as its user typed. The message itself is
 * stored offline and shown without an error.
 */
import t from 'tap';
import { launchBrowser, recordFrames, screenshot } from '../helpers/browser.js';
import { conversePage, converseAliceAndBob, loginWithForm, openChat, waitForMessage } from '../helpers/converse.js';
import { eventually } from '../helpers/eventually.js';
import { sleep } from '../helpers/xmppjs.js';

const BOB = 'bob@localhost';

const { server, site } = await converseAliceAndBob(t);
const browser = await launchBrowser(t);

t.test('typing to an offline contact shows no error; the message is stored and shown without one', async (t) => {
  const page = await conversePage(t, browser);
  const frames = recordFrames(page);
  await page.goto(site.url('websocket'));
  await loginWithForm(page, 'alice@localhost', 'alice-pw');
  await openChat(page, BOB);
  await page.locator(`converse-chat[jid="${BOB}"] .chat-textarea`).pressSequentially('hello', { delay: 20 });
  const bounced = (): boolean => frames.some((f) => f.dir === 'received' && /type=["']error["']/.test(f.text) && f.text.includes('chatstates'));
  const sentState = (): boolean => frames.some((f) => f.dir === 'sent' && f.text.includes('http://jabber.org/protocol/chatstates'));
  await eventually(sentState, { timeout: 10_000, message: 'Converse sent a chat state notification' });
  await eventually(() => frames.some((f) => f.dir === 'received' && /type=["']error["']/.test(f.text)), { timeout: 10_000, message: 'its bounce' });
  t.ok(bounced(), 'the bounce carries the chat state back');
  await page.locator(`converse-chat[jid="${BOB}"] .chat-textarea`).press('Enter');
  await waitForMessage(page, BOB, 'hello');
  await eventually(async () => await server.storage.offline.count('localhost', 'bob') === 1, { timeout: 10_000, message: 'the message stored offline' });
  // Converse renders a bounce it takes for a failed message at once; give it a moment all the same.
  await sleep(1000);
  const errors = await page.locator(`converse-chat[jid="${BOB}"] .chat-error, converse-chat[jid="${BOB}"] .chat-msg__error`).allInnerTexts();
  t.same(errors, [], 'no error shown in the chat');
  await screenshot(page, 'converse-offline-chat-state');
});

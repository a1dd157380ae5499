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
import type { Browser } from 'playwright-core';
import { startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser, recordFrames, screenshot } from '../helpers/browser.js';
import { conversePage, loginWithForm, openChat, serveConverse, waitForMessage, type ConverseSite } from '../helpers/converse.js';
import { eventually } from '../helpers/eventually.js';
import { sleep } from '../helpers/xmppjs.js';

const BOB = 'bob@localhost';

let server: TestServer;
let site: ConverseSite;
let browser: Browser;
t.before(async () => {
  site = await serveConverse(t, () => server);
  server = await startServer({ ALLOWED_ORIGINS: site.origin });
  for (const user of ['alice', 'bob']) await server.addUser(user, `${user}-pw`);
  const contact = (jid: string) => ({ jid, name: undefined, subscription: 'both' as const, ask: false, approved: false, groups: [] });
  await server.storage.rosters.putItem('localhost', 'alice', contact(BOB), 1);
  await server.storage.rosters.putItem('localhost', 'bob', contact('alice@localhost'), 1);
  browser = await launchBrowser(t);
});
t.teardown(() => server.close());

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

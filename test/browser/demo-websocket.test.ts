/**
 * The demo client (public/) in real Chromium over WebSocket: two users chat,
 * a reload resumes the XEP-0198 session without a new bind, a reload slower
 * than SM_RESUME_TIMEOUT logs in afresh with the stored SCRAM keys and gets
 * the messages from offline storage, and the transport falls back to BOSH
 * or is forced to one.
 */
import t from 'tap';
import type { Browser, WebSocketRoute } from 'playwright-core';
import { startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser, screenshot } from '../helpers/browser.js';
import {
  assertShownOnce, befriend, contactShows, leaveAndReturn, login, openDemo, reloadWhile, say, sessionStorageText,
  shownMessages, twoFriends, waitMode,
} from '../helpers/demo-page.js';
import { login as xmppjsLogin } from '../helpers/xmppjs.js';

const BIND = 'urn:ietf:params:xml:ns:xmpp-bind';
let server: TestServer;
let quick: TestServer;
let browser: Browser;
t.before(async () => {
  server = await startServer();
  quick = await startServer({ SM_RESUME_TIMEOUT: '2' });
  browser = await launchBrowser(t);
});
t.teardown(async () => { await server.close(); await quick.close(); });

t.test('two users in two browser contexts chat both ways', async (t) => {
  const alice = await openDemo(t, browser, server, 'alice');
  const bob = await openDemo(t, browser, server, 'bob');
  await login(alice);
  await login(bob);
  t.equal(await alice.page.textContent('#transport'), 'WebSocket', 'WebSocket by default');
  await befriend(alice, bob);
  await say(alice, bob, 'Hello Bob, this is Alice');
  await bob.page.locator('#messages .msg.in .body', { hasText: 'Hello Bob' }).waitFor();
  await say(bob, alice, 'Hi Alice! Bob here.');
  await alice.page.locator('#messages .msg.in .body', { hasText: 'Hi Alice!' }).waitFor();
  const both = ['Hello Bob, this is Alice', 'Hi Alice! Bob here.'];
  t.same(await shownMessages(alice.page), both, 'alice sees both messages in order');
  t.same(await shownMessages(bob.page), both, 'bob sees both messages in order');
  t.match(await alice.page.textContent('#counters'), /h in \d+ \/ h out \d+ \/ unacked \d+/, 'the SM counters are shown');
  await alice.page.locator('#counters', { hasText: 'unacked 0' }).waitFor();
  await screenshot(alice.page, 'demo-chat-alice');
  await screenshot(bob.page, 'demo-chat-bob');
});

t.test('a reload resumes the WebSocket session: no new bind, each message sent meanwhile shown once', async (t) => {
  const { alice, bob } = await twoFriends(t, browser, server, ['carol', 'dave']);
  await say(alice, bob, 'before the reload');
  await say(bob, alice, 'answer before the reload');
  await alice.page.locator('#messages .msg.in .body', { hasText: 'answer before the reload' }).waitFor();
  const mark = alice.frames.length;
  const texts = ['while reloading 1', 'while reloading 2', 'while reloading 3'];
  await reloadWhile(alice, async () => { for (const text of texts) await say(bob, alice, text); });
  await waitMode(alice.page, 'resumed');
  await assertShownOnce(t, alice, bob, [...texts, 'answer before the reload', 'before the reload']);
  t.equal(await alice.page.textContent('#transport'), 'WebSocket', 'still on WebSocket');
  const after = alice.frames.slice(mark);
  t.ok(after.some((f) => f.dir === 'sent' && /<resume\b/.test(f.text)), 'the page sent <resume/>');
  t.ok(after.some((f) => f.dir === 'received' && /<resumed\b/.test(f.text)), 'the server answered <resumed/>');
  t.notOk(after.some((f) => f.dir === 'sent' && f.text.includes(BIND)), 'no new bind after the reload');
  const resumedAt = after.findIndex((f) => f.dir === 'received' && /<resumed\b/.test(f.text));
  for (const text of texts) {
    t.ok(after.slice(resumedAt).some((f) => f.dir === 'received' && f.text.includes(text)), `"${text}" was resent after <resumed/>`);
  }
  await screenshot(alice.page, 'demo-websocket-resumed');
});

t.test('a reload slower than SM_RESUME_TIMEOUT logs in afresh with the stored SCRAM keys and gets the messages from offline storage', async (t) => {
  const { alice, bob } = await twoFriends(t, browser, quick, ['erin', 'frank']);
  const stored = await sessionStorageText(alice.page);
  t.notOk(stored.includes(alice.password), 'sessionStorage holds no password');
  t.match(stored, /clientKey/, 'sessionStorage holds the SCRAM ClientKey');
  const mark = alice.frames.length;
  const texts = ['while away 1', 'while away 2', 'while away 3'];
  // Ended when bob sees alice go offline: the hibernated session timed out.
  await leaveAndReturn(alice, bob, quick, texts, () => contactShows(bob.page, alice.jid, 'offline'), 'new session');
  await assertShownOnce(t, alice, bob, texts);
  t.equal(await alice.page.locator('#messages .msg.in', { hasText: 'while away' }).locator('.tag').count(), 3,
    'the three came from offline storage (delay-stamped)');
  const after = alice.frames.slice(mark);
  t.ok(after.some((f) => f.dir === 'received' && /<failed\b/.test(f.text)), 'the resume failed');
  t.ok(after.some((f) => f.dir === 'received' && /<success\b/.test(f.text)), 'SASL succeeded with the stored keys');
  t.ok(after.some((f) => f.dir === 'sent' && f.text.includes(BIND)), 'a new bind');
  t.notOk((await sessionStorageText(alice.page)).includes(alice.password), 'still no password in sessionStorage');
  await screenshot(alice.page, 'demo-websocket-timeout');
});

t.test('without a working WebSocket the page falls back to BOSH; forcing WebSocket then fails visibly', async (t) => {
  const bob = await openDemo(t, browser, server, 'heidi');
  await login(bob);
  // The WebSocket endpoint accepts the upgrade and closes at once, as a proxy that does not pass WebSockets might.
  const alice = await openDemo(t, browser, server, 'grace', (page) => page.routeWebSocket(/xmpp-websocket/, (ws) => ws.close()));
  await login(alice);
  t.equal(await alice.page.textContent('#transport'), 'BOSH', 'the status line shows BOSH');
  t.notOk(alice.frames.some((f) => f.dir === 'received'), 'nothing came over the WebSocket');
  t.ok(alice.bosh.some((b) => b.dir === 'sent' && b.text.includes('SCRAM-SHA-')), 'SASL went over BOSH');
  await befriend(alice, bob);
  await say(alice, bob, 'sent over the BOSH fallback');
  await bob.page.locator('#messages .msg.in .body', { hasText: 'sent over the BOSH fallback' }).waitFor();
  await screenshot(alice.page, 'demo-fallback-bosh');
  await alice.page.click('#logout');
  const posts = alice.bosh.length;
  await alice.page.fill('#jid', alice.jid);
  await alice.page.fill('#password', alice.password);
  await alice.page.selectOption('#preference', 'websocket');
  await alice.page.click('#login button[type=submit]');
  await alice.page.locator('#error', { hasText: 'WebSocket' }).waitFor();
  t.equal(alice.bosh.slice(posts).filter((b) => b.dir === 'sent' && !b.text.includes("type=\"terminate\"")).length, 0,
    'forced WebSocket does not fall back to BOSH');
});

t.test('BOSH can be forced at login, and the switch moves the session to WebSocket with a resume', async (t) => {
  const { alice, bob } = await twoFriends(t, browser, server, ['ivan', 'judy'], 'bosh');
  t.equal(await alice.page.textContent('#transport'), 'BOSH', 'the status line shows BOSH');
  t.equal(alice.frames.length, 0, 'no WebSocket was opened');
  await say(alice, bob, 'over BOSH');
  const mark = alice.frames.length;
  await alice.page.click('#switch');
  await waitMode(alice.page, 'resumed');
  t.equal(await alice.page.textContent('#transport'), 'WebSocket', 'now on WebSocket');
  const after = alice.frames.slice(mark);
  t.ok(after.some((f) => f.dir === 'received' && /<resumed\b/.test(f.text)), 'resumed over WebSocket');
  t.notOk(after.some((f) => f.dir === 'sent' && f.text.includes(BIND)), 'no new bind');
  await say(bob, alice, 'after the switch');
  await alice.page.locator('#messages .msg.in .body', { hasText: 'after the switch' }).waitFor();
  t.same(await shownMessages(alice.page), ['over BOSH', 'after the switch'], 'the chat goes on, nothing lost or doubled');
  await screenshot(alice.page, 'demo-forced-switch');
  const posts = alice.bosh.length;
  // The resume is held back a little: the page must not say 'resumed' (left from the first switch) before it is.
  await alice.page.route('**/http-bind', async (route) => {
    if (route.request().postData()?.includes('<resume')) await new Promise((resolve) => setTimeout(resolve, 500));
    await route.continue();
  });
  await alice.page.click('#switch');
  await alice.page.locator('#transport', { hasText: 'BOSH' }).waitFor();
  await waitMode(alice.page, 'resumed');
  await alice.page.unroute('**/http-bind');
  t.ok(alice.bosh.slice(posts).some((b) => b.dir === 'sent' && b.text.includes('<resume')), 'and back to BOSH with a resume');
  await say(bob, alice, 'after switching back');
  await alice.page.locator('#messages .msg.in .body', { hasText: 'after switching back' }).waitFor();
  t.same(await shownMessages(alice.page), ['over BOSH', 'after the switch', 'after switching back'], 'still each message once');
});

t.test('when the connection drops, Reconnect resumes the session', async (t) => {
  let pageSide: WebSocketRoute | null = null;
  const alice = await openDemo(t, browser, server, 'mallory', (page) => page.routeWebSocket(/xmpp-websocket/, (ws) => {
    ws.connectToServer();
    pageSide = ws;
  }));
  const bob = await openDemo(t, browser, server, 'niaj');
  await login(alice);
  await login(bob);
  await befriend(alice, bob);
  await (pageSide as WebSocketRoute | null)?.close({ code: 1006, reason: 'network gone' });
  await alice.page.locator('#mode', { hasText: 'disconnected' }).waitFor();
  await say(bob, alice, 'while disconnected');
  await alice.page.click('#reconnect');
  await waitMode(alice.page, 'resumed');
  await assertShownOnce(t, alice, bob, ['while disconnected']);
  t.ok(await alice.page.locator('#reconnect').isHidden(), 'the Reconnect button is gone again');
  await screenshot(alice.page, 'demo-reconnect');
});

t.test('a wrong password is refused with not-authorized, and the page stores no keys', async (t) => {
  const alice = await openDemo(t, browser, server, 'oscar');
  await alice.page.fill('#jid', alice.jid);
  await alice.page.fill('#password', 'not the password');
  await alice.page.click('#login button[type=submit]');
  await alice.page.locator('#error', { hasText: 'not-authorized' }).waitFor();
  t.ok(await alice.page.locator('#login').isVisible(), 'the login form is still shown');
  t.notMatch(await sessionStorageText(alice.page), /clientKey/, 'no SCRAM keys were kept');
  await screenshot(alice.page, 'demo-wrong-password');
});

/**
 * Marks in the page when its transport has really ended, once the page's own handlers have run: a WebSocket's
 * close event, or a BOSH response with type='terminate' (the demo reads each response with Response.text()).
 */
const MARK_TRANSPORT_END = `(() => {
  window.__transportEnded = false;
  const mark = () => setTimeout(() => { window.__transportEnded = true; }, 0);
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); this.addEventListener('close', mark); }
  };
  const fetch = window.fetch.bind(window);
  window.fetch = async (...args) => {
    const res = await fetch(...args);
    const text = res.text.bind(res);
    res.text = () => text().then((body) => { if (/type=["']terminate["']/.test(body)) mark(); return body; });
    return res;
  };
})();`;

t.test('logging out shows the login form with no error, over WebSocket and over BOSH, once the server has closed the stream', async (t) => {
  for (const preference of ['websocket', 'bosh'] as const) {
    const alice = await openDemo(t, browser, server, `logout-${preference}`, async (page) => { await page.addInitScript(MARK_TRANSPORT_END); });
    await login(alice, preference);
    t.equal(await alice.page.textContent('#transport'), preference === 'bosh' ? 'BOSH' : 'WebSocket', `logged in over ${preference}`);
    await alice.page.click('#logout');
    await alice.page.waitForFunction('window.__transportEnded === true', undefined, { timeout: 20_000 });
    t.ok(await alice.page.locator('#login').isVisible(), `${preference}: the login form is shown`);
    t.equal(await alice.page.textContent('#error'), '', `${preference}: a logout the user asked for is not reported as an error`);
  }
});

t.test('when the server ends the stream with an error (its resource bound again elsewhere), the page shows that condition, over WebSocket and over BOSH', async (t) => {
  for (const preference of ['websocket', 'bosh'] as const) {
    const alice = await openDemo(t, browser, server, `conflict-${preference}`, async (page) => { await page.addInitScript(MARK_TRANSPORT_END); });
    await login(alice, preference);
    const bound = await alice.page.textContent('#me');
    const resource = bound?.split('/')[1];
    t.ok(resource, `${preference}: the page shows its bound JID`);
    // RFC 6120 §7.7.2.2: the same full JID bound on another connection; the server ends the page's stream with <conflict/>.
    await xmppjsLogin(t, server, { username: alice.jid.split('@')[0], password: alice.password, resource });
    await alice.page.waitForFunction('window.__transportEnded === true', undefined, { timeout: 20_000 });
    t.equal(await alice.page.textContent('#error'), 'Disconnected: conflict', `${preference}: the page says why the server ended the session`);
  }
});

/**
 * The demo client (public/) in a duplicated tab. A browser's "Duplicate
 * tab" copies sessionStorage, and with it the stored XEP-0198 state (smid,
 * h, the BOSH sid and rids, the credentials): the copy must start a session
 * of its own, with its own resource, and leave the original tab's session
 * alone. Playwright cannot press "Duplicate tab": a second page of the same
 * context gets the first page's sessionStorage copied in before the demo's
 * scripts run, which is what duplication does.
 */
import t from 'tap';
import type { Browser, Page } from 'playwright-core';
import { startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser, recordBosh, recordFrames, screenshot } from '../helpers/browser.js';
import { say, twoFriends, waitMode, type DemoUser } from '../helpers/demo-page.js';

let server: TestServer;
let fast: TestServer;
let browser: Browser;
t.before(async () => {
  server = await startServer();
  fast = await startServer({ SASL2_ENABLED: 'true', ALLOW_INSECURE_PLAIN: 'true' });
  browser = await launchBrowser(t);
});
t.teardown(async () => { await server.close(); await fast.close(); });

/** The session record xmpp-lite.js keeps in sessionStorage. */
interface Stored { jid?: string; smid?: string; bosh?: { sid?: string } | null; fast?: { token?: string } | null }

async function stored(page: Page): Promise<Stored> {
  return (JSON.parse(String(await page.evaluate("sessionStorage.getItem('xmpp-lite.session')"))) ?? {}) as Stored;
}

/** A new tab in `user`'s browser context, opened on the demo with a copy of `user`'s sessionStorage. */
async function duplicate(user: DemoUser, on: TestServer): Promise<DemoUser> {
  const entries = await user.page.evaluate('Object.entries(sessionStorage)');
  const page = await user.page.context().newPage();
  const frames = recordFrames(page);
  const bosh = recordBosh(page);
  // Only into the empty storage of the new tab: the copy's own reloads keep what the copy stored.
  await page.addInitScript({
    content: `if (sessionStorage.length === 0) for (const [k, v] of ${JSON.stringify(entries)}) sessionStorage.setItem(k, v);`,
  });
  await page.goto(`${on.httpUrl}/`);
  return { ...user, page, frames, bosh };
}

/** Once the page has settled after loading: 'login form', or the session mode it shows ('new session', 'resumed'). */
async function settled(page: Page): Promise<string> {
  await page.waitForFunction(`!document.getElementById('login').hidden
    || /new session|resumed/.test(document.getElementById('mode').textContent)`, undefined, { timeout: 20_000 });
  return (await page.locator('#login').isVisible()) ? 'login form' : String(await page.textContent('#mode'));
}

/** Whether the page ever sent `secret` (an smid, a BOSH sid) over WebSocket or BOSH. */
const sent = (user: DemoUser, secret: string): boolean =>
  [...user.frames, ...user.bosh].some((f) => f.dir === 'sent' && f.text.includes(secret));

for (const preference of ['websocket', 'bosh'] as const) {
  t.test(`a duplicated tab logs in afresh with its own resource and the original tab keeps its session (${preference})`, async (t) => {
    const { alice, bob } = await twoFriends(t, browser, server, [`dup-${preference}-alice`, `dup-${preference}-bob`], preference);
    const original = await stored(alice.page);
    const aliceJid = await alice.page.textContent('#me');
    const copy = await duplicate(alice, server);
    t.equal(await settled(copy.page), 'new session', `${preference}: the copy started a new session`);
    const copyJid = await copy.page.textContent('#me');
    t.not(copyJid, aliceJid, `${preference}: with its own resource (${copyJid})`);
    t.equal(copyJid?.split('/')[0], alice.jid, `${preference}: of the same account`);
    const own = await stored(copy.page);
    t.ok(own.smid && own.smid !== original.smid, `${preference}: and its own smid`);
    t.notOk(sent(copy, original.smid!), `${preference}: the copy never tried to resume the original's session`);
    if (original.bosh?.sid) t.notOk(sent(copy, original.bosh.sid), `${preference}: nor to continue its BOSH session`);

    // The original tab's session goes on: it sends, it receives, nobody was disconnected.
    await say(alice, bob, `from the original tab over ${preference}`);
    await bob.page.locator('#messages .msg.in .body', { hasText: `from the original tab over ${preference}` }).waitFor();
    await say(bob, alice, `to alice over ${preference}`);
    await alice.page.locator('#messages .msg.in .body', { hasText: `to alice over ${preference}` }).waitFor();
    t.equal(await alice.page.textContent('#me'), aliceJid, `${preference}: the original tab keeps its full JID`);
    t.equal(await alice.page.textContent('#mode'), 'new session', `${preference}: and its session, never taken over`);
    t.equal(await alice.page.textContent('#error'), '', `${preference}: the original tab shows no error`);

    // Each tab's reload resumes its own session, and the other one is left alone.
    await alice.page.reload();
    t.equal(await settled(alice.page), 'resumed', `${preference}: the original tab's reload resumes its session`);
    t.equal(await alice.page.textContent('#me'), aliceJid, `${preference}: with its full JID`);
    await copy.page.reload();
    t.equal(await settled(copy.page), 'resumed', `${preference}: the copy's reload resumes the copy's session`);
    t.equal(await copy.page.textContent('#me'), copyJid, `${preference}: with the copy's full JID`);
    await say(bob, alice, `after both reloads over ${preference}`);
    await alice.page.locator('#messages .msg.in .body', { hasText: `after both reloads over ${preference}` }).waitFor();
    await copy.page.locator('#messages .msg.in .body', { hasText: `after both reloads over ${preference}` }).waitFor();
    t.equal(await alice.page.textContent('#error'), '', `${preference}: still no error in the original tab`);
    t.equal(await copy.page.textContent('#error'), '', `${preference}: nor in the copy`);
    await screenshot(copy.page, `demo-duplicate-${preference}`);
  });
}

t.test('a duplicated tab that has only the original tab\'s FAST token asks for the password, and then neither tab loses its token', async (t) => {
  const { alice, bob } = await twoFriends(t, browser, fast, ['fast-alice', 'fast-bob']);
  const original = await stored(alice.page);
  t.ok(original.fast?.token, 'the original tab keeps a FAST token only');
  const aliceJid = await alice.page.textContent('#me');
  const copy = await duplicate(alice, fast);
  // XEP-0484 §4.1: a token is bound to one client (its user-agent id); used from two tabs, each rotation would
  // retire the token the other tab holds.
  if (!t.equal(await settled(copy.page), 'login form', 'the copy shows the login form')) return;
  t.match(await copy.page.textContent('#error'), /another tab/, 'and says why');
  t.notOk(copy.frames.some((f) => f.dir === 'sent'), 'the copy sent nothing with the original tab\'s token');
  await copy.page.fill('#jid', alice.jid);
  await copy.page.fill('#password', alice.password);
  await copy.page.click('#login button[type=submit]');
  await waitMode(copy.page, 'new session');
  const copyJid = await copy.page.textContent('#me');
  t.not(copyJid, aliceJid, `the copy has its own resource (${copyJid})`);
  t.ok((await stored(copy.page)).fast?.token, 'and a token of its own');

  await say(alice, bob, 'from the original FAST tab');
  await bob.page.locator('#messages .msg.in .body', { hasText: 'from the original FAST tab' }).waitFor();
  t.equal(await alice.page.textContent('#mode'), 'new session', 'the original tab kept its session');
  t.equal(await alice.page.textContent('#error'), '', 'and shows no error');
  await alice.page.reload();
  t.equal(await settled(alice.page), 'resumed', 'the original tab\'s reload resumes with its token');
  t.equal(await alice.page.textContent('#me'), aliceJid, 'its session');
  await copy.page.reload();
  t.equal(await settled(copy.page), 'resumed', 'the copy\'s reload resumes with its own token');
  t.equal(await copy.page.textContent('#me'), copyJid, 'the copy\'s session');
});

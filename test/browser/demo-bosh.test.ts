/**
 * The demo client (public/) in real Chromium over BOSH: a reload continues
 * the same BOSH session (same sid, the next rid, no new SASL; XEP-0124
 * §14.3), and a reload slower than BOSH_INACTIVITY + SM_RESUME_TIMEOUT logs
 * in afresh with the stored SCRAM keys and gets the messages from offline
 * storage, each once.
 */
import t from 'tap';
import type { Browser, Page } from 'playwright-core';
import { NS, parseXml, type XmlElement } from '../../src/xml/index.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { eventually, sleep } from '../helpers/eventually.js';
import { launchBrowser, newPage, recordBosh, screenshot, type BoshExchange } from '../helpers/browser.js';
import {
  assertShownOnce, contactShows, leaveAndReturn, reloadWhile, say, sessionStorageText, twoFriends, waitForMetric, waitMode,
} from '../helpers/demo-page.js';

const SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const BIND = 'urn:ietf:params:xml:ns:xmpp-bind';
const SM = 'urn:xmpp:sm:3';
let server: TestServer;
let quick: TestServer;
let inactive: TestServer;
let polling: TestServer;
let browser: Browser;
t.before(async () => {
  server = await startServer();
  quick = await startServer({ SM_RESUME_TIMEOUT: '2', BOSH_INACTIVITY: '2' });
  inactive = await startServer({ BOSH_INACTIVITY: '2' });
  polling = await startServer({ BOSH_MAX_HOLD: '0', BOSH_POLLING: '1' });
  browser = await launchBrowser(t);
});
t.teardown(async () => { await server.close(); await quick.close(); await inactive.close(); await polling.close(); });

/** The request bodies the page posted, parsed. */
function requests(log: BoshExchange[]): XmlElement[] {
  return log.filter((b) => b.dir === 'sent').map((b) => parseXml(b.text));
}

/** Whether any request carries a child element `local` in namespace `ns` (descendants included). */
function carries(bodies: XmlElement[], local: string, ns: string): boolean {
  const walk = (el: XmlElement): boolean => el.is(local, ns) || el.children.some((c) => typeof c !== 'string' && walk(c));
  return bodies.some((b) => b.children.some((c) => typeof c !== 'string' && walk(c)));
}

/**
 * Lets the page's BOSH requests through, but the response that contains
 * `text` is fetched from the server and then never handed to the page.
 * `before` makes the page replace the request it already has open (only
 * new requests are intercepted), `trigger` sends `text`. Resolves with the
 * rid of the request whose response was held back.
 */
async function holdBackResponse(
  page: Page, text: string, before: () => Promise<void>, trigger: () => Promise<void>,
): Promise<number> {
  let heldRid = (_rid: number): void => undefined;
  const held = new Promise<number>((resolve) => { heldRid = resolve; });
  await page.route('**/http-bind', async (route) => {
    try {
      const response = await route.fetch({ timeout: 0 }); // a held BOSH request may take up to 'wait' seconds
      const body = await response.text();
      if (body.includes(text)) return heldRid(Number(parseXml(route.request().postData() ?? '').attr('rid')));
      await route.fulfill({ response, body });
    } catch { /* the page went away while the request was open */ }
  });
  await before();
  await trigger();
  const rid = await held;
  await page.unroute('**/http-bind');
  return rid;
}

t.test('a reload continues the same BOSH session with the next rid: no new SASL, each message shown once', async (t) => {
  const { alice, bob } = await twoFriends(t, browser, server, ['alice', 'bob'], 'bosh');
  await say(bob, alice, 'answer before the reload');
  await alice.page.locator('#messages .msg.in .body', { hasText: 'answer before the reload' }).waitFor();
  const before = requests(alice.bosh);
  const sid = before.at(-1)!.attr('sid')!;
  const lastRid = Math.max(...before.map((b) => Number(b.attr('rid'))));
  t.match(await sessionStorageText(alice.page), sid, 'the sid is kept in sessionStorage');
  // The response carrying this message reaches the browser's network layer but never the page, which reloads:
  // the server counts it as delivered, so only repeating its rid (XEP-0124 §14.3) gets it shown.
  const lostRid = await holdBackResponse(alice.page, 'lost in the reload',
    () => say(alice, bob, 'a new request replaces the open one'), () => say(bob, alice, 'lost in the reload'));
  const texts = ['while reloading 1', 'while reloading 2', 'while reloading 3'];
  await reloadWhile(alice, async () => { for (const text of texts) await say(bob, alice, text); });
  await waitMode(alice.page, 'resumed');
  t.equal(await alice.page.textContent('#transport'), 'BOSH', 'still on BOSH');
  await assertShownOnce(t, alice, bob, [...texts, 'answer before the reload', 'lost in the reload']);
  const after = requests(alice.bosh).slice(before.length);
  t.ok(after.length > 0 && after.every((b) => b.attr('sid') === sid), 'every request after the reload uses the same sid');
  const rids = after.map((b) => Number(b.attr('rid')));
  // XEP-0124 §14.3: the first request repeats the oldest one whose response the page had not processed.
  t.ok(lostRid > lastRid, 'the held-back request came after the ones already answered');
  // The oldest unprocessed one may be before the lost rid: an answer still on its way when the page went (since MAM
  // the <a/> follows the archive commit, so one more response may be in flight at the reload).
  t.ok(rids[0]! > lastRid && rids[0]! <= lostRid, `the first request after the reload (rid ${rids[0]}) repeats an unprocessed one, at the latest the lost ${lostRid}`);
  t.ok(rids.includes(lostRid), 'the rid whose response was lost is repeated');
  const distinct = [...new Set(rids)].sort((a, b) => a - b);
  t.same(distinct, distinct.map((_, i) => distinct[0]! + i), 'the rids after the reload have no gap');
  t.notOk(carries(after, 'auth', SASL), 'no new SASL');
  t.notOk(carries(after, 'bind', BIND), 'no new bind');
  t.notOk(after.some((b) => b.attr('sid') === undefined), 'no new BOSH session');
  await screenshot(alice.page, 'demo-bosh-resumed');
});

t.test('a BOSH reload slower than the timeouts logs in afresh with the stored keys and gets the messages from offline storage', async (t) => {
  const { alice, bob } = await twoFriends(t, browser, quick, ['carol', 'dave'], 'bosh');
  const sid = requests(alice.bosh).at(-1)!.attr('sid');
  const mark = requests(alice.bosh).length;
  const texts = ['while away 1', 'while away 2', 'while away 3'];
  // Ended when bob sees alice go offline: BOSH inactivity, then the SM resume timeout.
  await leaveAndReturn(alice, bob, quick, texts, () => contactShows(bob.page, alice.jid, 'offline'), 'new session');
  await assertShownOnce(t, alice, bob, texts);
  t.equal(await alice.page.locator('#messages .msg.in', { hasText: 'while away' }).locator('.tag').count(), 3,
    'the three came from offline storage (delay-stamped)');
  const after = requests(alice.bosh).slice(mark);
  t.equal(after[0]?.attr('sid'), sid, 'the page first tried the old BOSH session');
  t.ok(after.some((b) => b.attr('sid') === undefined && b.is('body', NS.HTTPBIND)), 'then created a new one');
  t.ok(carries(after, 'resume', SM), 'tried to resume the XEP-0198 session');
  t.ok(carries(after, 'auth', SASL) && carries(after, 'bind', BIND), 'logged in afresh and bound');
  t.notOk((await sessionStorageText(alice.page)).includes(alice.password), 'no password in sessionStorage');
  await screenshot(alice.page, 'demo-bosh-timeout');
});

t.test('when the BOSH session is gone but the XEP-0198 session is not, the page resumes it over a new BOSH session', async (t) => {
  const { alice, bob } = await twoFriends(t, browser, inactive, ['erin', 'frank'], 'bosh');
  await say(bob, alice, 'before leaving');
  await alice.page.locator('#messages .msg.in .body', { hasText: 'before leaving' }).waitFor();
  const sid = requests(alice.bosh).at(-1)!.attr('sid');
  const mark = requests(alice.bosh).length;
  const texts = ['while away 1', 'while away 2', 'while away 3'];
  // BOSH_INACTIVITY ended the BOSH session; the XEP-0198 session hibernates.
  const hibernating = (): Promise<void> => waitForMetric(inactive, /^xmpp_sessions\{.*state="hibernating".*\} 1$/);
  await leaveAndReturn(alice, bob, inactive, texts, hibernating, 'resumed');
  await assertShownOnce(t, alice, bob, [...texts, 'before leaving']);
  const after = requests(alice.bosh).slice(mark);
  t.equal(after[0]?.attr('sid'), sid, 'the page first tried the old BOSH session');
  t.ok(after.some((b) => b.attr('sid') === undefined), 'then created a new one');
  t.ok(carries(after, 'resume', SM), 'and resumed the XEP-0198 session on it');
  t.notOk(carries(after, 'bind', BIND), 'no new bind');
  await screenshot(alice.page, 'demo-bosh-sm-resume');
});

t.test('in a polling BOSH session (hold 0) the page polls no faster than the server allows, and chats', async (t) => {
  const { alice, bob } = await twoFriends(t, browser, polling, ['peggy', 'rupert'], 'bosh');
  await say(bob, alice, 'polled for');
  await alice.page.locator('#messages .msg.in .body', { hasText: 'polled for' }).waitFor();
  const bodies = requests(alice.bosh);
  t.equal(bodies.find((b) => b.attr('sid') === undefined)?.attr('hold'), '1', 'the page asked for hold 1');
  // The network holds one poll up for most of the interval: the server sees it late, and the page's next poll
  // must still come no sooner than 'polling' after it as the server counts (on a loaded machine this happens).
  let delayedRid = 0;
  await alice.page.route('**/http-bind', async (route) => {
    const body = parseXml(route.request().postData() ?? '');
    if (delayedRid === 0 && body.attr('sid') !== undefined && body.children.length === 0 && body.attr('type') === undefined) {
      delayedRid = Number(body.attr('rid'));
      await sleep(800);
    }
    await route.continue();
  });
  await eventually(() => delayedRid > 0 && requests(alice.bosh).some((b) => Number(b.attr('rid')) >= delayedRid + 3),
    { timeout: 20_000, message: 'three polls after the held-up one' });
  await alice.page.unroute('**/http-bind');
  t.notOk(alice.bosh.some((b) => b.dir === 'received' && b.text.includes('policy-violation')), 'never polled too fast');
  t.equal(await alice.page.textContent('#mode'), 'new session', 'the session is still up');
  await say(bob, alice, 'after the held-up poll');
  await alice.page.locator('#messages .msg.in .body', { hasText: 'after the held-up poll' }).waitFor();
  await screenshot(alice.page, 'demo-bosh-polling');
});

t.test('a BOSH session the server refuses shows the XEP-0124 condition it gave (host-unknown for a domain it does not serve)', async (t) => {
  const { page } = await newPage(t, browser);
  const bosh = recordBosh(page);
  await page.goto(`${server.httpUrl}/`);
  await page.fill('#jid', 'alice@not-served.example');
  await page.fill('#password', 'any password');
  await page.selectOption('#preference', 'bosh');
  await page.click('#login button[type=submit]');
  await page.locator('#error').filter({ hasText: /./ }).waitFor({ timeout: 20_000 });
  const refusal = (b: BoshExchange): boolean => b.dir === 'received' && parseXml(b.text).attr('type') === 'terminate';
  await eventually(() => bosh.some(refusal), { message: 'the recorded refusal' }); // recorded after the page had it
  t.equal(parseXml(bosh.find(refusal)!.text).attr('condition'), 'host-unknown', "the gateway refused the session: <body type='terminate' condition='host-unknown'/>");
  t.equal(await page.textContent('#error'), 'host-unknown', 'the page shows that condition');
  t.ok(await page.locator('#login').isVisible(), 'the login form is still shown');
});

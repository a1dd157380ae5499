/**
 * Drives the demo client (public/) like a user: the login form, the contact
 * list, the chat pane and the status line, in one browser context per user.
 */
import type { Test } from 'tap';
import type { Browser, Page } from 'playwright-core';
import { newPage, recordBosh, recordFrames, type BoshExchange, type Frame } from './browser.js';
import type { TestServer } from './server.js';
import { eventually } from './eventually.js';

export interface DemoUser {
  readonly jid: string;
  readonly password: string;
  readonly page: Page;
  readonly frames: Frame[];
  readonly bosh: BoshExchange[];
}

export type Preference = 'auto' | 'websocket' | 'bosh';

/** A user in a fresh context on the demo page, with the wire recorded; routeWs lets a test break the WebSocket first. */
export async function openDemo(
  t: Test, browser: Browser, server: TestServer, name: string, routeWs?: (page: Page) => Promise<void>,
): Promise<DemoUser> {
  const password = `pw-${name}-${Math.random().toString(36).slice(2)}`;
  await server.addUser(name, password);
  const { page } = await newPage(t, browser);
  const frames = recordFrames(page);
  const bosh = recordBosh(page);
  if (routeWs) await routeWs(page);
  await page.goto(`${server.httpUrl}/`);
  return { jid: `${name}@localhost`, password, page, frames, bosh };
}

export async function login(user: DemoUser, preference: Preference = 'auto'): Promise<void> {
  await user.page.fill('#jid', user.jid);
  await user.page.fill('#password', user.password);
  await user.page.selectOption('#preference', preference);
  await user.page.click('#login button[type=submit]');
  await waitMode(user.page, 'new session');
}

export async function waitMode(page: Page, mode: string): Promise<void> {
  await page.locator('#mode', { hasText: mode }).waitFor({ timeout: 20_000 });
}

/** a adds b, b accepts (and asks back), a accepts: both see each other online (RFC 6121 §3). */
export async function befriend(a: DemoUser, b: DemoUser): Promise<void> {
  await a.page.fill('#contact', b.jid);
  await a.page.click('#add-contact button');
  await b.page.locator('#requests li', { hasText: a.jid }).getByRole('button', { name: 'Accept' }).click();
  await a.page.locator('#requests li', { hasText: b.jid }).getByRole('button', { name: 'Accept' }).click();
  await contactShows(a.page, b.jid, 'online');
  await contactShows(b.page, a.jid, 'online');
}

export async function contactShows(page: Page, jid: string, presence: string): Promise<void> {
  await page.locator(`#roster li[data-jid="${jid}"] .presence`, { hasText: presence }).waitFor({ timeout: 20_000 });
}

export async function say(from: DemoUser, to: DemoUser, text: string): Promise<void> {
  await from.page.click(`#roster li[data-jid="${to.jid}"]`);
  await from.page.fill('#text', text);
  await from.page.press('#text', 'Enter');
  await from.page.locator('#messages .msg.out .body', { hasText: text }).last().waitFor();
}

/** The message texts the chat pane shows, in order. */
export function shownMessages(page: Page): Promise<string[]> {
  return page.locator('#messages .msg .body').allTextContents();
}

/**
 * Waits until `marker` (sent after `texts`) is shown, then returns how often
 * each of `texts` is shown: messages from one sender arrive in order, so a
 * duplicate of any of them would be on the page before the marker.
 */
export async function countAfterMarker(page: Page, texts: string[], marker: string): Promise<number[]> {
  await page.locator('#messages .msg.in .body', { hasText: marker }).waitFor({ timeout: 20_000 });
  const shown = await shownMessages(page);
  return texts.map((text) => shown.filter((s) => s === text).length);
}

/** Every sessionStorage entry of the page, as text. */
export async function sessionStorageText(page: Page): Promise<string> {
  return String(await page.evaluate('JSON.stringify(Object.fromEntries(Object.entries(sessionStorage)))'));
}

/**
 * Reloads the page and runs `meanwhile` after the old page is gone but
 * before the new one runs its script (app.js is held back until then), so
 * whatever `meanwhile` sends reaches the session while no page is there.
 */
export async function reloadWhile(user: DemoUser, meanwhile: () => Promise<void>): Promise<void> {
  let release = (): void => undefined;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  let held = (): void => undefined;
  const scriptRequested = new Promise<void>((resolve) => { held = resolve; });
  await user.page.route('**/app.js', async (route) => { held(); await gate; await route.continue(); });
  const reloading = user.page.reload();
  await scriptRequested;
  try {
    await meanwhile();
  } finally {
    release();
    await reloading;
    await user.page.unroute('**/app.js');
  }
}

/** Polls the server's /metrics until a line matches `pattern` (bounded by `timeoutMs`). */
export async function waitForMetric(server: TestServer, pattern: RegExp, timeoutMs = 20_000): Promise<void> {
  await eventually(async () => {
    const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
    return text.split('\n').some((line) => pattern.test(line));
  }, { timeout: timeoutMs, interval: 100, message: `a /metrics line matching ${pattern}` });
}

/** Two users logged in on their own pages (the first with `preference`), each in the other's roster. */
export async function twoFriends(
  t: Test, browser: Browser, server: TestServer, names: [string, string], preference: Preference = 'auto',
): Promise<{ alice: DemoUser; bob: DemoUser }> {
  const alice = await openDemo(t, browser, server, names[0]);
  const bob = await openDemo(t, browser, server, names[1]);
  await login(alice, preference);
  await login(bob);
  await befriend(alice, bob);
  return { alice, bob };
}

/**
 * alice's page leaves (about:blank); bob sends `texts`; once `gone` sees the
 * server in the state under test, alice's page comes back (same tab, so
 * the same sessionStorage) and shows `mode`.
 */
export async function leaveAndReturn(
  alice: DemoUser, bob: DemoUser, server: TestServer, texts: string[], gone: () => Promise<void>, mode: string,
): Promise<void> {
  await alice.page.goto('about:blank');
  for (const text of texts) await say(bob, alice, text);
  await gone();
  await alice.page.goto(`${server.httpUrl}/`);
  await waitMode(alice.page, mode);
}

/** bob sends a marker; each of `texts` must then be shown exactly once on alice's page. */
export async function assertShownOnce(t: Test, alice: DemoUser, bob: DemoUser, texts: string[]): Promise<void> {
  const marker = `marker ${Math.random().toString(36).slice(2)}`;
  await say(bob, alice, marker);
  t.same(await countAfterMarker(alice.page, texts, marker), texts.map(() => 1), 'each message is shown exactly once');
}

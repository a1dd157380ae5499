/**
 * Real Chromium for the browser tests: Debian's package, driven by
 * playwright-core. Playwright's own browser download does not work on these
 * machines (no network but the package registries), so the browser is
 * `/usr/bin/chromium` (CHROMIUM_PATH overrides it).
 *
 * When Chromium is missing it is installed with apt-get if we run as root,
 * as CI does; otherwise the test fails with one line naming the package.
 * Never a silent skip.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import { ensureDebianPackage } from './apt.js';
import { chromium, type Browser, type BrowserContext, type Page, type Request as PwRequest, type WebSocket as PwWebSocket } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Screenshots of the browser scenarios, kept as test artifacts (git-ignored). */
export const ARTIFACTS_DIR = join(process.cwd(), 'test-artifacts');

/**
 * The flags the brief asks for: headless without the sandbox (we run as
 * root in CI), no GPU, and none of Chromium's own network traffic, which
 * this machine's closed network refuses.
 */
const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];

/** Makes sure Debian's chromium is installed (apt-get as root, under a lock so parallel test files wait for one install). */
export function ensureChromium(): string {
  return ensureDebianPackage(CHROMIUM_PATH, 'chromium', 'Chromium');
}

/**
 * One headless Chromium for a whole test file, closed at its teardown.
 * Playwright gives every launch a new, empty temporary profile (its
 * user-data-dir), and every context is isolated from the others.
 */
export async function launchBrowser(t: Test): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: ensureChromium(), headless: true, args: ARGS });
  t.teardown(() => browser.close());
  return browser;
}

/** A fresh context (its own cookies and sessionStorage: one "user"), closed at the test's teardown. */
export async function newPage(t: Test, browser: Browser): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  t.teardown(() => context.close().catch(() => undefined));
  const page = await context.newPage();
  return { context, page };
}

/** Saves a screenshot of `page` under test-artifacts/NAME.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const path = join(ARTIFACTS_DIR, `${name.replace(/[^a-z0-9-]+/gi, '-')}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** One WebSocket frame as the page saw it. */
export interface Frame { readonly dir: 'sent' | 'received'; readonly text: string; readonly url: string }

/**
 * Records every WebSocket frame the page sends and receives, across page
 * reloads (Playwright's page 'websocket' event survives navigation), so a
 * test can assert on the wire: `<resumed/>` seen, no new `<bind/>` sent.
 */
export function recordFrames(page: Page): Frame[] {
  const frames: Frame[] = [];
  page.on('websocket', (ws: PwWebSocket) => {
    const url = ws.url();
    ws.on('framesent', (f) => frames.push({ dir: 'sent', text: String(f.payload), url }));
    ws.on('framereceived', (f) => frames.push({ dir: 'received', text: String(f.payload), url }));
  });
  return frames;
}

/** One BOSH request/response body as the page sent or received it. */
export interface BoshExchange { readonly dir: 'sent' | 'received'; readonly text: string }

/**
 * Records BOSH bodies posted to (and answered from) URLs containing `path`, across reloads. A request
 * is recorded at its 'request' event, or, if that event did not come, at its response or its failure.
 * Once in a few CI runs a rid posted around a reload was missing from the log while the session went
 * on past it, which the server allows only in rid order (demo-bosh.test.ts, "no gap").
 */
export function recordBosh(page: Page, path = '/http-bind'): BoshExchange[] {
  const log: BoshExchange[] = [];
  const recorded = new WeakSet<PwRequest>();
  const sent = (req: PwRequest): void => {
    if (recorded.has(req) || !req.url().includes(path) || req.method() !== 'POST') return;
    recorded.add(req);
    log.push({ dir: 'sent', text: req.postData() ?? '' });
  };
  page.on('request', sent);
  page.on('requestfailed', sent);
  page.on('response', (res) => {
    if (!res.url().includes(path) || res.request().method() !== 'POST') return;
    sent(res.request());
    res.text().then((text) => log.push({ dir: 'received', text }), () => undefined);
  });
  return log;
}

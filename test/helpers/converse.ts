/**
 * Converse.js (npm `converse.js`, its built `dist/`) as a real third-party
 * client in Chromium: served from a second origin, as a site embedding it
 * would, and configured with the README's "Use with Converse.js" blocks
 * read from README.md itself, so the documented configuration is the one
 * tested and the two cannot drift.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Test } from 'tap';
import Fastify from 'fastify';
import fastifyStatic from '@fastify/static';
import type { Browser, Page, WebSocketRoute } from 'playwright-core';
import { WebSocket } from 'ws';
import { newPage, recordBosh, recordFrames } from './browser.js';
import { startServer, type TestServer } from './server.js';

/** The placeholder origin the README's configuration uses. */
export const README_HOST = 'chat.example.com';
export type ConverseConfigName = 'websocket' | 'bosh' | 'discovery' | 'token';

// The package exports no ./package.json; its dist/ is where npm installed it, next to this project's node_modules.
const CONVERSE_DIST = join(process.cwd(), 'node_modules', 'converse.js', 'dist');

/**
 * The object passed to `converse.initialize(…)` in the README block marked
 * `<!-- converse-config: NAME -->`, as JavaScript source, with only the
 * placeholder origin replaced by the test gateway's.
 */
export function readmeConverseConfig(name: ConverseConfigName, server: TestServer): string {
  const readme = readFileSync(join(process.cwd(), 'README.md'), 'utf8');
  const marker = `<!-- converse-config: ${name} -->`;
  const at = readme.indexOf(marker);
  if (at < 0) throw new Error(`README.md has no ${marker} block`);
  const block = /```js\n([\s\S]*?)```/.exec(readme.slice(at))?.[1];
  const call = block && /converse\.initialize\((\{[\s\S]*\})\);/.exec(block)?.[1];
  if (!call) throw new Error(`README.md's ${name} block has no converse.initialize({…}) call`);
  const origin = `127.0.0.1:${server.port}`;
  return call.replaceAll(`wss://${README_HOST}`, `ws://${origin}`).replaceAll(`https://${README_HOST}`, `http://${origin}`);
}

/** A page that loads Converse from dist/ and initializes it with `config` (JavaScript source), as Converse's quickstart does. */
function pageHtml(config: string): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Converse.js on xmpp-web-gateway</title>
<link rel="stylesheet" href="/dist/converse.min.css"><script type="module" src="/dist/converse.min.js"></script></head>
<body><script type="module">converse.initialize(${config});</script></body></html>`;
}

export interface ConverseSite {
  /** The site's origin: the gateway must list it in ALLOWED_ORIGINS, as the README says. */
  readonly origin: string;
  /** URL of the page that runs Converse with the README's NAME configuration. */
  url(name: ConverseConfigName): string;
}

/**
 * The embedding site: Converse's dist/ and one page per README
 * configuration, on its own port (so its origin differs from the gateway's,
 * as in a real deployment: the gateway must allow it, ALLOWED_ORIGINS). It
 * starts first, so its origin is known when the gateway is configured;
 * `server` is read when a page is asked for.
 */
export async function serveConverse(t: Test, server: () => TestServer): Promise<ConverseSite> {
  const site = Fastify({ logger: false });
  await site.register(fastifyStatic, { root: CONVERSE_DIST, prefix: '/dist/' });
  site.get<{ Params: { name: ConverseConfigName } }>('/:name.html', async (req, reply) => {
    reply.type('text/html; charset=utf-8');
    return pageHtml(readmeConverseConfig(req.params.name, server()));
  });
  await site.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => site.close());
  const address = site.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const origin = `http://127.0.0.1:${port}`;
  return { origin, url: (name) => `${origin}/${name}.html` };
}

/**
 * `a` and `b` (local parts on localhost) are each other's contacts with subscription both, written to
 * storage before either logs in (Converse shows its roster view, which loginWithForm waits for, once
 * there is a contact in it).
 */
export async function contactsInStorage(server: TestServer, a: string, b: string): Promise<void> {
  const contact = (jid: string) => ({ jid, name: undefined, subscription: 'both' as const, ask: false, approved: false, groups: [] });
  await server.storage.rosters.putItem('localhost', a, contact(`${b}@localhost`), 1);
  await server.storage.rosters.putItem('localhost', b, contact(`${a}@localhost`), 1);
}

/**
 * The site embedding Converse and the gateway allowing its origin, for one test file: the accounts
 * alice and bob (password `<name>-pw`), each other's contacts. Both closed when `t` ends.
 */
export async function converseAliceAndBob(t: Test): Promise<{ server: TestServer; site: ConverseSite }> {
  let server!: TestServer;
  const site = await serveConverse(t, () => server);
  server = await startServer({ ALLOWED_ORIGINS: site.origin });
  t.teardown(() => server.close());
  for (const user of ['alice', 'bob']) await server.addUser(user, `${user}-pw`);
  await contactsInStorage(server, 'alice', 'bob');
  return { server, site };
}

/**
 * A fresh browser context (one user) for a Converse page (not loaded yet,
 * so recorders can be attached first).
 * Converse's login screen shows sponsor logos from conversejs.org; this
 * closed network cannot reach them, so they are refused at once instead of
 * waiting for DNS.
 */
export async function conversePage(t: Test, browser: Browser): Promise<Page> {
  const { page } = await newPage(t, browser);
  await page.route((url) => url.hostname !== '127.0.0.1', (route) => route.abort());
  return page;
}

/** Logs in through Converse's own login form, as a user would, and waits for the roster view. */
export async function loginWithForm(page: Page, jid: string, password: string): Promise<void> {
  await page.locator('input[name="jid"]').fill(jid);
  await page.locator('input[name="password"]').fill(password);
  await page.locator('converse-login-form button[type="submit"]').click();
  await page.locator('converse-roster').waitFor({ timeout: 15_000 });
}

/** Opens the chat with the roster contact `jid` from the roster view. */
export async function openChat(page: Page, jid: string): Promise<void> {
  await page.locator(`converse-roster a.open-chat[data-jid="${jid}"]`).first().click();
  await page.locator(`converse-chat[jid="${jid}"] .chat-textarea`).waitFor({ timeout: 10_000 });
}

/** Types `text` into the open chat with `jid` and sends it with Enter. */
export async function sendChat(page: Page, jid: string, text: string): Promise<void> {
  const area = page.locator(`converse-chat[jid="${jid}"] .chat-textarea`);
  await area.fill(text);
  await area.press('Enter');
}

/** The texts of the messages shown in the chat with `jid`. */
export async function shownMessages(page: Page, jid: string): Promise<string[]> {
  return page.locator(`converse-chat[jid="${jid}"] .chat-msg__text`).allInnerTexts();
}

/** Waits until the chat with `jid` shows a message with exactly `text`. */
export async function waitForMessage(page: Page, jid: string, text: string, timeout = 10_000): Promise<void> {
  await page.locator(`converse-chat[jid="${jid}"] .chat-msg__text`, { hasText: text }).first().waitFor({ timeout });
}

/**
 * Reloads `page` but holds Converse's script back until `release()` is
 * called: the old page is gone (its WebSocket closed or its BOSH request
 * aborted) and the new one has not connected yet, so a test can send
 * messages "meanwhile" without racing the reload.
 */
export async function reloadHeld(page: Page): Promise<{ release(): Promise<void> }> {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => { open = resolve; });
  const pattern = '**/dist/converse.min.js';
  await page.route(pattern, async (route) => {
    await gate;
    await route.continue();
  });
  // 'commit': the new document replaced the old one, whose connections the browser has now dropped.
  await page.reload({ waitUntil: 'commit' });
  return {
    async release() {
      open();
      await page.waitForLoadState('load');
      await page.unroute(pattern);
    },
  };
}

/** The bound full JID from the (last) resource binding result seen in `frames`. */
export function boundJid(texts: readonly string[]): string | undefined {
  let jid: string | undefined;
  for (const text of texts) {
    const m = /<bind [^>]*>\s*<jid>([^<]+)<\/jid>/.exec(text);
    if (m) jid = m[1];
  }
  return jid;
}

/**
 * What the TLS-terminating proxy of the README does for XEP-0156 discovery,
 * for a page whose users log in at `domain`: Converse fetches
 * `https://DOMAIN/.well-known/host-meta` and takes only `wss:`/`https:`
 * links. The host-meta request goes to the gateway with
 * `X-Forwarded-Proto: https` (127.0.0.1 is a trusted proxy), so it
 * advertises wss://127.0.0.1:PORT/xmpp-websocket; that WebSocket is then
 * carried to the gateway's plain ws:// endpoint, frame for frame, with the
 * 'xmpp' subprotocol.
 */
export async function emulateTlsProxy(page: Page, server: TestServer, domain = 'localhost'): Promise<{ hostMetaRequests: number }> {
  const seen = { hostMetaRequests: 0 };
  await page.route(`https://${domain}/.well-known/host-meta`, async (route) => {
    seen.hostMetaRequests++;
    const headers = { ...route.request().headers(), 'x-forwarded-proto': 'https' };
    const response = await route.fetch({ url: `${server.httpUrl}/.well-known/host-meta`, headers });
    await route.fulfill({ response });
  });
  await page.routeWebSocket(`wss://127.0.0.1:${server.port}/xmpp-websocket`, (route) => bridge(route, server.wsUrl));
  return seen;
}

/** Carries a routed page WebSocket to the gateway at `url`, as a TLS-terminating proxy does (X-Forwarded-Proto: https). */
export function bridge(route: WebSocketRoute, url: string): void {
  // As nginx does with `proxy_set_header X-Forwarded-Proto $scheme` (README).
  const upstream = new WebSocket(url, 'xmpp', { headers: { 'x-forwarded-proto': 'https' } });
  const early: string[] = [];
  upstream.on('open', () => { for (const m of early.splice(0)) upstream.send(m); });
  upstream.on('message', (data) => route.send(String(data)));
  upstream.on('close', () => void route.close().catch(() => undefined));
  upstream.on('error', () => void route.close().catch(() => undefined));
  route.onMessage((m) => { if (upstream.readyState === WebSocket.OPEN) upstream.send(String(m)); else early.push(String(m)); });
  route.onClose(() => upstream.close());
}

/** What a page sent or received on its XMPP connection (WebSocket frames or BOSH bodies). */
export interface Wire { readonly dir: 'sent' | 'received'; readonly text: string }

/** The entries of `wire` from index `from` on, in direction `dir`, that contain `needle` (or match it). */
export const onWire = (wire: readonly Wire[], dir: Wire['dir'], needle: string | RegExp, from = 0): Wire[] =>
  wire.slice(from).filter((w) => w.dir === dir && (typeof needle === 'string' ? w.text.includes(needle) : needle.test(w.text)));

/** Opens `site`'s README configuration `config` in a new page, records its traffic and logs `user` (on localhost, password `<user>-pw`) in through Converse's form. */
export async function converseLogin(tt: Test, browser: Browser, site: ConverseSite, config: ConverseConfigName, user: string): Promise<{ page: Page; wire: Wire[]; bound: string }> {
  const page = await conversePage(tt, browser);
  const wire: Wire[] = config === 'bosh' ? recordBosh(page) : recordFrames(page);
  await page.goto(site.url(config));
  await loginWithForm(page, `${user}@localhost`, `${user}-pw`);
  const bound = boundJid(wire.map((w) => w.text));
  if (bound === undefined) throw new Error(`${user}: no resource binding result seen on the wire`);
  return { page, wire, bound };
}

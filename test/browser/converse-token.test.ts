/**
 * Converse.js 14 in real Chromium logs in with a token from the web app's
 * backend, configured exactly as README's "Tokens for web apps" block says:
 * it fetches the JID and a JWT from `credentials_url` and authenticates with
 * OAUTHBEARER (RFC 7628) over a TLS-protected WebSocket (the page's socket
 * goes through a bridge that adds X-Forwarded-Proto: https, as nginx does).
 * No login form, no XMPP password.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import type { Browser } from 'playwright-core';
import { SignJWT } from 'jose';
import { startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser, screenshot } from '../helpers/browser.js';
import { bridge, conversePage, serveConverse, type ConverseSite } from '../helpers/converse.js';

const SECRET = 'the-web-apps-secret-of-at-least-32-characters';
const CREDENTIALS_URL = 'https://www.example.com/api/xmpp-credentials';

const logLines: string[] = [];
const sink = new Writable({ write(chunk: Buffer, _enc, done) { logLines.push(chunk.toString()); done(); } });

let server: TestServer;
let site: ConverseSite;
let browser: Browser;
t.before(async () => {
  site = await serveConverse(t, () => server);
  server = await startServer(
    { ALLOWED_ORIGINS: site.origin, JWT_SECRET: SECRET, JWT_AUDIENCE: 'localhost' }, undefined, { logger: { level: 'info', stream: sink } },
  );
  await server.addUser('alice', 'alice-pw');
  browser = await launchBrowser(t);
});
t.teardown(() => server.close());

/** The web app's backend: a fresh five-minute token for its signed-in user. */
const mint = (jid: string): Promise<string> => new SignJWT({ jid })
  .setProtectedHeader({ alg: 'HS256' }).setAudience('localhost').setExpirationTime('5m').sign(new TextEncoder().encode(SECRET));

async function saslSuccesses(mechanism: string): Promise<number> {
  const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
  const m = new RegExp(`^xmpp_sasl_total\\{mechanism="${mechanism}",result="success"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

t.test('Converse logs in with a JWT from credentials_url over OAUTHBEARER, with no login form', async (t) => {
  const page = await conversePage(t, browser);
  const tokens: string[] = [];
  // Registered after conversePage's catch-all, so it wins for this URL (Playwright: the last route first).
  await page.route(CREDENTIALS_URL, async (route) => {
    const token = await mint('alice@localhost');
    tokens.push(token);
    await route.fulfill({
      status: 200, contentType: 'application/json', body: JSON.stringify({ jid: 'alice@localhost', password: token }),
      // Converse asks with credentials (cookies): the app's backend allows the chat page's origin.
      headers: { 'access-control-allow-origin': site.origin, 'access-control-allow-credentials': 'true' },
    });
  });
  await page.routeWebSocket(server.wsUrl, (route) => bridge(route, server.wsUrl));
  await page.goto(site.url('token'));
  await page.locator('converse-roster').waitFor({ timeout: 20_000 });
  t.ok(tokens.length >= 1, 'Converse fetched the token from the backend');
  const alice = [...server.app.sessions.resources('localhost', 'alice')];
  t.equal(alice.length, 1, 'alice has one session');
  t.ok(alice[0]?.secure, 'on a stream the gateway counts as TLS-protected');
  t.equal(await saslSuccesses('OAUTHBEARER'), 1, 'authenticated with OAUTHBEARER');
  t.equal(await page.locator('converse-login-form').count(), 0, 'no login form was shown');
  t.notOk(logLines.some((l) => tokens.some((token) => l.includes(token))), 'no token in the log');
  await screenshot(page, 'converse-token');
});

/**
 * The browser harness itself: Debian's Chromium, driven by playwright-core,
 * opens the gateway's page on a real port and a WebSocket to its endpoint
 * with the 'xmpp' subprotocol, and the frames are seen on the wire.
 */
import t from 'tap';
import { startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser, newPage, recordFrames } from '../helpers/browser.js';

let server: TestServer;
t.before(async () => { server = await startServer(); });
t.teardown(() => server.close());

t.test('Chromium opens the gateway page and an RFC 7395 WebSocket from it', async (t) => {
  const browser = await launchBrowser(t);
  const { page } = await newPage(t, browser);
  const frames = recordFrames(page);
  const res = await page.goto(`${server.httpUrl}/`);
  t.equal(res?.status(), 200, 'the page is served');
  t.match(await page.title(), /xmpp-web-gateway/);
  const opened = await page.evaluate(`new Promise((resolve, reject) => {
    const ws = new WebSocket(${JSON.stringify(server.wsUrl)}, 'xmpp');
    ws.onmessage = (e) => { resolve(String(e.data)); ws.close(); };
    ws.onopen = () => ws.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>");
    ws.onerror = () => reject(new Error('websocket failed'));
  })`);
  t.match(String(opened), /<open [^>]*xmlns=['"]urn:ietf:params:xml:ns:xmpp-framing['"]/, 'the server answers with its <open/>');
  t.ok(frames.some((f) => f.dir === 'sent' && f.text.includes('<open')), 'the frame recorder saw the page send <open/>');
});

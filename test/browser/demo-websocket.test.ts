/**
 * The demo client (public/) in real Chromium over WebSocket: two users chat,
 * a reload resumes the XEP-0198 session without a new bind, a reload slower
 * than SM_RESUME_TIMEOUT logs in afresh with the stored SCRAM keys and gets
 * the messages from offline storage, and the transport falls back to BOSH
 * or is forced to one.
 */
import t from 'tap';
import type { Browser } from 'playwright-core';
import { startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser, screenshot } from '../helpers/browser.js';
import {
  befriend, contactShows, countAfterMarker, login, openDemo, say, sessionStorageText, shownMessages, waitMode,
} from '../helpers/demo-page.js';

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
  t.same(await alice.page.locator('#messages .msg .body').allTextContents(), ['Hello Bob, this is Alice', 'Hi Alice! Bob here.']);
  t.same(await bob.page.locator('#messages .msg .body').allTextContents(), ['Hello Bob, this is Alice', 'Hi Alice! Bob here.']);
  t.match(await alice.page.textContent('#counters'), /h in \d+ \/ h out \d+ \/ unacked \d+/, 'the SM counters are shown');
  await alice.page.locator('#counters', { hasText: 'unacked 0' }).waitFor();
  await screenshot(alice.page, 'demo-chat-alice');
  await screenshot(bob.page, 'demo-chat-bob');
});

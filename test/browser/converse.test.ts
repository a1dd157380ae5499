/**
 * Converse.js 14 from npm in real Chromium, as a third-party client on its
 * own origin, configured exactly as README's "Use with Converse.js" says:
 * login over WebSocket and BOSH, chat both ways, and page reloads that keep
 * the session (XEP-0198 resumption over WebSocket, BOSH keepalive).
 */
import t, { type Test } from 'tap';
import type { Browser, Page } from 'playwright-core';
import type { Session } from '../../src/xmpp/session.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser, screenshot } from '../helpers/browser.js';
import {
  contactsInStorage, converseLogin as converseLoginAt, conversePage, emulateTlsProxy, loginWithForm, onWire, openChat, reloadHeld, sendChat, serveConverse,
  shownMessages, waitForMessage, type ConverseConfigName, type ConverseSite, type Wire,
} from '../helpers/converse.js';
import { login as xmppjsLogin, serverHibernates, sleep, xml, type XmlEl, type XmppJsClient } from '../helpers/xmppjs.js';
import { eventually } from '../helpers/eventually.js';

const ALICE = 'alice@localhost';
const BOB = 'bob@localhost';
const CAROL = 'carol@localhost';
// Each scenario has its own users, so no session left from another (a hibernating one) shares their bare JID.
const ERIN = 'erin@localhost';
const FRANK = 'frank@localhost';

let server: TestServer;
let site: ConverseSite;
let browser: Browser;
let c: Carol;
t.before(async () => {
  // The site embedding Converse has its own origin, which the gateway allows (README: ALLOWED_ORIGINS).
  site = await serveConverse(t, () => server);
  server = await startServer({ SM_RESUME_TIMEOUT: '60', ALLOWED_ORIGINS: site.origin });
  for (const user of ['alice', 'bob', 'carol', 'erin', 'frank', 'gina']) await server.addUser(user, `${user}-pw`);
  // alice and bob are contacts; carol is on nobody's roster (Converse then needs XEP-0191, see below).
  await contactsInStorage(server, 'alice', 'bob');
  c = await carolLogin();
  browser = await launchBrowser(t);
});
t.teardown(() => server.close());


const converseLogin = (tt: Test, config: ConverseConfigName, user: string) => converseLoginAt(tt, browser, site, config, user);

/** The gateway's session for a full JID. */
function sessionOf(fullJid: string): Session | undefined {
  const m = /^([^@]+)@([^/]+)\/(.+)$/.exec(fullJid);
  return m ? server.app.sessions.get(m[2]!, m[1]!, m[3]!) : undefined;
}

/** Waits until the page sent nothing for 500 ms and the gateway holds a request (it has all the page sent). */
async function quietBosh(wire: readonly Wire[]): Promise<void> {
  let seen = -1;
  let since = Date.now();
  await eventually(() => {
    const sent = onWire(wire, 'sent', '<body').length;
    if (sent !== seen) { seen = sent; since = Date.now(); }
    return Date.now() - since >= 500 && server.app.bosh.stats().held > 0;
  }, { timeout: 15_000, message: 'a quiet BOSH exchange with one request held' });
}

type Carol = XmppJsClient & { say(to: string, text: string): Promise<void>; nextBody(what: string): Promise<XmlEl> };

/** carol, on @xmpp/client from Node, outside everyone's roster; one login for the file, before Chromium is busy. */
async function carolLogin(): Promise<Carol> {
  const c = await xmppjsLogin(t, server, { username: 'carol', password: 'carol-pw', resource: 'node' });
  await c.xmpp.send(xml('presence'));
  return {
    ...c,
    say: (to, text) => c.xmpp.send(xml('message', { to, type: 'chat' }, xml('body', {}, text))),
    async nextBody(what) {
      // Converse also sends chat states (XEP-0085): messages without a body.
      for (;;) {
        const m = await c.inbox.next(what, 10_000);
        if (m.getChildText('body') !== null) return m;
      }
    },
  };
}

/** carol writes to `jid`, whose page opens her chat (she is on no roster: Converse lists her as an unsaved contact). */
async function carolWritesFirst(page: Page, jid: string): Promise<void> {
  await c.say(jid, 'before the reload');
  await openChat(page, CAROL);
  await waitForMessage(page, CAROL, 'before the reload');
}

/**
 * Reloads `page`; once `gone()` holds (the server saw the old page go),
 * carol writes twice; then the new page loads and must show each of her
 * messages once, in order.
 */
async function reloadWhileCarolWrites(tt: Test, page: Page, jid: string, gone: () => Promise<void>): Promise<void> {
  const reload = await reloadHeld(page);
  await gone();
  await c.say(jid, 'during the reload 1');
  await c.say(jid, 'during the reload 2');
  await reload.release();
  await waitForMessage(page, CAROL, 'during the reload 2', 20_000);
  tt.same(await shownMessages(page, CAROL), ['before the reload', 'during the reload 1', 'during the reload 2'], 'each message shown once, in order');
}

/** The page's user answers carol; resolves with what carol received. */
async function answerCarol(page: Page, text: string): Promise<XmlEl> {
  await sendChat(page, CAROL, text);
  return c.nextBody(`the answer '${text}'`);
}

t.test('Converse logs in over WebSocket and over BOSH, and the two users chat both ways', async (t) => {
  const { page: alice, wire: frames, bound: aliceJid } = await converseLogin(t, 'websocket', 'alice');
  t.ok(onWire(frames, 'received', '<success').length > 0, 'alice: SASL success over the WebSocket');
  const { page: bob, wire: bosh, bound: bobJid } = await converseLogin(t, 'bosh', 'bob');
  t.ok(onWire(bosh, 'received', '<success').length > 0, 'bob: SASL success over BOSH');
  t.equal(sessionOf(aliceJid)?.transport, 'websocket', 'alice is bound on the server over WebSocket');
  t.equal(sessionOf(bobJid)?.transport, 'bosh', 'bob is bound on the server over BOSH');

  // Converse 14 waits for XEP-0191 in the server's disco#info before it lets a user chat outside the roster.
  t.ok(onWire(frames, 'received', /disco#info[\s\S]*urn:xmpp:blocking|urn:xmpp:blocking[\s\S]*disco#info/).length > 0,
    'the disco#info answer Converse gets advertises urn:xmpp:blocking');

  await openChat(alice, BOB);
  await openChat(bob, ALICE);
  await sendChat(alice, BOB, 'hello from WebSocket');
  await waitForMessage(bob, ALICE, 'hello from WebSocket');
  await sendChat(bob, ALICE, 'hello from BOSH');
  await waitForMessage(alice, BOB, 'hello from BOSH');
  t.same(await shownMessages(bob, ALICE), ['hello from WebSocket', 'hello from BOSH'], 'bob sees the conversation once, in order');
  t.same(await shownMessages(alice, BOB), ['hello from WebSocket', 'hello from BOSH'], 'alice sees the conversation once, in order');
  await screenshot(alice, 'converse-websocket-chat');
  await screenshot(bob, 'converse-bosh-chat');
});

t.test('a Converse reload over WebSocket resumes the XEP-0198 session: nothing lost, nothing twice, still alive 5 s later', async (t) => {
  const { page: erin, wire: frames, bound } = await converseLogin(t, 'websocket', 'erin');
  t.ok(onWire(frames, 'received', /<enabled [^>]*resume=["'](true|1)["']/).length > 0, 'Converse enabled resumable stream management');
  await carolWritesFirst(erin, ERIN);

  const mark = frames.length;
  await reloadWhileCarolWrites(t, erin, ERIN, () => serverHibernates(server, bound));
  t.ok(onWire(frames, 'sent', /<auth [^>]*SCRAM/, mark).length > 0, 'the new stream logs in with the SCRAM keys Converse saved (no password kept)');
  t.ok(onWire(frames, 'received', '<resumed', mark).length > 0, '<resumed/> on the wire');
  t.equal(onWire(frames, 'sent', 'urn:ietf:params:xml:ns:xmpp-bind', mark).length, 0, 'no resource binding after the reload');
  await screenshot(erin, 'converse-websocket-reload-resumed');

  await sleep(5000);
  t.equal(onWire(frames, 'received', 'stream:error', mark).length + onWire(frames, 'received', '<close', mark).length, 0,
    'no stream error or close since the reload (no invalid-from)');
  t.ok(sessionOf(bound)?.conn, 'the resumed session is still connected on the server 5 s later');
  const got = await answerCarol(erin, 'alive after 5 s');
  t.equal(got.getChildText('body'), 'alive after 5 s', 'carol gets what erin sends after the resume');
  t.equal(got.attrs.from, bound, 'from erin\'s bound full JID');
  await c.say(ERIN, 'and still delivered');
  await waitForMessage(erin, CAROL, 'and still delivered');
  await screenshot(erin, 'converse-websocket-reload-alive');
});

t.test('a Converse reload over BOSH with keepalive continues the same BOSH session with nothing lost', async (t) => {
  const { page: frank, wire: bosh, bound } = await converseLogin(t, 'bosh', 'frank');
  const sid = /sid=["']([^"']+)["']/.exec(onWire(bosh, 'received', 'sid=')[0]?.text ?? '')?.[1];
  t.ok(sid, 'the BOSH session id');
  await carolWritesFirst(frank, FRANK);
  // Reload while only the held request is out. Strophe counts a request's rid when it
  // sends it; one the unloading page aborted before it reached the gateway leaves a
  // gap of two the restored page cannot fill, which XEP-0124 §14.2 answers with
  // item-not-found. Converse then logs in afresh and the gateway hands the
  // messages of the old session over to it (nothing lost), but that is not keepalive.
  await quietBosh(bosh);

  const mark = bosh.length;
  // reloadHeld returns once the new document has replaced the old one: what carol sends now waits for the new page.
  await reloadWhileCarolWrites(t, frank, FRANK, async () => undefined);
  const after = onWire(bosh, 'sent', '<body', mark);
  t.ok(after.length > 0, 'the reloaded page speaks BOSH');
  t.ok(after.every((b) => b.text.includes(`sid="${sid}"`) || b.text.includes(`sid='${sid}'`)), 'every request after the reload continues the same BOSH session');
  t.equal(onWire(bosh, 'sent', /<auth |xmpp-bind/, mark).length, 0, 'no new login or resource binding');
  t.ok(sessionOf(bound)?.conn, 'the session is still connected on the server');
  const got = await answerCarol(frank, 'back after the reload');
  t.equal(got.getChildText('body'), 'back after the reload', 'carol gets what frank sends after the reload');
  await screenshot(frank, 'converse-bosh-reload');
});

t.test('Converse finds the WebSocket endpoint through host-meta (XEP-0156) behind a TLS proxy and logs in', async (t) => {
  const page = await conversePage(t, browser);
  const proxy = await emulateTlsProxy(page, server);
  await page.goto(site.url('discovery'));
  await loginWithForm(page, 'gina@localhost', 'gina-pw');
  t.ok(proxy.hostMetaRequests > 0, 'Converse fetched https://localhost/.well-known/host-meta');
  const gina = [...server.app.sessions.resources('localhost', 'gina')];
  t.equal(gina.length, 1, 'gina has one session');
  t.equal(gina[0]?.transport, 'websocket', 'over the advertised WebSocket endpoint');
  t.ok(gina[0]?.secure, 'which the gateway counts as TLS-protected (X-Forwarded-Proto from a trusted proxy)');
  await c.say('gina@localhost', 'found you');
  await openChat(page, CAROL);
  await waitForMessage(page, CAROL, 'found you');
  t.equal((await answerCarol(page, 'found me')).getChildText('body'), 'found me', 'and chats');
  await screenshot(page, 'converse-discovery');
});

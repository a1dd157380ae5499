/**
 * Converse.js 14 from npm in real Chromium, as a third-party client on its
 * own origin, configured exactly as README's "Use with Converse.js" says:
 * login over WebSocket and BOSH, chat both ways, and page reloads that keep
 * the session (XEP-0198 resumption over WebSocket, BOSH keepalive).
 */
import t from 'tap';
import type { Browser, Page } from 'playwright-core';
import { startServer, type TestServer } from '../helpers/server.js';
import { launchBrowser, recordBosh, recordFrames, screenshot } from '../helpers/browser.js';
import {
  boundJid, conversePage, loginWithForm, openChat, reloadHeld, sendChat, serveConverse, shownMessages, waitForMessage,
  type ConverseConfigName, type ConverseSite,
} from '../helpers/converse.js';
import { login as xmppjsLogin, serverHibernates, serverSession, sleep, xml, type XmlEl, type XmppJsClient } from '../helpers/xmppjs.js';

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
  server = await startServer({ SM_RESUME_TIMEOUT: '60' });
  for (const user of ['alice', 'bob', 'carol', 'erin', 'frank']) await server.addUser(user, `${user}-pw`);
  // alice and bob are contacts; carol is on nobody's roster (Converse then needs XEP-0191, see below).
  const contact = (jid: string) => ({ jid, name: undefined, subscription: 'both' as const, ask: false, approved: false, groups: [] });
  await server.storage.rosters.putItem('localhost', 'alice', contact(BOB), 1);
  await server.storage.rosters.putItem('localhost', 'bob', contact(ALICE), 1);
  c = await carolLogin();
  site = await serveConverse(t, server);
  browser = await launchBrowser(t);
});
t.teardown(() => server.close());

interface Wire { readonly dir: 'sent' | 'received'; readonly text: string }
const onWire = (wire: readonly Wire[], dir: Wire['dir'], needle: string | RegExp, from = 0): Wire[] =>
  wire.slice(from).filter((w) => w.dir === dir && (typeof needle === 'string' ? w.text.includes(needle) : needle.test(w.text)));

/** Opens the README's `config` page and logs `user` in through Converse's form. */
async function converseLogin(tt: Parameters<typeof conversePage>[0], config: ConverseConfigName, user: string, record: (page: Page) => void): Promise<Page> {
  const page = await conversePage(tt, browser);
  record(page);
  await page.goto(site.url(config));
  await loginWithForm(page, `${user}@localhost`, `${user}-pw`);
  return page;
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

t.test('Converse logs in over WebSocket and over BOSH, and the two users chat both ways', async (t) => {
  let frames: Wire[] = [];
  let bosh: Wire[] = [];
  const alice = await converseLogin(t, 'websocket', 'alice', (p) => { frames = recordFrames(p); });
  t.ok(onWire(frames, 'received', '<success').length > 0, 'alice: SASL success over the WebSocket');
  const bob = await converseLogin(t, 'bosh', 'bob', (p) => { bosh = recordBosh(p); });
  t.ok(onWire(bosh, 'received', '<success').length > 0, 'bob: SASL success over BOSH');
  t.ok(serverSession(server, boundJid(frames.map((f) => f.text)) ?? 'x@y/z')?.conn, 'alice is bound on the server, connected');

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
  let frames: Wire[] = [];
  const erin = await converseLogin(t, 'websocket', 'erin', (p) => { frames = recordFrames(p); });
  const bound = boundJid(frames.map((f) => f.text));
  t.ok(bound, 'erin bound a resource');
  t.ok(onWire(frames, 'received', /<enabled [^>]*resume=["'](true|1)["']/).length > 0, 'Converse enabled resumable stream management');
  await c.say(ERIN, 'before the reload');
  // carol is not on erin's roster: Converse lists her as an unsaved contact.
  await openChat(erin, CAROL);
  await waitForMessage(erin, CAROL, 'before the reload');

  const mark = frames.length;
  const reload = await reloadHeld(erin);
  await serverHibernates(server, bound!);
  await c.say(ERIN, 'during the reload 1');
  await c.say(ERIN, 'during the reload 2');
  await reload.release();

  await waitForMessage(erin, CAROL, 'during the reload 2', 20_000);
  t.ok(onWire(frames, 'received', '<resumed', mark).length > 0, '<resumed/> on the wire');
  t.equal(onWire(frames, 'sent', 'urn:ietf:params:xml:ns:xmpp-bind', mark).length, 0, 'no resource binding after the reload');
  t.same(await shownMessages(erin, CAROL), ['before the reload', 'during the reload 1', 'during the reload 2'], 'each message shown once, in order');
  await screenshot(erin, 'converse-websocket-reload-resumed');

  await sleep(5000);
  t.equal(onWire(frames, 'received', 'stream:error', mark).length + onWire(frames, 'received', '<close', mark).length, 0,
    'no stream error or close since the reload (no invalid-from)');
  t.ok(serverSession(server, bound!)?.conn, 'the resumed session is still connected on the server 5 s later');
  await sendChat(erin, CAROL, 'alive after 5 s');
  const got = await c.nextBody('erin\'s message after the resume');
  t.equal(got.getChildText('body'), 'alive after 5 s', 'carol gets what erin sends after the resume');
  t.equal(got.attrs.from, bound, 'from erin\'s bound full JID');
  await c.say(ERIN, 'and still delivered');
  await waitForMessage(erin, CAROL, 'and still delivered');
  await screenshot(erin, 'converse-websocket-reload-alive');
});

t.test('a Converse reload over BOSH with keepalive continues the same BOSH session with nothing lost', async (t) => {
  let bosh: Wire[] = [];
  const frank = await converseLogin(t, 'bosh', 'frank', (p) => { bosh = recordBosh(p); });
  const bound = boundJid(bosh.map((b) => b.text));
  t.ok(bound, 'frank bound a resource');
  const sid = /sid=["']([^"']+)["']/.exec(onWire(bosh, 'received', 'sid=')[0]?.text ?? '')?.[1];
  t.ok(sid, 'the BOSH session id');
  await c.say(FRANK, 'before the reload');
  await openChat(frank, CAROL);
  await waitForMessage(frank, CAROL, 'before the reload');

  const mark = bosh.length;
  const reload = await reloadHeld(frank);
  // The new document has replaced the old one: what carol sends now must wait for the new page.
  await c.say(FRANK, 'during the reload 1');
  await c.say(FRANK, 'during the reload 2');
  await reload.release();
  await waitForMessage(frank, CAROL, 'during the reload 2', 20_000);
  const after = onWire(bosh, 'sent', '<body', mark);
  t.ok(after.length > 0, 'the reloaded page speaks BOSH');
  t.ok(after.every((b) => b.text.includes(`sid="${sid}"`) || b.text.includes(`sid='${sid}'`)), 'every request after the reload continues the same BOSH session');
  t.equal(onWire(bosh, 'sent', /<auth |xmpp-bind/, mark).length, 0, 'no new login or resource binding');
  t.same(await shownMessages(frank, CAROL), ['before the reload', 'during the reload 1', 'during the reload 2'], 'each message shown once, in order');
  t.ok(serverSession(server, bound!)?.conn, 'the session is still connected on the server');
  await sendChat(frank, CAROL, 'back after the reload');
  const got = await c.nextBody('frank\'s message after the reload');
  t.equal(got.getChildText('body'), 'back after the reload', 'carol gets what frank sends after the reload');
  await screenshot(frank, 'converse-bosh-reload');
});

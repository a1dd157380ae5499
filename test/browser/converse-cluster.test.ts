/**
 * The headline promise across processes (issue 14 with issue 15's client):
 * Converse.js 14 in real Chromium, configured as the README says, against
 * two gateway processes on one Redis and one PostgreSQL behind nginx in
 * round-robin (the README's location blocks). A reloaded page's new
 * WebSocket lands on the other process, which takes the XEP-0198 session
 * over from the one that held it; a reloaded BOSH page (keepalive) goes on
 * with the same BOSH session, its requests alternating between the two
 * processes (forwarded to the owner). Messages sent during the reload are
 * shown once each, in order.
 */
import t, { type Test } from 'tap';
import type { Browser, Page } from 'playwright-core';
import type { TestServer } from '../helpers/server.js';
import { launchBrowser, recordBosh, recordFrames, screenshot } from '../helpers/browser.js';
import {
  boundJid, conversePage, loginWithForm, openChat, reloadHeld, sendChat, serveConverse, shownMessages, waitForMessage,
  type ConverseConfigName,
} from '../helpers/converse.js';
import { withBalancedCluster, nodeWith } from '../helpers/e2e.js';
import { login as xmppjsLogin, xml, type XmlEl, type XmppJsClient } from '../helpers/xmppjs.js';
import { scrape, value } from '../helpers/metrics-text.js';
import { eventually } from '../helpers/eventually.js';

t.setTimeout(180_000);

// The site's config points Converse at the balancer (its port), which exists only once the cluster runs.
let balancerPort = 0;
const site = await serveConverse(t, () => ({ port: balancerPort }) as unknown as TestServer);
const { cluster, nginx, ownerOf, upstreams } = await withBalancedCluster(t, { nodes: 2, env: { ALLOWED_ORIGINS: site.origin, SM_RESUME_TIMEOUT: '60' } });
balancerPort = Number(new URL(nginx.httpUrl).port);
for (const user of ['erin', 'frank', 'carol']) await cluster.addUser(user, `${user}-pw`);
const browser: Browser = await launchBrowser(t);

const CAROL = 'carol@localhost';
interface Wire { readonly dir: 'sent' | 'received'; readonly text: string }
const onWire = (wire: readonly Wire[], dir: Wire['dir'], needle: string | RegExp, from = 0): Wire[] =>
  wire.slice(from).filter((w) => w.dir === dir && (typeof needle === 'string' ? w.text.includes(needle) : needle.test(w.text)));

/** A gateway process's own endpoints, for a client that must reach that one and not the balancer. */
const at = (id: string): TestServer => {
  const n = cluster.nodes.find((g) => g.id === id)!;
  return { wsUrl: n.wsUrl, httpUrl: n.httpUrl } as unknown as TestServer;
};
const other = (id: string): string => cluster.nodes.find((g) => g.id !== id)!.id;

/** Opens the README's `config` page, records its traffic and logs `user` in through Converse's form (through the balancer). */
async function converseLogin(tt: Test, config: ConverseConfigName, user: string): Promise<{ page: Page; wire: Wire[]; bound: string }> {
  const page = await conversePage(tt, browser);
  const wire: Wire[] = config === 'bosh' ? recordBosh(page) : recordFrames(page);
  await page.goto(site.url(config));
  await loginWithForm(page, `${user}@localhost`, `${user}-pw`);
  const bound = boundJid(wire.map((w) => w.text));
  if (bound === undefined) throw new Error(`${user}: no resource binding result seen on the wire`);
  return { page, wire, bound };
}

type Carol = XmppJsClient & { say(to: string, text: string): Promise<void>; nextBody(what: string): Promise<XmlEl> };

/** carol on @xmpp/client, logged in directly on the process `id` (not through the balancer, whose turn order the pages' connections use). */
async function carolOn(tt: Test, id: string): Promise<Carol> {
  const c = await xmppjsLogin(tt, at(id), { username: 'carol', password: 'carol-pw', resource: `node-${id}` });
  await c.xmpp.send(xml('presence'));
  return {
    ...c,
    say: (to, text) => c.xmpp.send(xml('message', { to, type: 'chat' }, xml('body', {}, text))),
    async nextBody(what) {
      // Converse also sends chat states (XEP-0085): messages without a body.
      for (;;) {
        const m = await c.inbox.next(what, 15_000);
        if (m.getChildText('body') !== null) return m;
      }
    },
  };
}

/**
 * carol writes to `jid` before the reload; once `ready()` holds, the page reloads with its script held;
 * once `gone()` holds, carol writes twice; then the new page loads and must show each of her messages
 * once, in order.
 */
async function reloadWhileCarolWrites(tt: Test, c: Carol, page: Page, jid: string, steps: { ready?: () => Promise<void>; gone?: () => Promise<void> }): Promise<void> {
  await c.say(jid, 'before the reload');
  await openChat(page, CAROL);
  await waitForMessage(page, CAROL, 'before the reload', 20_000);
  await steps.ready?.();
  const reload = await reloadHeld(page);
  await steps.gone?.();
  await c.say(jid, 'during the reload 1');
  await c.say(jid, 'during the reload 2');
  await reload.release();
  await waitForMessage(page, CAROL, 'during the reload 2', 30_000);
  tt.same(await shownMessages(page, CAROL), ['before the reload', 'during the reload 1', 'during the reload 2'], 'each message shown once, in order');
}

t.test("a Converse reload over WebSocket lands on the other process, which takes the XEP-0198 session over: nothing lost, nothing twice", async (t) => {
  const { page: erin, wire: frames, bound } = await converseLogin(t, 'websocket', 'erin');
  t.ok(onWire(frames, 'received', /<enabled [^>]*resume=["'](true|1)["']/).length > 0, 'Converse enabled resumable stream management');
  const first = await ownerOf(bound);
  const c = await carolOn(t, other(first));

  const mark = frames.length;
  // The old page's WebSocket is gone once its process hibernates the session; the new page's goes to the other process.
  await reloadWhileCarolWrites(t, c, erin, 'erin@localhost', {
    gone: () => eventually(() => nodeWith(cluster, (e) => e.event === 'session-hibernated' && e.jid === bound) >= 0,
      { timeout: 20_000, message: `${first} to hibernate ${bound}` }).then(() => undefined),
  });
  t.ok(onWire(frames, 'received', '<resumed', mark).length > 0, '<resumed/> on the wire');
  t.equal(onWire(frames, 'sent', 'urn:ietf:params:xml:ns:xmpp-bind', mark).length, 0, 'no resource binding after the reload');
  t.equal(onWire(frames, 'received', 'stream:error', mark).length, 0, 'no stream error since the reload');
  const now = await eventually(async () => { const o = await ownerOf(bound); return o !== first ? o : undefined; }, { timeout: 10_000, message: `${bound} to move off ${first}` }).catch(() => first);
  t.not(now, first, `the session moved from ${first} to the other process with the reloaded page's connection`);

  await sendChat(erin, CAROL, 'answer after the move');
  const got = await c.nextBody("erin's answer");
  t.equal(got.getChildText('body'), 'answer after the move', 'carol gets what erin sends after the resume');
  t.equal(got.attrs.from, bound, "from erin's bound full JID");
  await screenshot(erin, 'converse-cluster-websocket-reload');
});

t.test('a Converse reload over BOSH with keepalive goes on with the same BOSH session, its requests on both processes', async (t) => {
  const { page: frank, wire: bosh, bound } = await converseLogin(t, 'bosh', 'frank');
  const sid = /sid=["']([^"']+)["']/.exec(onWire(bosh, 'received', 'sid=')[0]?.text ?? '')?.[1];
  t.ok(sid, 'the BOSH session id');
  const owner = await ownerOf(bound);
  const c = await carolOn(t, other(owner));
  const ownerNode = cluster.nodes.find((n) => n.id === owner)!;
  // Reload while only the held request is out (converse.test.ts says why): the owner holds one and the page sent nothing for 500 ms.
  let seen = -1;
  let since = Date.now();
  const quiet = async (): Promise<void> => {
    await eventually(async () => {
      const sent = onWire(bosh, 'sent', '<body').length;
      if (sent !== seen) { seen = sent; since = Date.now(); }
      return Date.now() - since >= 500 && value(await scrape(ownerNode), 'xmpp_bosh_held_requests') > 0;
    }, { timeout: 20_000, message: 'a quiet BOSH exchange with one request held' });
  };

  const mark = bosh.length;
  const requestsBefore = upstreams().length;
  // reloadHeld returns once the new document has replaced the old one: what carol sends then waits for the new page.
  await reloadWhileCarolWrites(t, c, frank, 'frank@localhost', { ready: quiet });
  const after = onWire(bosh, 'sent', '<body', mark);
  t.ok(after.length > 0, 'the reloaded page speaks BOSH');
  t.ok(after.every((b) => b.text.includes(`sid="${sid}"`) || b.text.includes(`sid='${sid}'`)), 'every request after the reload continues the same BOSH session');
  t.equal(onWire(bosh, 'sent', /<auth |xmpp-bind/, mark).length, 0, 'no new login or resource binding');
  const got = await (async () => { await sendChat(frank, CAROL, 'back after the reload'); return c.nextBody("frank's answer"); })();
  t.equal(got.getChildText('body'), 'back after the reload', 'carol gets what frank sends after the reload');
  const ports = new Set(upstreams().slice(requestsBefore));
  t.equal(ports.size, 2, `the session's requests since the reload went to both processes (ports ${[...ports].join(', ')}): the other one forwarded its share`);
  t.equal(await ownerOf(bound), owner, 'the session stayed where it was (forwarded, not moved)');
  await screenshot(frank, 'converse-cluster-bosh-reload');
});

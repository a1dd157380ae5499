/**
 * The headline promise across processes (issue 14 with issue 15's client):
 * Converse.js 14 in real Chromium, configured as the README says, against
 * two gateway processes on one Redis and one PostgreSQL behind nginx in
 * round-robin (the README's location blocks). A reloaded page's new
 * WebSocket lands on the other process, which takes the XEP-0198 session
 * over from the one that held it; a reloaded BOSH page (keepalive) goes on
 * with the same BOSH session, its requests alternating between the two
 * processes (forwarded to the owner). Messages sent during the reload are
 * shown once each, in order. Last, kill -9 of the process that holds a
 * Converse session: Converse reconnects through the balancer to the
 * survivor and resumes there, and what was sent to it meanwhile is shown
 * once each.
 */
import t, { type Test } from 'tap';
import type { Browser, Page } from 'playwright-core';
import type { TestServer } from '../helpers/server.js';
import { launchBrowser, screenshot } from '../helpers/browser.js';
import {
  converseLogin as converseLoginAt, onWire, openChat, reloadHeld, sendChat, serveConverse, shownMessages, waitForMessage, type ConverseConfigName,
} from '../helpers/converse.js';
import { withBalancedCluster, nodeWith } from '../helpers/e2e.js';
import { createClient, within, xml, type XmlEl, type XmppJsClient } from '../helpers/xmppjs.js';
import { scrape, value } from '../helpers/metrics-text.js';
import { eventually } from '../helpers/eventually.js';

t.setTimeout(180_000);

// The site's config points Converse at the balancer (its port), which exists only once the cluster runs.
let balancerPort = 0;
const site = await serveConverse(t, () => ({ port: balancerPort }) as unknown as TestServer);
const { cluster, nginx, ownerOf, upstreams } = await withBalancedCluster(t, { nodes: 2, env: { ALLOWED_ORIGINS: site.origin, SM_RESUME_TIMEOUT: '60' } });
balancerPort = Number(new URL(nginx.httpUrl).port);
// One sender per scenario: a closed client's unacked stanzas go to its account's other resources or offline (XEP-0198), not to the next scenario's.
for (const user of ['erin', 'frank', 'gina', 'carol1', 'carol2', 'carol3']) await cluster.addUser(user, `${user}-pw`);
const browser: Browser = await launchBrowser(t);


/** A gateway process's own endpoints, for a client that must reach that one and not the balancer. */
const at = (id: string): TestServer => {
  const n = cluster.nodes.find((g) => g.id === id)!;
  return { wsUrl: n.wsUrl, httpUrl: n.httpUrl } as unknown as TestServer;
};
const other = (id: string): string => cluster.nodes.find((g) => g.id !== id)!.id;

const converseLogin = (tt: Test, config: ConverseConfigName, user: string) => converseLoginAt(tt, browser, site, config, user);

type Carol = XmppJsClient & { readonly bare: string; say(to: string, text: string): Promise<void>; nextBody(what: string): Promise<XmlEl> };

/** `name` on @xmpp/client, on nobody's roster, logged in directly on the process `id` (not through the balancer, whose turn order the pages' connections use). */
async function carolOn(tt: Test, name: string, id: string): Promise<Carol> {
  const c = createClient(tt, at(id), { username: name, password: `${name}-pw`, resource: `node-${id}` });
  // Beside Chromium and three server processes under the suite's other files, a login can take longer than the helpers' 5 s.
  await within(c.xmpp.start(), `xmpp.js login of ${name}`, 30_000);
  await c.xmpp.send(xml('presence'));
  return {
    ...c,
    bare: `${name}@localhost`,
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
  await openChat(page, c.bare);
  await waitForMessage(page, c.bare, 'before the reload', 20_000);
  await steps.ready?.();
  const reload = await reloadHeld(page);
  await steps.gone?.();
  await c.say(jid, 'during the reload 1');
  await c.say(jid, 'during the reload 2');
  await reload.release();
  await waitForMessage(page, c.bare, 'during the reload 2', 30_000);
  tt.same(await shownMessages(page, c.bare), ['before the reload', 'during the reload 1', 'during the reload 2'], 'each message shown once, in order');
}

t.test("a Converse reload over WebSocket lands on the other process, which takes the XEP-0198 session over: nothing lost, nothing twice", async (t) => {
  const { page: erin, wire: frames, bound } = await converseLogin(t, 'websocket', 'erin');
  t.ok(onWire(frames, 'received', /<enabled [^>]*resume=["'](true|1)["']/).length > 0, 'Converse enabled resumable stream management');
  const first = await ownerOf(bound);
  const c = await carolOn(t, 'carol1', other(first));

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

  await sendChat(erin, c.bare, 'answer after the move');
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
  const c = await carolOn(t, 'carol2', other(owner));
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
  // The old page's held request is gone once the owner no longer holds it: the browser's abort has come through nginx
  // and, for a forwarded request, the other process. A stanza that reached the owner before that went into the held
  // response, which no one reads (XEP-0124 §9: without the client's acks a connection manager cannot know).
  const released = async (): Promise<void> => {
    await eventually(async () => value(await scrape(ownerNode), 'xmpp_bosh_held_requests') === 0, { timeout: 20_000, message: 'the owner to let the old page\'s request go' });
  };
  await reloadWhileCarolWrites(t, c, frank, 'frank@localhost', { ready: quiet, gone: released });
  const after = onWire(bosh, 'sent', '<body', mark);
  t.ok(after.length > 0, 'the reloaded page speaks BOSH');
  t.ok(after.every((b) => b.text.includes(`sid="${sid}"`) || b.text.includes(`sid='${sid}'`)), 'every request after the reload continues the same BOSH session');
  t.equal(onWire(bosh, 'sent', /<auth |xmpp-bind/, mark).length, 0, 'no new login or resource binding');
  const got = await (async () => { await sendChat(frank, c.bare, 'back after the reload'); return c.nextBody("frank's answer"); })();
  t.equal(got.getChildText('body'), 'back after the reload', 'carol gets what frank sends after the reload');
  const ports = new Set(upstreams().slice(requestsBefore));
  t.equal(ports.size, 2, `the session's requests since the reload went to both processes (ports ${[...ports].join(', ')}): the other one forwarded its share`);
  t.equal(await ownerOf(bound), owner, 'the session stayed where it was (forwarded, not moved)');
  await screenshot(frank, 'converse-cluster-bosh-reload');
});

t.test('kill -9 of the process holding a Converse session: Converse reconnects to the survivor and resumes there, nothing lost, nothing twice', async (t) => {
  const { page: gina, wire: frames, bound } = await converseLogin(t, 'websocket', 'gina');
  const owner = await ownerOf(bound);
  const survivor = other(owner);
  const c = await carolOn(t, 'carol3', survivor);
  await c.say('gina@localhost', 'before the crash');
  await openChat(gina, c.bare);
  await waitForMessage(gina, c.bare, 'before the crash', 20_000);

  const mark = frames.length;
  const exit = await cluster.kill(cluster.nodes.findIndex((n) => n.id === owner));
  t.equal(exit.signal, 'SIGKILL', `${owner} killed`);
  // Sent to a session whose process is gone: they wait in Redis (its inbox, its SM queue) for the resumption.
  await c.say('gina@localhost', 'after the crash 1');
  await c.say('gina@localhost', 'after the crash 2');
  await waitForMessage(gina, c.bare, 'after the crash 2', 60_000);
  t.same(await shownMessages(gina, c.bare), ['before the crash', 'after the crash 1', 'after the crash 2'], 'each message shown once, in order');
  t.ok(onWire(frames, 'received', '<resumed', mark).length > 0, 'Converse resumed its XEP-0198 session (<resumed/>)');
  t.equal(onWire(frames, 'sent', 'urn:ietf:params:xml:ns:xmpp-bind', mark).length, 0, 'no new resource binding: the session lives on');
  t.equal(await ownerOf(bound), survivor, `the session is now on ${survivor}`);
  await sendChat(gina, c.bare, 'alive on the survivor');
  t.equal((await c.nextBody("gina's answer")).getChildText('body'), 'alive on the survivor', 'carol gets what gina sends after the resumption');
  await screenshot(gina, 'converse-cluster-kill-resumed');
});

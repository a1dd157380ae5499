/**
 * Converse.js 14 in real Chromium keeps its state in the user's PEP (and
 * its avatar in the vCard, as Converse does): a bookmark and an avatar set
 * on one page are there after a fresh login on a new page (a new browser
 * context: nothing cached, no resumption), and no PEP request of either
 * page gets service-unavailable.
 */
import t, { type Test } from 'tap';
import type { Page } from 'playwright-core';
import { launchBrowser, recordFrames, type Frame } from '../helpers/browser.js';
import { conversePage, converseAliceAndBob, loginWithForm } from '../helpers/converse.js';
import { eventually } from '../helpers/eventually.js';

const ROOM = 'lobby@conference.localhost';
// A 1×1 PNG.
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=';

const { server, site } = await converseAliceAndBob(t);
const browser = await launchBrowser(t);

/**
 * The README's WebSocket page with one plugin more, which hands the test
 * Converse's own API (what its bookmark and profile views call).
 */
async function alicePage(tt: Test): Promise<{ page: Page; frames: Frame[] }> {
  const page = await conversePage(tt, browser);
  const frames = recordFrames(page);
  // Before any script of the page: when Converse's bundle sets the global `converse`, its initialize()
  // first registers the plugin (Converse's documented plugin API) and whitelists it.
  await page.addInitScript(() => {
    type Converse = { initialize(config: object): unknown; plugins: { add(name: string, plugin: object): void } };
    let real: Converse | undefined;
    Object.defineProperty(globalThis, 'converse', {
      configurable: true,
      get: () => real,
      set(value: Converse) {
        real = value;
        // The bundle sets the global more than once, to the same object: wrap it once.
        if ((value as { probed?: boolean }).probed) return;
        (value as { probed?: boolean }).probed = true;
        const initialize = value.initialize.bind(value);
        value.initialize = (config: { whitelisted_plugins?: string[] }) => {
          value.plugins.add('pep-probe', { initialize(this: { _converse: unknown }) { (globalThis as Record<string, unknown>).__converse = this._converse; } });
          return initialize({ ...config, whitelisted_plugins: [...(config.whitelisted_plugins ?? []), 'pep-probe'] });
        };
      },
    });
  });
  await page.goto(site.url('websocket'));
  await loginWithForm(page, 'alice@localhost', 'alice-pw');
  // The probe is waited for, not assumed (seen undefined once on a loaded machine).
  await page.waitForFunction(() => (globalThis as Record<string, unknown>).__converse !== undefined, undefined, { timeout: 15_000 });
  return { page, frames };
}

/** Ids of the pubsub IQs a page sent that were answered with service-unavailable. */
function pepServiceUnavailable(frames: readonly Frame[]): string[] {
  const ids = new Set(frames.filter((f) => f.dir === 'sent' && f.text.includes('http://jabber.org/protocol/pubsub'))
    .map((f) => /<iq [^>]*id=["']([^"']+)["']/.exec(f.text)?.[1]).filter((id): id is string => id !== undefined));
  return frames.filter((f) => f.dir === 'received' && f.text.includes('service-unavailable'))
    .map((f) => /<iq [^>]*id=["']([^"']+)["']/.exec(f.text)?.[1] ?? '').filter((id) => ids.has(id));
}

type Probe = { api: { bookmarks: { set(a: object): Promise<unknown>; get(jid: string): Promise<{ get(k: string): unknown } | undefined> };
  vcard: { set(jid: string, d: object): Promise<unknown>; get(jid: string, force?: boolean): Promise<{ image?: string } | null> } } };

t.test('a bookmark and an avatar set in Converse are there after a fresh login on a new page', async (t) => {
  const first = await alicePage(t);
  await first.page.evaluate(async ({ room, png }) => {
    const probe = (globalThis as unknown as { __converse: Probe }).__converse;
    await probe.api.bookmarks.set({ jid: room, name: 'The Lobby', autojoin: false, nick: 'al' });
    await probe.api.vcard.set('alice@localhost', { fn: 'Alice', nickname: 'al', image: png, image_type: 'image/png' });
  }, { room: ROOM, png: PNG });
  // Converse publishes in the background: wait until the gateway has stored both.
  await eventually(async () => (await server.storage.pep.items('localhost', 'alice', 'urn:xmpp:bookmarks:1')).length > 0, { timeout: 10_000, message: 'the bookmark in PEP' });
  await eventually(async () => (await server.storage.vcards.get('localhost', 'alice'))?.includes(PNG), { timeout: 10_000, message: 'the avatar in the vCard' });
  // Converse takes urn:xmpp:bookmarks:1 once #compat is advertised (XEP-0402 §5.3), with max_items=max (#config-node-max).
  t.same((await server.storage.pep.items('localhost', 'alice', 'urn:xmpp:bookmarks:1')).map((i) => i.id), [ROOM], 'one XEP-0402 item per room');
  t.equal((await server.storage.pep.node('localhost', 'alice', 'urn:xmpp:bookmarks:1'))?.maxItems, server.config.pepMaxItemsPerNode, "max_items='max'");
  t.same(pepServiceUnavailable(first.frames), [], 'no PEP request of the first page got service-unavailable');
  await first.page.context().close();

  const second = await alicePage(t);
  const kept = await second.page.evaluate(async ({ room }) => {
    const probe = (globalThis as unknown as { __converse: Probe }).__converse;
    const bookmark = await probe.api.bookmarks.get(room);
    const vcard = await probe.api.vcard.get('alice@localhost', true);
    return { name: bookmark?.get('name'), nick: bookmark?.get('nick'), image: vcard?.image };
  }, { room: ROOM });
  t.same(kept, { name: 'The Lobby', nick: 'al', image: PNG }, 'the bookmark and the avatar, read back by Converse');
  t.same(pepServiceUnavailable(second.frames), [], 'no PEP request of the new page got service-unavailable');
  t.ok(second.frames.some((f) => f.dir === 'sent' && f.text.includes('<items') && f.text.includes('bookmarks')), 'the new page asked PEP for its bookmarks');
});

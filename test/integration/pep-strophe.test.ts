/**
 * The PEP nodes Converse, Conversations and Dino use, end to end with
 * strophe.js (alice over BOSH, bob over WebSocket): XEP-0402 bookmarks with
 * max_items=max kept across a fresh login, an XEP-0084 avatar (metadata
 * notified, data fetched by id), an XEP-0172 nick, an OMEMO device list
 * with open access, and XEP-0484-style popular reactions.
 */
import t, { type Test } from 'tap';
import { Strophe, $iq, $pres } from 'strophe.js';
import { withUsers, type TestServer } from '../helpers/server.js';
import { eventually, within } from '../helpers/eventually.js';
// im-clients installs the XMLHttpRequest strophe.js needs in Node for BOSH, and quiets its logging.
import type { DomEl } from '../helpers/im-clients.js';
import '../helpers/im-clients.js';
import { befriend, CAPS_NODE, clientFeatures, clientVer, NS_CAPS, NS_DISCO_INFO, NS_EVENT, NS_PUBSUB } from '../helpers/pep-kit.js';

type Builder = ReturnType<typeof $iq>;

const BOOKMARKS = 'urn:xmpp:bookmarks:1';
const AVATAR_DATA = 'urn:xmpp:avatar:data';
const AVATAR_META = 'urn:xmpp:avatar:metadata';
const NICK = 'http://jabber.org/protocol/nick';
const DEVICES = 'eu.siacs.conversations.axolotl.devicelist';
const REACTIONS = 'urn:xmpp:reactions:popular:0';
const PUBLISH_OPTIONS = `${NS_PUBSUB}#publish-options`;

interface StropheClient {
  jid: string;
  events: DomEl[];
  sendIQ(iq: Builder): Promise<DomEl>;
}

/** strophe.js logged in, answering disco#info for its caps and keeping every PEP event it gets. */
async function connect(t: Test, server: TestServer, user: string, transport: 'bosh' | 'websocket', notify: string[]): Promise<StropheClient> {
  const conn = transport === 'bosh' ? new Strophe.Connection(`${server.httpUrl}/http-bind`) : new Strophe.Connection(server.wsUrl, { protocol: 'ws' });
  const connected = new Promise<void>((resolve, reject) => {
    conn.connect(`${user}@localhost/${transport}`, `${user}-pw`, (status: number) => {
      if (status === Strophe.Status.CONNECTED) resolve();
      else if ([Strophe.Status.AUTHFAIL, Strophe.Status.CONNFAIL].includes(status)) reject(new Error(`strophe.js login of ${user}: ${status}`));
    });
  });
  t.teardown(() => { if (conn.connected) conn.disconnect(); });
  await within(connected, `strophe.js login of ${user}`);
  const features = clientFeatures(notify);
  conn.addHandler((iq: DomEl) => {
    const reply = $iq({ type: 'result', id: iq.getAttribute('id')!, to: iq.getAttribute('from')! })
      .c('query', { xmlns: NS_DISCO_INFO, node: iq.getElementsByTagName('query')[0]?.getAttribute('node') ?? '' })
      .c('identity', { category: 'client', type: 'web', name: 'pep-test' }).up();
    for (const f of features) reply.c('feature', { var: f }).up();
    conn.send(reply);
    return true;
  }, NS_DISCO_INFO, 'iq', 'get');
  const events: DomEl[] = [];
  conn.addHandler((m: DomEl) => { events.push(m); return true; }, null, 'message', 'headline');
  conn.send($pres().c('c', { xmlns: NS_CAPS, hash: 'sha-1', node: CAPS_NODE, ver: clientVer(features) }));
  const sendIQ = (iq: Builder) => within(new Promise<DomEl>((resolve, reject) => {
    conn.sendIQ(iq, (r: unknown) => resolve(r as DomEl), (e: unknown) => reject(new Error(`strophe.js IQ failed: ${e ? Strophe.serialize(e as never) : 'timeout'}`)), 5000);
  }), 'an IQ reply at strophe.js');
  return { jid: conn.jid, events, sendIQ };
}

/** A publish as Converse sends it: the item, then publish-options. */
function publish(node: string, id: string, payload: (b: Builder) => Builder, options: Record<string, string> = {}): Builder {
  const iq = payload($iq({ type: 'set' }).c('pubsub', { xmlns: NS_PUBSUB }).c('publish', { node }).c('item', { id })).up().up().up();
  if (Object.keys(options).length === 0) return iq;
  iq.c('publish-options').c('x', { xmlns: 'jabber:x:data', type: 'submit' })
    .c('field', { var: 'FORM_TYPE', type: 'hidden' }).c('value').t(PUBLISH_OPTIONS).up().up();
  for (const [name, value] of Object.entries(options)) iq.c('field', { var: name }).c('value').t(value).up().up();
  return iq;
}

const items = (node: string, to?: string, attrs: Record<string, string> = {}): Builder =>
  $iq({ type: 'get', ...(to ? { to } : {}) }).c('pubsub', { xmlns: NS_PUBSUB }).c('items', { node, ...attrs });
const ids = (el: DomEl): string[] => Array.from(el.getElementsByTagName('item')).map((i) => i.getAttribute('id')!);
const eventFor = (c: StropheClient, node: string): DomEl | undefined =>
  c.events.find((m) => Array.from(m.getElementsByTagName('items')).some((i) => i.getAttribute('node') === node));

const server = await withUsers(t, ['alice', 'bob']);
await befriend(server, 'alice', 'bob');

t.test('bookmarks (XEP-0402) with max_items=max keep every conference, across a fresh login', async (t) => {
  const bookmarkOptions = { 'pubsub#persist_items': 'true', 'pubsub#max_items': 'max', 'pubsub#send_last_published_item': 'never', 'pubsub#access_model': 'whitelist' };
  const alice = await connect(t, server, 'alice', 'bosh', [BOOKMARKS]);
  for (const room of ['one@muc.localhost', 'two@muc.localhost']) {
    await alice.sendIQ(publish(BOOKMARKS, room, (b) => b.c('conference', { xmlns: BOOKMARKS, name: room, autojoin: 'true' }).c('nick').t('al').up(), bookmarkOptions));
  }
  await eventually(() => eventFor(alice, BOOKMARKS), { message: 'the bookmark notification at the owner' });
  const again = await connect(t, server, 'alice', 'websocket', [BOOKMARKS]);
  const got = await again.sendIQ(items(BOOKMARKS));
  t.same(ids(got), ['one@muc.localhost', 'two@muc.localhost'], 'both bookmarks, not only the last');
  t.equal(got.getElementsByTagName('conference')[0]?.getAttribute('autojoin'), 'true');
});

t.test('an avatar (XEP-0084): the contact is notified of the metadata and fetches the data by id; nick, device list and reactions', async (t) => {
  const alice = await connect(t, server, 'alice', 'bosh', []);
  const bob = await connect(t, server, 'bob', 'websocket', [AVATAR_META, NICK, DEVICES]);
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex').toString('base64');
  const hash = '2d8f0a8f0c1f3c8d6f2ea6a1c1b33a1d5a7ef4b1';
  await alice.sendIQ(publish(AVATAR_DATA, hash, (b) => b.c('data', { xmlns: AVATAR_DATA }).t(png)));
  await alice.sendIQ(publish(AVATAR_META, hash, (b) => b.c('metadata', { xmlns: AVATAR_META }).c('info', { id: hash, bytes: '16', type: 'image/png', width: '1', height: '1' }).up()));
  await alice.sendIQ(publish(NICK, 'current', (b) => b.c('nick', { xmlns: NICK }).t('Alice')));
  await alice.sendIQ(publish(DEVICES, 'current', (b) => b.c('list', { xmlns: 'eu.siacs.conversations.axolotl' }).c('device', { id: '1234' }).up(), { 'pubsub#access_model': 'open' }));
  await alice.sendIQ(publish(REACTIONS, 'current', (b) => b.c('reactions', { xmlns: REACTIONS }).c('reaction').t('🎉').up()));

  const meta = await eventually(() => eventFor(bob, AVATAR_META), { message: 'the avatar metadata event at bob' });
  t.equal(meta.getElementsByTagName('info')[0]?.getAttribute('id'), hash);
  t.equal(meta.getElementsByTagName('event')[0]?.getAttribute('xmlns'), NS_EVENT);
  const data = await bob.sendIQ($iq({ type: 'get', to: 'alice@localhost' }).c('pubsub', { xmlns: NS_PUBSUB }).c('items', { node: AVATAR_DATA }).c('item', { id: hash }));
  t.equal(data.getElementsByTagName('data')[0]?.textContent, png, 'the avatar data by id');
  t.equal((await eventually(() => eventFor(bob, NICK), { message: 'the nick at bob' })).getElementsByTagName('nick')[0]?.textContent, 'Alice');
  t.equal((await eventually(() => eventFor(bob, DEVICES), { message: 'the device list at bob' })).getElementsByTagName('device')[0]?.getAttribute('id'), '1234');
  t.equal(eventFor(bob, REACTIONS), undefined, 'no reactions event: bob\'s caps do not ask for it');
  const reactions = await alice.sendIQ(items(REACTIONS, undefined, { max_items: '1' }));
  t.equal(reactions.getElementsByTagName('reaction')[0]?.textContent, '🎉', 'the owner reads the reactions back');
});

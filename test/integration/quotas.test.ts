/**
 * Byte quotas on a real port, with raw RFC 7395 clients and the SQLite
 * store (its triggers keep the offline counters): a flood to an offline
 * account is cut at MAX_OFFLINE_BYTES with resource-constraint to the
 * sender; an over-size roster item is not-acceptable (RFC 6121 §2.3.3) and
 * a roster at MAX_ROSTER_BYTES refuses what would grow it.
 */
import t, { type Test } from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { openSqliteStorage } from '../../src/storage/index.js';
import { withUsers, type TestServer } from '../helpers/server.js';
import { RawWsClient, stanzaErrorCondition } from '../helpers/ws-client.js';
import { waitUntil } from '../helpers/eventually.js';

const PASSWORD = 'secret';
const OFFLINE_BYTES = 16384;
const ROSTER_BYTES = 16384;

async function start(t: Test, users: string[]): Promise<TestServer> {
  return withUsers(t, Object.fromEntries(users.map((u) => [u, PASSWORD])), {
    ALLOW_INSECURE_PLAIN: 'true', MAX_OFFLINE_BYTES: String(OFFLINE_BYTES), MAX_ROSTER_BYTES: String(ROSTER_BYTES),
  }, openSqliteStorage(t.testdir()));
}

async function connect(t: Test, server: TestServer, user: string): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.close());
  await c.login(user, PASSWORD, 'r');
  return c;
}

/** JID (12 bytes) + name and groups (4084 bytes) = 4096 bytes: four of them fill ROSTER_BYTES exactly. */
const fullItem = (jid: string, extra = '') =>
  `<item jid='${jid}' name='${'n'.repeat(1024)}'>${['a', 'b', 'c'].map((g) => `<group>${g.repeat(1020)}</group>`).join('')}${extra}</item>`;

/** Sends an IQ and returns its answer. */
async function iq(c: RawWsClient, type: 'get' | 'set', id: string, payload: string): Promise<XmlElement> {
  c.send(`<iq xmlns='jabber:client' type='${type}' id='${id}'>${payload}</iq>`);
  return c.until((el) => el.local === 'iq' && el.attr('id') === id);
}

const rosterSet = (item: string) => `<query xmlns='${NS.ROSTER}'>${item}</query>`;
const errorType = (el: XmlElement) => el.getChild('error')?.attr('type');

t.test('a flood of large messages to an offline account is cut at MAX_OFFLINE_BYTES: resource-constraint to the sender, nothing partial stored', async (t) => {
  const server = await start(t, ['alice', 'bob']);
  const alice = await connect(t, server, 'alice');
  const body = 'x'.repeat(1000);
  const N = 40;
  for (let i = 0; i < N; i++) alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m${i}'><body>${body}</body></message>`);
  // Each message is either stored or bounced: wait until all N are accounted for.
  const bounced: XmlElement[] = [];
  const accounted = async () => (await server.storage.offline.count('localhost', 'bob')) + bounced.length === N;
  while (!(await accounted())) bounced.push(await alice.until((el) => el.local === 'message' && el.attr('type') === 'error', 5000));

  const stored = await server.storage.offline.list('localhost', 'bob');
  const usage = await server.storage.offline.usage('localhost', 'bob');
  const one = Buffer.byteLength(stored[0]!.stanza);
  t.ok(stored.length > 0 && stored.length < N, `some were stored (${stored.length}), not all`);
  t.equal(usage.bytes, stored.reduce((n, m) => n + Buffer.byteLength(m.stanza), 0), 'the counter is the bytes stored');
  t.ok(usage.bytes <= OFFLINE_BYTES && usage.bytes + one > OFFLINE_BYTES, `cut at the quota (${usage.bytes} bytes)`);
  t.same(bounced.map((m) => m.attr('id')), Array.from({ length: N - stored.length }, (_, i) => `m${stored.length + i}`), 'the ones beyond, in order');
  for (const m of bounced) {
    t.equal(stanzaErrorCondition(m), 'resource-constraint');
    t.equal(errorType(m), 'wait');
  }

  // Delivery frees the room: the counter follows the store's removal.
  const bob = await connect(t, server, 'bob');
  bob.send(`<presence xmlns='jabber:client'/>`);
  for (let i = 0; i < stored.length; i++) await bob.until((el) => el.local === 'message' && el.attr('id') === `m${i}`, 5000);
  await waitUntil(async () => (await server.storage.offline.count('localhost', 'bob')) === 0, { timeout: 2000 });
  t.same(await server.storage.offline.usage('localhost', 'bob'), { messages: 0, bytes: 0 }, 'delivered and removed: usage is zero');
  bob.close();
  await bob.waitClosed();

  // User deletion clears the counter; a new account of that name has the whole quota.
  await server.storage.users.delete('localhost', 'bob');
  t.same(await server.storage.offline.usage('localhost', 'bob'), { messages: 0, bytes: 0 }, 'gone with the account');
  await server.addUser('bob', PASSWORD);
  for (let i = 0; i < stored.length; i++) alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='n${i}'><body>${body}</body></message>`);
  await waitUntil(async () => (await server.storage.offline.count('localhost', 'bob')) >= stored.length, { timeout: 2000 });
  t.equal(await server.storage.offline.count('localhost', 'bob'), stored.length, 'the recreated account takes as many again');
});

t.test('a roster item whose name and groups exceed MAX_ROSTER_ITEM_BYTES is not-acceptable and nothing is stored', async (t) => {
  const server = await start(t, ['alice']);
  const alice = await connect(t, server, 'alice');
  // Each part is within the per-name and per-group character limits; together they are 7.4 KB.
  const groups = Array.from({ length: 64 }, (_, i) => `<group>${String(i).padStart(100, 'g')}</group>`).join('');
  const big = await iq(alice, 'set', 'big', rosterSet(`<item jid='bob@localhost' name='${'n'.repeat(1000)}'>${groups}</item>`));
  t.equal(stanzaErrorCondition(big), 'not-acceptable');
  t.equal(errorType(big), 'modify');
  // 'é' is two bytes: 2050 characters are 4100 bytes, over 4096 although fewer characters than bytes.
  const wide = await iq(alice, 'set', 'wide', rosterSet(`<item jid='carol@localhost' name='${'é'.repeat(1000)}'><group>${'é'.repeat(1000)}</group><group>${'é'.repeat(50)}</group></item>`));
  t.equal(stanzaErrorCondition(wide), 'not-acceptable', 'bytes count, not characters');
  t.same((await server.storage.rosters.load('localhost', 'alice')).items, [], 'nothing stored');
  const get = await iq(alice, 'get', 'get', `<query xmlns='${NS.ROSTER}'/>`);
  t.same(get.getChild('query', NS.ROSTER)!.getChildren(), [], 'nor on the roster');
  const fits = await iq(alice, 'set', 'fits', rosterSet(`<item jid='bob@localhost' name='${'é'.repeat(1000)}'><group>${'é'.repeat(1000)}</group></item>`));
  t.equal(fits.attr('type'), 'result', 'an item within the limit is accepted');
});

t.test('a roster at MAX_ROSTER_BYTES refuses what would grow it (roster set, subscribe) with not-allowed; shrinking still works', async (t) => {
  const server = await start(t, ['alice', 'dave']);
  const alice = await connect(t, server, 'alice');
  for (const n of [1, 2, 3, 4]) t.equal((await iq(alice, 'set', `c${n}`, rosterSet(fullItem(`c${n}@localhost`)))).attr('type'), 'result', `item ${n} fits`);
  const fifth = await iq(alice, 'set', 'c5', rosterSet(`<item jid='c5@localhost'/>`));
  t.equal(stanzaErrorCondition(fifth), 'not-allowed', 'a fifth item does not');
  t.equal(errorType(fifth), 'cancel');
  const grow = await iq(alice, 'set', 'grow', rosterSet(fullItem('c1@localhost', '<group>more</group>')));
  t.equal(stanzaErrorCondition(grow), 'not-allowed', 'nor does growing an item');

  alice.send(`<presence xmlns='jabber:client' to='dave@localhost' type='subscribe' id='sub'/>`);
  const refused = await alice.until((el) => el.local === 'presence' && el.attr('type') === 'error');
  t.equal(stanzaErrorCondition(refused), 'not-allowed', 'a subscribe that would add an item is refused too');
  const stored = await server.storage.rosters.load('localhost', 'alice');
  t.same(stored.items.map((i) => [i.jid, i.groups.length]), [1, 2, 3, 4].map((n) => [`c${n}@localhost`, 3]), 'nothing of the refused changes stored');

  t.equal((await iq(alice, 'set', 'shrink', rosterSet(`<item jid='c1@localhost' name='short'/>`))).attr('type'), 'result', 'shrinking an item works');
  t.equal((await iq(alice, 'set', 'c5b', rosterSet(`<item jid='c5@localhost'/>`))).attr('type'), 'result', 'and makes room again');
});

t.test('a subscription request to a contact whose roster is at MAX_ROSTER_BYTES is refused with resource-constraint and not kept', async (t) => {
  const server = await start(t, ['alice', 'carol']);
  const carol = await connect(t, server, 'carol');
  for (const n of [1, 2, 3, 4]) t.equal((await iq(carol, 'set', `c${n}`, rosterSet(fullItem(`c${n}@localhost`)))).attr('type'), 'result');
  carol.close();
  await carol.waitClosed();
  const alice = await connect(t, server, 'alice');
  alice.send(`<presence xmlns='jabber:client' to='carol@localhost' type='subscribe' id='sub'/>`);
  const refused = await alice.until((el) => el.local === 'presence' && el.attr('type') === 'error');
  t.equal(stanzaErrorCondition(refused), 'resource-constraint');
  t.equal(errorType(refused), 'wait');
  t.same((await server.storage.rosters.load('localhost', 'carol')).pending, [], 'the request is not kept at the contact');
});

/**
 * The XEP-0191 JID matching rules of the in-memory account, and its roster
 * bytes. (The RosterStore and BlocklistStore contracts are in test/storage/.)
 */
import t from 'tap';
import { createMemoryStorage, deriveStoredCredentials, type StoredCredentials } from '../../src/storage/index.js';
import { Account, blocks } from '../../src/xmpp/features/roster/account.js';
import { parseJid } from '../../src/jid/index.js';
import { itemBytes, pendingBytes } from '../../src/xmpp/features/roster/quota.js';

let creds: StoredCredentials;
t.before(async () => { creds = await deriveStoredCredentials('pw', 4096); });

const item = (jid: string, more: Record<string, unknown> = {}) => ({
  jid, name: undefined, groups: [] as string[], subscription: 'none' as const, ask: false, approved: false, ...more,
});

t.test('XEP-0191 JID matching: full, bare, domain/resource and domain entries', async (t) => {
  const log = { error() {}, warn() {}, info() {}, debug() {} } as never;
  const stores = createMemoryStorage();
  const account = (list: string[]) => new Account('localhost', 'alice', false, { version: 0, items: [], pending: [] }, list, stores, log);
  const cases: Array<[string[], string, boolean]> = [
    [['romeo@montague.lit/orchard'], 'romeo@montague.lit/orchard', true],
    [['romeo@montague.lit/orchard'], 'romeo@montague.lit/garden', false],
    [['romeo@montague.lit/orchard'], 'romeo@montague.lit', false],
    [['romeo@montague.lit'], 'romeo@montague.lit/any', true],
    [['romeo@montague.lit'], 'romeo@montague.lit', true],
    [['romeo@montague.lit'], 'tybalt@montague.lit', false],
    [['montague.lit/chat'], 'montague.lit/chat', true],
    // Read as XEP-0016 and ejabberd do: the stanza's JID is compared in its four forms, domain/resource among them.
    [['montague.lit/chat'], 'romeo@montague.lit/chat', true],
    [['montague.lit/chat'], 'romeo@montague.lit/home', false],
    [['montague.lit'], 'romeo@montague.lit/x', true],
    [['montague.lit'], 'montague.lit', true],
    [['montague.lit'], 'capulet.lit', false],
    [['localhost'], 'alice@localhost/other', false],
  ];
  for (const [list, jid, expected] of cases) {
    t.equal(blocks(account(list), parseJid(jid)), expected, `[${list.join(', ')}] ${expected ? 'blocks' : 'lets through'} ${jid}`);
  }
});

t.test('an account keeps its roster bytes (MAX_ROSTER_BYTES) right through every change, and a reload agrees', async (t) => {
  const log = { error() {}, warn() {}, info() {}, debug() {} } as never;
  const stores = createMemoryStorage();
  await stores.users.create('localhost', 'alice', creds);
  const a = new Account('localhost', 'alice', false, { version: 0, items: [], pending: [] }, [], stores, log);
  const recount = (acc: Account) => [...acc.items.values()].reduce((n, i) => n + itemBytes(i), 0) + [...acc.pending.values()].reduce((n, p) => n + pendingBytes(p), 0);
  // 'é' is two bytes: 13 (JID) + 4 (name) + 1 + 2 (groups).
  await a.saveItem(item('bob@localhost', { name: 'éé', groups: ['x', 'é'] }));
  t.equal(a.bytes, 20);
  await a.saveItem(item('bob@localhost', { name: 'b' }));
  t.equal(a.bytes, 14, 'replacing an item counts the new one only');
  await a.addPending({ jid: 'eve@localhost', stanza: '<presence/>' });
  await a.addPending({ jid: 'eve@localhost', stanza: '<presence type="subscribe"/>' });
  t.equal(a.bytes, 14 + 13 + 28, 'replacing a pending request too');
  await a.saveItem(item('carol@localhost'));
  t.equal(a.bytes, recount(a));
  await a.deleteItem('bob@localhost');
  await a.deleteItem('nobody@localhost');
  await a.dropPending('eve@localhost');
  await a.dropPending('eve@localhost');
  t.equal(a.bytes, 15, 'removals subtract once; unknown ones nothing');
  await a.addPending({ jid: 'eve@localhost', stanza: '<presence/>' });
  const reloaded = new Account('localhost', 'alice', false, await stores.rosters.load('localhost', 'alice'), [], stores, log);
  t.equal(reloaded.bytes, a.bytes, 'a reload computes the same');
});

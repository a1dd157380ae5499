/**
 * The in-memory account: its roster bytes, and the XEP-0191 JID matching of
 * the blocklist that blocking loads with it (an account part). (The
 * RosterStore and BlocklistStore contracts are in test/storage/.)
 */
import t from 'tap';
import { createMemoryStorage, deriveStoredCredentials, type StoredCredentials } from '../../src/storage/index.js';
import { Account } from '../../src/xmpp/features/accounts/account.js';
import { Blocklists } from '../../src/xmpp/features/blocking/blocklist.js';
import { parseJid } from '../../src/jid/index.js';
import { itemBytes, pendingBytes } from '../../src/xmpp/features/accounts/quota.js';
import { Accounts } from '../../src/xmpp/features/accounts/accounts.js';
import { SessionManager } from '../../src/xmpp/session-manager.js';
import { createVolatileAccountStores } from '../../src/storage/memory/index.js';

let creds: StoredCredentials;
t.before(async () => { creds = await deriveStoredCredentials('pw', 4096); });

const item = (jid: string, more: Record<string, unknown> = {}) => ({
  jid, name: undefined, groups: [] as string[], subscription: 'none' as const, ask: false, approved: false, ...more,
});

/** A log that says nothing (what the tests check is state, not lines). */
const log = { error() {}, warn() {}, info() {}, debug() {} } as never;

t.test('XEP-0191 JID matching: full, bare, domain/resource and domain entries', async (t) => {
  const stores = createMemoryStorage();
  const lists = new Blocklists({ blocklists: stores.blocklists, anonymous: stores.blocklists });
  const account = (list: string[]) => new Account('localhost', 'alice', false, { version: 0, items: [], pending: [] }, stores.rosters, log, new Map([[lists, new Set(list)]]));
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
    t.equal(lists.isBlocked(account(list), parseJid(jid)), expected, `[${list.join(', ')}] ${expected ? 'blocks' : 'lets through'} ${jid}`);
  }
});

t.test('an account keeps its roster bytes (MAX_ROSTER_BYTES) right through every change, and a reload agrees', async (t) => {
  const stores = createMemoryStorage();
  await stores.users.create('localhost', 'alice', creds);
  const a = new Account('localhost', 'alice', false, { version: 0, items: [], pending: [] }, stores.rosters, log);
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
  const reloaded = new Account('localhost', 'alice', false, await stores.rosters.load('localhost', 'alice'), stores.rosters, log);
  t.equal(reloaded.bytes, a.bytes, 'a reload computes the same');
});

t.test('the accounts service loads a part (the blocklist) with the account, and a reload waits for the part\'s writes', async (t) => {
  const stores = createMemoryStorage();
  const volatile = createVolatileAccountStores();
  await stores.blocklists.add('localhost', 'alice', ['eve@localhost']);
  const lists = new Blocklists({ blocklists: stores.blocklists, anonymous: volatile.blocklists });
  const accounts = new Accounts(stores, volatile, new SessionManager(), log, [lists]);
  const a = await accounts.acquire('localhost', 'alice', false);
  t.same([...lists.of(a)], ['eve@localhost'], 'loaded from the store with the roster');
  void lists.block(a, ['mallory@localhost']);
  accounts.release(a);
  t.equal(accounts.size, 0, 'the last release drops it');
  const again = await accounts.acquire('localhost', 'alice', false);
  t.not(again, a, 'a fresh account');
  t.same([...lists.of(again)].sort(), ['eve@localhost', 'mallory@localhost'], 'the block written before the release is there');
  accounts.release(again);

  const anon = await accounts.acquire('localhost', 'anon-1', true);
  await lists.block(anon, ['eve@localhost']);
  t.same(await stores.blocklists.list('localhost', 'anon-1'), [], 'an anonymous account writes to the volatile store only');
  accounts.release(anon);
  await anon.flushed();
  await new Promise((r) => setImmediate(r));
  t.same(await volatile.blocklists.list('localhost', 'anon-1'), [], 'and it is purged after its last release');
});

t.test('a reload keeps the newest state: one read at a time per account, and read again when a local write overlapped it', async (t) => {
  const stores = createMemoryStorage();
  // Each load reads the store when called and answers once its gate (if any) opens: a slow PostgreSQL read.
  const gates: Promise<void>[] = [];
  const read = stores.rosters.load.bind(stores.rosters);
  stores.rosters.load = async (host, username) => {
    const snapshot = await read(host, username);
    await gates.shift();
    return snapshot;
  };
  const accounts = new Accounts(stores, createVolatileAccountStores(), new SessionManager(), log);
  const a = await accounts.acquire('localhost', 'alice', false);
  const tick = () => new Promise((r) => setImmediate(r));

  let open!: () => void;
  gates.push(new Promise((r) => { open = r; }));
  const first = accounts.reload('localhost', 'alice');
  await tick();
  await a.saveItem(item('bob@localhost')); // this node's write, stored while the reload's read is out
  open();
  await first;
  t.ok(a.items.has('bob@localhost'), 'a read that overlapped a local write is not applied over it');

  gates.push(new Promise((r) => { open = r; }));
  const slow = accounts.reload('localhost', 'alice');
  await tick();
  await stores.rosters.putItem('localhost', 'alice', item('carol@localhost'), 99); // another node's change
  const fast = accounts.reload('localhost', 'alice');
  open();
  await Promise.all([slow, fast]);
  t.ok(a.items.has('carol@localhost'), 'the later reload\'s state stays, though the earlier read answered last');
  t.equal(a.version, 99);
  accounts.release(a);
});

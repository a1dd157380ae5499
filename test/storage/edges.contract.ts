/**
 * Where SQL dialects differ, over every port (edges.test.ts runs it on every
 * backend): text order of non-ASCII JIDs (code point order, astral above
 * BMP), case and equality of text keys, empty strings (never NULL), values
 * at the limits of their types, large values, characters outside the BMP.
 */
import type { Test } from 'tap';
import type { PepNodeConfig } from '../../src/storage/index.js';
import { NOW, openFor, withAccounts, type MakeStorage } from './backends.js';

const H = 'example.com';
// U+1F600 sorts after U+FFFD in code points (and UTF-8 bytes), before it in UTF-16 code units;
// 'é' (U+00E9) after 'z'; upper case before lower case (no case folding, no locale).
const JIDS = ['z@example.com', 'Z@example.com', 'é@example.com', '\u{1F600}@example.com', '\uFFFD@example.com', 'a%_\\@example.com'];
const SORTED = ['Z@example.com', 'a%_\\@example.com', 'z@example.com', 'é@example.com', '\uFFFD@example.com', '\u{1F600}@example.com'];
const CONFIG: PepNodeConfig = { accessModel: 'presence', persistItems: true, maxItems: 10, rosterGroupsAllowed: [] };
const item = (jid: string, more: Record<string, unknown> = {}) => ({
  jid, name: undefined as string | undefined, groups: [] as string[], subscription: 'none' as const, ask: false, approved: false, ...more,
});

export function edgesContract(t: Test, makeStorage: MakeStorage): void {
  t.test('accounts: listed in code point order, case kept apart, non-ASCII names', async (t) => {
    const s = await openFor(t, makeStorage);
    const names = ['zoë', 'Zoe', 'zoe', '\u{1F600}', '\uFFFD', 'a_%'];
    await withAccounts(s, ...names);
    t.same((await s.users.list(H)).map((u) => u.username), ['Zoe', 'a_%', 'zoe', 'zoë', '\uFFFD', '\u{1F600}']);
    t.equal(await s.users.get(H, 'ZOE'), undefined, 'no case folding');
    t.equal((await s.users.get(H, '\u{1F600}'))?.username, '\u{1F600}');
    t.equal(await s.users.get(H, 'a__'), undefined, 'no pattern matching');
  });

  t.test('roster: items and pending requests in code point order; names, groups and empty strings kept', async (t) => {
    const s = await openFor(t, makeStorage);
    await withAccounts(s, 'alice');
    let v = 0;
    for (const jid of JIDS) await s.rosters.putItem(H, 'alice', item(jid, { name: jid === 'z@example.com' ? '' : jid, groups: ['', '\u{1F600}', 'é'] }), ++v);
    for (const jid of JIDS) await s.rosters.putPending(H, 'alice', { jid, stanza: `<presence from="${jid}" type="subscribe"/>` });
    const roster = await s.rosters.load(H, 'alice');
    t.same(roster.items.map((i) => i.jid), SORTED);
    t.same(roster.pending.map((p) => p.jid), SORTED);
    t.equal(roster.items.find((i) => i.jid === 'z@example.com')?.name, '', 'an empty name stays empty, not absent');
    t.same(roster.items[0]!.groups, ['', '\u{1F600}', 'é']);
    await s.rosters.putItem(H, 'alice', item('big@example.com'), 2 ** 53 - 1);
    t.equal((await s.rosters.load(H, 'alice')).version, 2 ** 53 - 1, 'a version up to the largest safe integer');
  });

  t.test('blocklist: code point order, case kept apart', async (t) => {
    const s = await openFor(t, makeStorage);
    await withAccounts(s, 'alice');
    await s.blocklists.add(H, 'alice', JIDS);
    t.same(await s.blocklists.list(H, 'alice'), SORTED);
    await s.blocklists.remove(H, 'alice', ['Z@EXAMPLE.COM', 'a%%@example.com']);
    t.same(await s.blocklists.list(H, 'alice'), SORTED, 'only exact JIDs are removed');
  });

  t.test('archive: with is exact, stamps to the millisecond, large and astral stanzas kept', async (t) => {
    const s = await openFor(t, makeStorage);
    await withAccounts(s, 'alice');
    const big = `<message xmlns="jabber:client"><body>${'\u{1F600}é'.repeat(100_000)}</body></message>`;
    const at = 8_640_000_000_000_000; // the last millisecond a Date can hold
    await s.archive.append(JIDS.map((jid, i) => ({ host: H, username: 'alice', id: `id-${i}`, with: jid, at: NOW + i, stanza: i === 0 ? big : `<message xmlns="jabber:client"/>` })));
    await s.archive.append([{ host: H, username: 'alice', id: 'late', with: 'z@example.com', at, stanza: '<message xmlns="jabber:client"/>' }]);
    const q = async (rest: Record<string, unknown>) => {
      const page = await s.archive.query(H, 'alice', { limit: 50, direction: 'forward', ...rest });
      return typeof page === 'string' ? page : page.messages;
    };
    t.same((await q({ with: 'Z@example.com' }) as Array<{ id: string }>).map((m) => m.id), ['id-1'], 'with is case-sensitive (JIDs come normalised)');
    t.same((await q({ with: 'a%_\\@example.com' }) as Array<{ id: string }>).map((m) => m.id), ['id-5'], 'no pattern matching');
    t.same((await q({ with: '\u{1F600}@example.com' }) as Array<{ id: string }>).map((m) => m.id), ['id-3']);
    t.equal((await q({ ids: ['id-0'] }) as Array<{ stanza: string }>)[0]?.stanza, big, 'a large stanza with astral characters round-trips');
    t.same((await q({ start: NOW + 2, end: NOW + 3 }) as Array<{ id: string }>).map((m) => m.id), ['id-2', 'id-3'], 'start and end to the millisecond');
    t.same((await q({ start: at }) as Array<{ id: string; at: number }>).map((m) => [m.id, m.at]), [['late', at]], 'the largest stamp kept exactly');
    t.equal(await q({ ids: ['ID-0'] }), 'item-not-found', 'ids are case-sensitive');
    t.equal(await q({ page: { after: '' } }), 'item-not-found', 'an empty id is no id');
  });

  t.test('offline: bytes of astral characters, large stanzas', async (t) => {
    const s = await openFor(t, makeStorage);
    await withAccounts(s, 'alice');
    const stanza = `<message>${'\u{1F600}'.repeat(250_000)}</message>`;
    t.equal(await s.offline.push(H, 'alice', stanza, { maxMessages: 10, maxBytes: 1_000_019 }), true);
    t.same(await s.offline.usage(H, 'alice'), { messages: 1, bytes: 1_000_019 }, 'four bytes each in UTF-8');
    t.equal((await s.offline.list(H, 'alice'))[0]?.stanza, stanza);
    t.equal((await s.offline.list(H, 'alice'))[0]?.storedAt, NOW);
    t.same(await s.offline.list(H, 'alice', { limit: 0 }), [], 'a page of none');
  });

  t.test('pep: item ids and node names exact, empty and astral; large payloads', async (t) => {
    const s = await openFor(t, makeStorage);
    await withAccounts(s, 'alice');
    const node = 'urn:x:\u{1F600}';
    await s.pep.configure(H, 'alice', node, { ...CONFIG, rosterGroupsAllowed: ['', 'é'] });
    t.equal(await s.pep.node(H, 'alice', 'urn:x:\uFFFD'), undefined);
    const payload = `<x>${'é'.repeat(500_000)}</x>`;
    for (const id of ['A', 'a', '', '\u{1F600}']) await s.pep.publish(H, 'alice', node, { id, payload: id === '' ? payload : `<i id="${id}"/>` }, 10);
    t.same((await s.pep.items(H, 'alice', node)).map((i) => i.id), ['A', 'a', '', '\u{1F600}'], 'ids are exact');
    t.equal((await s.pep.items(H, 'alice', node, { ids: [''] }))[0]?.payload, payload);
    t.same((await s.pep.node(H, 'alice', node))?.rosterGroupsAllowed, ['', 'é']);
    t.equal(await s.pep.retract(H, 'alice', node, 'A'), true);
    t.same((await s.pep.items(H, 'alice', node)).map((i) => i.id), ['a', '', '\u{1F600}']);
  });

  t.test('vCard: an empty document is kept as such; large ones too', async (t) => {
    const s = await openFor(t, makeStorage);
    await withAccounts(s, 'alice', 'bob');
    await s.vcards.set(H, 'alice', '');
    t.equal(await s.vcards.get(H, 'alice'), '', 'empty, not absent');
    const big = `<vCard xmlns="vcard-temp"><PHOTO><BINVAL>${'A'.repeat(2_000_000)}</BINVAL></PHOTO></vCard>`;
    await s.vcards.set(H, 'bob', big);
    t.equal(await s.vcards.get(H, 'bob'), big);
  });

  t.test('FAST tokens and stale h: the whole range of their numbers, exact keys', async (t) => {
    const s = await openFor(t, makeStorage);
    await withAccounts(s, 'alice');
    const token = { host: H, username: 'alice', agent: 'é-agent', mechanism: 'HT-SHA-256-NONE', storedKey: 'AbC', serverKey: 'k', expiresAt: 8_640_000_000_000_000 };
    await s.fastTokens.issue(token, 10);
    t.same(await s.fastTokens.find(H, 'alice', 'AbC'), { ...token, slot: 'new' });
    t.equal(await s.fastTokens.find(H, 'alice', 'abc'), undefined, 'stored keys are exact');
    await s.smState.setStaleH('SMID', 7, 8_640_000_000_000_000);
    t.equal(await s.smState.getStaleH('smid'), undefined, 'smids are exact');
    t.equal(await s.smState.collectStaleH(8_640_000_000_000_000 - 1), 0);
    t.equal(await s.smState.collectStaleH(8_640_000_000_000_000), 1);
  });

  t.test('writes for an account that does not exist leave nothing: an account made later under the name starts empty', async (t) => {
    const s = await openFor(t, makeStorage);
    const tries: Array<[string, () => Promise<unknown>]> = [
      ['offline push', () => s.offline.push(H, 'ghost', '<message/>', 10)],
      ['roster item', () => s.rosters.putItem(H, 'ghost', item('bob@example.com', { subscription: 'both' }), 3)],
      ['roster pending', () => s.rosters.putPending(H, 'ghost', { jid: 'bob@example.com', stanza: '<presence/>' })],
      ['blocklist', () => s.blocklists.add(H, 'ghost', ['bob@example.com'])],
      ['vCard', () => s.vcards.set(H, 'ghost', '<vCard xmlns="vcard-temp"/>')],
      ['PEP node', () => s.pep.configure(H, 'ghost', 'n', CONFIG)],
      ['archive prefs', () => s.archive.setPrefs(H, 'ghost', { default: 'never', always: [], never: [] })],
      ['archive', () => s.archive.append([{ host: H, username: 'ghost', id: 'x', with: 'bob@example.com', at: NOW, stanza: '<message/>' }])],
      ['FAST token', () => s.fastTokens.issue({ host: H, username: 'ghost', agent: 'a', mechanism: 'HT-SHA-256-NONE', storedKey: 'k', serverKey: 'k', expiresAt: NOW + 1000 }, 10)],
    ];
    // Refused (SQL: the account's foreign key) or dropped: either way, nothing is kept.
    for (const [, write] of tries) await write().catch(() => undefined);
    await withAccounts(s, 'ghost');
    t.same(await s.offline.usage(H, 'ghost'), { messages: 0, bytes: 0 }, 'no offline message');
    t.same(await s.rosters.load(H, 'ghost'), { version: 0, items: [], pending: [] }, 'an empty roster');
    t.same(await s.blocklists.list(H, 'ghost'), [], 'an empty blocklist');
    t.equal(await s.vcards.get(H, 'ghost'), undefined, 'no vCard');
    t.same(await s.pep.nodes(H, 'ghost'), [], 'no PEP node');
    t.same(await s.archive.getPrefs(H, 'ghost'), { default: 'always', always: [], never: [] }, 'the default archive prefs');
    t.same(await s.archive.bounds(H, 'ghost'), { first: undefined, last: undefined }, 'an empty archive');
    t.equal(await s.fastTokens.find(H, 'ghost', 'k'), undefined, 'no FAST token');
  });
}

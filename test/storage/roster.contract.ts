/**
 * The roster port contract (RFC 6121 items, pending requests, the XEP-0237
 * version), run by roster.test.ts over every backend.
 */
import type { Test } from 'tap';
import { openFor, withAccounts, type MakeStorage } from './backends.js';

const item = (jid: string, more: Record<string, unknown> = {}) => ({
  jid, name: undefined, groups: [] as string[], subscription: 'none' as const, ask: false, approved: false, ...more,
});

export function rosterContract(t: Test, makeStorage: MakeStorage): void {
  t.test('a roster stores items, pending requests and the version', async (t) => {
    const s = await openFor(t, makeStorage);
    await withAccounts(s, 'alice');
    t.same(await s.rosters.load('example.com', 'alice'), { version: 0, items: [], pending: [] }, 'a new roster is empty, version 0');
    await s.rosters.putItem('example.com', 'alice', item('zed@example.com', { name: 'Zed', groups: ['B', 'A'], subscription: 'both' }), 5);
    await s.rosters.putItem('example.com', 'alice', item('amy@example.com', { ask: true, approved: true, subscription: 'from' }), 6);
    await s.rosters.putPending('example.com', 'alice', { jid: 'pat@example.com', stanza: '<presence/>' });
    const loaded = await s.rosters.load('example.com', 'alice');
    t.equal(loaded.version, 6);
    t.same(loaded.items, [
      item('amy@example.com', { ask: true, approved: true, subscription: 'from' }),
      item('zed@example.com', { name: 'Zed', groups: ['B', 'A'], subscription: 'both' }),
    ], 'sorted by JID, every field kept, group order kept');
    t.same(loaded.pending, [{ jid: 'pat@example.com', stanza: '<presence/>' }]);

    await s.rosters.putItem('example.com', 'alice', item('zed@example.com', { name: 'Z' }), 7);
    await s.rosters.removeItem('example.com', 'alice', 'amy@example.com', 8);
    await s.rosters.removePending('example.com', 'alice', 'pat@example.com');
    const after = await s.rosters.load('example.com', 'alice');
    t.same(after, { version: 8, items: [item('zed@example.com', { name: 'Z' })], pending: [] }, 'replaced, removed, version moved');
    const copy = (await s.rosters.load('example.com', 'alice')).items[0]!;
    copy.groups.push('mutated');
    t.same((await s.rosters.load('example.com', 'alice')).items[0]!.groups, [], 'loads are copies');
    t.same(await s.rosters.load('example.com', 'bob'), { version: 0, items: [], pending: [] }, 'rosters are per account');
  });

  t.test('a roster goes with its account', async (t) => {
    const s = await openFor(t, makeStorage);
    await withAccounts(s, 'alice');
    await s.rosters.putItem('example.com', 'alice', item('bob@example.com'), 1);
    await s.rosters.putPending('example.com', 'alice', { jid: 'pat@example.com', stanza: '<presence/>' });
    await s.users.delete('example.com', 'alice');
    await withAccounts(s, 'alice');
    t.same(await s.rosters.load('example.com', 'alice'), { version: 0, items: [], pending: [] }, 'a new account of the same name starts empty');
  });
}

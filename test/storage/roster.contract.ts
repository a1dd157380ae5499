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

  t.test("deleting an account ends the other rosters' subscriptions with it and withdraws its requests", async (t) => {
    // Prosody (mod_presence, user-deleted) and ejabberd (mod_roster, remove_user): as if the deleted
    // account had sent unsubscribe and unsubscribed to each contact (RFC 6121 §3.2, §3.3).
    const s = await openFor(t, makeStorage);
    await withAccounts(s, 'alice', 'bob', 'carol', 'dave', 'erin');
    const A = 'alice@example.com';
    await s.rosters.putItem('example.com', 'bob', item(A, { name: 'Al', groups: ['Friends'], subscription: 'both' }), 10);
    await s.rosters.putItem('example.com', 'bob', item('carol@example.com', { subscription: 'to' }), 11);
    await s.rosters.putItem('example.com', 'carol', item(A, { subscription: 'from', ask: true }), 20);
    await s.rosters.putPending('example.com', 'carol', { jid: A, stanza: '<presence type="subscribe"/>' });
    await s.rosters.putPending('example.com', 'carol', { jid: 'bob@example.com', stanza: '<presence type="subscribe"/>' });
    await s.rosters.putItem('example.com', 'dave', item(A, { approved: true }), 30);
    await s.rosters.putItem('example.com', 'erin', item(A, { name: 'plain' }), 40);
    await s.rosters.putItem('example.com', 'alice', item('bob@example.com', { subscription: 'both' }), 50);

    await s.users.delete('example.com', 'alice');

    const bob = await s.rosters.load('example.com', 'bob');
    t.same(bob.items, [
      item(A, { name: 'Al', groups: ['Friends'] }),
      item('carol@example.com', { subscription: 'to' }),
    ], "bob's item stays (name, groups) with subscription none; his other items are untouched");
    t.not(bob.version, 11, "bob's roster version moved (XEP-0237: a cached roster is not current)");
    const carol = await s.rosters.load('example.com', 'carol');
    t.same(carol.items, [item(A)], 'from + Pending Out becomes none, the request it waited on gone with it');
    t.same(carol.pending, [{ jid: 'bob@example.com', stanza: '<presence type="subscribe"/>' }], "the deleted account's request is withdrawn, others stay");
    t.not(carol.version, 20);
    const dave = await s.rosters.load('example.com', 'dave');
    t.same(dave.items, [item(A)], 'a pre-approval of the deleted account is gone: a new account of the name is someone else');
    t.not(dave.version, 30);
    t.same(await s.rosters.load('example.com', 'erin'), { version: 40, items: [item(A, { name: 'plain' })], pending: [] },
      'an item with nothing to end is left alone, version and all');

    await withAccounts(s, 'alice');
    t.same(await s.rosters.load('example.com', 'alice'), { version: 0, items: [], pending: [] }, 'the new alice starts empty');
    t.same((await s.rosters.load('example.com', 'bob')).items[0], item(A, { name: 'Al', groups: ['Friends'] }), 'and inherits no subscription');
  });
}

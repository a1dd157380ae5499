/** The message archive port contract (XEP-0313), run by archive.test.ts over every backend. */
import type { Test } from 'tap';
import type { ArchiveEntry, ArchiveStore } from '../../src/storage/index.js';
import { openFor, withAccounts, type MakeStorage } from './backends.js';

const H = 'example.com';
/** Message i of alice's archive: with bob when i is even, carol when odd; one second apart. */
const entry = (i: number, username = 'alice'): ArchiveEntry => ({
  host: H, username, id: `m${i}`, with: i % 2 === 0 ? 'bob@example.com' : 'carol@example.com', at: 1000 * i, stanza: `<message xmlns="jabber:client"><body>${i}</body></message>`,
});
const ids = (page: Awaited<ReturnType<ArchiveStore['query']>>): string[] | string => (typeof page === 'string' ? page : page.messages.map((m) => m.id));

export function archiveContract(t: Test, makeStorage: MakeStorage): void {
  t.test('ArchiveStore', async (t) => {
    const storage = await openFor(t, makeStorage);
    await withAccounts(storage, 'alice', 'bob');
    const archive = storage.archive;
    // 1..10 for alice, 3 for bob, one for an account that does not exist (skipped, not failing the batch).
    await archive.append([...Array.from({ length: 10 }, (_, i) => entry(i + 1)), entry(1, 'nobody'), ...[1, 2, 3].map((i) => entry(i, 'bob'))]);

    t.test('a forward page is the oldest messages, oldest first, with the count and complete', async (t) => {
      const page = await archive.query(H, 'alice', { limit: 4, direction: 'forward' });
      t.same(ids(page), ['m1', 'm2', 'm3', 'm4']);
      t.match(page, { complete: false, count: 10 });
      t.same(typeof page === 'string' ? undefined : page.messages[0], { id: 'm1', with: 'carol@example.com', at: 1000, stanza: entry(1).stanza });
    });

    t.test('a backward page is the newest messages, still oldest first', async (t) => {
      const page = await archive.query(H, 'alice', { limit: 4, direction: 'backward' });
      t.same(ids(page), ['m7', 'm8', 'm9', 'm10']);
      t.match(page, { complete: false });
    });

    t.test('paging after and before an id walks the whole archive; the last page is complete', async (t) => {
      t.same(ids(await archive.query(H, 'alice', { limit: 4, direction: 'forward', page: { after: 'm8' } })), ['m9', 'm10']);
      t.match(await archive.query(H, 'alice', { limit: 4, direction: 'forward', page: { after: 'm8' } }), { complete: true, count: 10 });
      t.same(ids(await archive.query(H, 'alice', { limit: 4, direction: 'backward', page: { before: 'm7' } })), ['m3', 'm4', 'm5', 'm6']);
      t.match(await archive.query(H, 'alice', { limit: 4, direction: 'backward', page: { before: 'm3' } }), { complete: true });
    });

    t.test('filters: with, start/end, after-id/before-id, ids', async (t) => {
      t.same(ids(await archive.query(H, 'alice', { limit: 10, direction: 'forward', with: 'bob@example.com' })), ['m2', 'm4', 'm6', 'm8', 'm10']);
      t.match(await archive.query(H, 'alice', { limit: 2, direction: 'forward', with: 'bob@example.com', page: { after: 'm4' } }), { count: 5, complete: false });
      t.same(ids(await archive.query(H, 'alice', { limit: 10, direction: 'forward', start: 3000, end: 5000 })), ['m3', 'm4', 'm5']);
      t.same(ids(await archive.query(H, 'alice', { limit: 10, direction: 'forward', start: 99_000 })), []);
      t.same(ids(await archive.query(H, 'alice', { limit: 10, direction: 'forward', afterId: 'm7' })), ['m8', 'm9', 'm10']);
      t.same(ids(await archive.query(H, 'alice', { limit: 10, direction: 'forward', beforeId: 'm3' })), ['m1', 'm2']);
      t.same(ids(await archive.query(H, 'alice', { limit: 10, direction: 'forward', ids: ['m9', 'm2'] })), ['m2', 'm9']);
      t.equal(await archive.query(H, 'alice', { limit: 10, direction: 'forward', ids: ['m9', 'nope'] }), 'item-not-found', 'XEP-0313 §4.1.1');
    });

    t.test('an unknown id to start from is item-not-found; archives are per account', async (t) => {
      t.equal(await archive.query(H, 'alice', { limit: 4, direction: 'forward', page: { after: 'zzz' } }), 'item-not-found');
      t.equal(await archive.query(H, 'bob', { limit: 4, direction: 'forward', afterId: 'm9' }), 'item-not-found', "alice's ids are not bob's");
      t.same(ids(await archive.query(H, 'bob', { limit: 10, direction: 'forward' })), ['m1', 'm2', 'm3']);
      t.same(ids(await archive.query(H, 'nobody', { limit: 10, direction: 'forward' })), []);
    });

    t.test('bounds are the first and last message', async (t) => {
      t.same(await archive.bounds(H, 'alice'), { first: { id: 'm1', with: 'carol@example.com', at: 1000 }, last: { id: 'm10', with: 'bob@example.com', at: 10_000 } });
      t.same(await archive.bounds(H, 'nobody'), { first: undefined, last: undefined });
    });

    t.test('prefs default to always, and are kept', async (t) => {
      t.same(await archive.getPrefs(H, 'alice'), { default: 'always', always: [], never: [] });
      await archive.setPrefs(H, 'alice', { default: 'roster', always: ['x@y'], never: ['z@y'] });
      t.same(await archive.getPrefs(H, 'alice'), { default: 'roster', always: ['x@y'], never: ['z@y'] });
    });

    t.test('trim keeps the newest; expire deletes by age, both bounded by limit', async (t) => {
      t.equal(await archive.trim(H, 'alice', 6, 3), 3, 'three of the four beyond six, at most');
      t.same(ids(await archive.query(H, 'alice', { limit: 10, direction: 'forward' })), ['m4', 'm5', 'm6', 'm7', 'm8', 'm9', 'm10']);
      t.equal(await archive.trim(H, 'alice', 6, 100), 1);
      t.equal(await archive.trim(H, 'alice', 6, 100), 0);
      // Older than 6.5 s: alice's m5 and m6 (the oldest two rows), bob's m1..m3 (stored after alice's).
      t.equal(await archive.expire(6500, 2), 2, 'among the oldest two rows, both old');
      t.equal(await archive.expire(6500, 100), 3, "then bob's among the next hundred");
      t.same(ids(await archive.query(H, 'alice', { limit: 10, direction: 'forward' })), ['m7', 'm8', 'm9', 'm10']);
      t.same(ids(await archive.query(H, 'bob', { limit: 10, direction: 'forward' })), []);
    });

    t.test('the archive and prefs go with the account', async (t) => {
      await storage.users.delete(H, 'alice');
      t.same(ids(await archive.query(H, 'alice', { limit: 10, direction: 'forward' })), []);
      await withAccounts(storage, 'alice');
      t.same(await archive.getPrefs(H, 'alice'), { default: 'always', always: [], never: [] });
    });
  });
}

/** The message archive port contract (XEP-0313), run by archive.test.ts over every backend. */
import type { Test } from 'tap';
import type { ArchiveEntry, ArchiveStore } from '../../src/storage/index.js';
import { openFor, withAccounts, type MakeStorage } from './backends.js';
import { archiveIdFor, KEYS_PER_MS } from '../../src/storage/ports/archive-ids.js';

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

  t.test('ArchiveStore: ids that carry their seq (as the server numbers them) after older random ones', async (t) => {
    const storage = await openFor(t, makeStorage);
    await withAccounts(storage, 'dave', 'erin');
    const archive = storage.archive;
    const T0 = 1_800_000_000_000;
    const stanza = '<message xmlns="jabber:client"><body>x</body></message>';
    // Older rows: random ids, no seq, stamped 1 to 3 s.
    await archive.append([1, 2, 3].map((i) => ({ host: H, username: 'dave', id: `old${i}`, with: 'erin@example.com', at: 1000 * i, stanza })));
    // Today's: erin writes to dave; n1 and n2 share a millisecond (keys n and n + 1). Each message
    // is in both archives under one id: dave's copy at seq 2 × key, erin's at 2 × key + 1.
    const stamps = [T0, T0 + 1000, T0 + 1000, T0 + 2000, T0 + 3000];
    const made = stamps.map((at, i) => ({ at, key: at * KEYS_PER_MS + (i === 2 ? 1 : 0) })).map(({ at, key }) => ({ at, key, id: archiveIdFor(key) }));
    await archive.append(made.flatMap(({ at, key, id }) => [
      { host: H, username: 'dave', id, seq: 2 * key, with: 'erin@example.com', at, stanza },
      { host: H, username: 'erin', id, seq: 2 * key + 1, with: 'dave@example.com', at, stanza },
    ]));
    const n = made.map((m) => m.id);
    const q = (rest: Partial<Parameters<ArchiveStore['query']>[2]>) => archive.query(H, 'dave', { limit: 20, direction: 'forward', ...rest });
    t.same(ids(await q({})), ['old1', 'old2', 'old3', ...n], 'older rows first, then in the order numbered');
    t.same(ids(await q({ afterId: n[1] })), n.slice(2), 'after-id of a new id');
    t.same(ids(await q({ afterId: 'old2' })), ['old3', ...n], 'after-id of an older id');
    t.same(ids(await q({ page: { before: n[0] }, direction: 'backward', limit: 2 })), ['old2', 'old3'], 'RSM before across the two kinds');
    t.same(ids(await q({ ids: [n[3]!, 'old2', n[2]!] })), ['old2', n[2], n[3]], 'ids of both kinds');
    t.same(ids(await q({ start: T0 + 1000, end: T0 + 2000 })), n.slice(1, 4), 'start/end, two in one millisecond');
    t.same(ids(await q({ start: 2000 })), ['old2', 'old3', ...n], 'a start among the older rows');
    t.same(ids(await q({ end: 2500 })), ['old1', 'old2'], 'an end among the older rows');
    t.same(ids(await q({ start: T0 + 3001 })), [], 'a start after everything');
    const forged = `${made[1]!.key.toString(36)}.AAAAAAAA`;
    t.equal(await q({ afterId: forged }), 'item-not-found', 'the right seq with another random part is not the id');
    t.same(ids(await archive.query(H, 'erin', { limit: 20, direction: 'forward', afterId: n[3] })), [n[4]], "the sender's copy under the same id");
    t.same(await archive.bounds(H, 'dave'), { first: { id: 'old1', with: 'erin@example.com', at: 1000 }, last: { id: n[4], with: 'erin@example.com', at: T0 + 3000 } });
    t.equal(await archive.newestAt?.(), T0 + 3000, 'the newest stamp, to number after (every backend: stamps never go back across a restart)');
  });

  t.test('ArchiveStore: one append of many entries (several INSERT statements) keeps every row and its order', async (t) => {
    const storage = await openFor(t, makeStorage);
    await withAccounts(storage, 'frank', 'grace');
    const archive = storage.archive;
    const T0 = 1_800_000_000_000;
    // 301 messages, both archives each, and every 50th entry for an account that does not exist:
    // 602 rows in one batch, over chunk boundaries of any multi-row statement (SQLite: 64 rows).
    // As the server writes them: a message's two entries side by side, one id, one stanza.
    const batch = Array.from({ length: 301 }, (_, i) => ({ at: T0 + i, key: (T0 + i) * KEYS_PER_MS })).flatMap(({ at, key }, i) => {
      const id = archiveIdFor(key);
      const stanza = `<message xmlns="jabber:client"><body>${i}</body></message>`;
      return [
        { host: H, username: i % 50 === 7 ? 'nobody' : 'frank', id, seq: 2 * key, with: 'grace@example.com', at, stanza },
        { host: H, username: 'grace', id, seq: 2 * key + 1, with: 'frank@example.com', at, stanza },
      ];
    });
    await archive.append(batch);
    const all = async (username: string) => {
      const page = await archive.query(H, username, { limit: 1000, direction: 'forward' });
      return typeof page === 'string' ? [] : page.messages.map((m) => m.stanza);
    };
    const bodies = (xs: string[]) => xs.map((s) => Number(/<body>(\d+)</.exec(s)?.[1]));
    const everyOne = Array.from({ length: 301 }, (_, i) => i);
    t.same(bodies(await all('grace')), everyOne, "the sender's 301, in order");
    t.same(bodies(await all('frank')), everyOne.filter((i) => i % 50 !== 7), 'the recipient\'s, without the rows of an account that does not exist');
  });

  t.test('ArchiveStore: remove of ids of the older form (no seq) takes them from one account only', async (t) => {
    const storage = await openFor(t, makeStorage);
    await withAccounts(storage, 'alice', 'bob');
    const archive = storage.archive;
    await archive.append([1, 2, 3].flatMap((i) => [entry(i), entry(i, 'bob')]));
    t.equal(await archive.remove(H, 'bob', ['m2', 'm9']), 1, 'the one id bob has');
    t.same(ids(await archive.query(H, 'bob', { limit: 10, direction: 'forward' })), ['m1', 'm3']);
    t.same(ids(await archive.query(H, 'alice', { limit: 10, direction: 'forward' })), ['m1', 'm2', 'm3'], "alice's m2 stays");
    t.equal(await archive.remove(H, 'bob', []), 0);
  });

  t.test('ArchiveStore: a message kept by both accounts: conversations, trim, expire and deletion take one side', async (t) => {
    const storage = await openFor(t, makeStorage);
    await withAccounts(storage, 'ann', 'ben', 'cat');
    const archive = storage.archive;
    const T0 = 1_800_000_000_000;
    // 0–5 ann → ben, 6–7 cat → ann, 8 ann → ann (her own archive only, once), 9 ben → dan (no such account:
    // ben's copy only). Entries as the server writes them: the recipient's (seq 2 × key), then the sender's.
    const parties = [...Array(6).fill(['ann', 'ben']), ['cat', 'ann'], ['cat', 'ann'], ['ann', 'ann'], ['ben', 'dan']] as Array<[string, string]>;
    const made = parties.map(([from, to], i) => ({ from, to, at: T0 + 1000 * i, key: (T0 + 1000 * i) * KEYS_PER_MS }))
      .map((m) => ({ ...m, id: archiveIdFor(m.key), stanza: `<message xmlns="jabber:client" from="${m.from}@example.com/r" to="${m.to}@example.com"><body>${m.key}</body></message>` }));
    await archive.append(made.flatMap((m) => [
      { host: H, username: m.to, id: m.id, seq: 2 * m.key, with: `${m.from}@example.com`, at: m.at, stanza: m.stanza },
      ...(m.from === m.to ? [] : [{ host: H, username: m.from, id: m.id, seq: 2 * m.key + 1, with: `${m.to}@example.com`, at: m.at, stanza: m.stanza }]),
    ]));
    const n = made.map((m) => m.id);
    const of = async (username: string, rest: Partial<Parameters<ArchiveStore['query']>[2]> = {}) =>
      ids(await archive.query(H, username, { limit: 50, direction: 'forward', ...rest }));
    t.same(await of('ann'), n.slice(0, 9), "ann's: what she sent, received, and wrote to herself once");
    t.same(await of('ben'), [...n.slice(0, 6), n[9]], "ben's: received from ann, and sent to an account that does not exist");
    t.same(await of('ann', { with: 'ben@example.com' }), n.slice(0, 6), 'with: one conversation');
    t.same(await of('ann', { with: 'cat@example.com' }), n.slice(6, 8));
    t.same(await of('ann', { with: 'ann@example.com' }), [n[8]], 'with: herself');
    t.same(await of('cat', { with: 'ann@example.com', direction: 'backward', limit: 1 }), [n[7]], "the other side's copy, paged backward");
    t.same(await of('ann', { with: 'nobody@example.com' }), [], 'with: a JID never archived');
    t.match(await archive.query(H, 'ann', { limit: 2, direction: 'backward', with: 'ben@example.com' }), { count: 6, complete: false });
    t.same((await archive.query(H, 'ben', { limit: 1, direction: 'backward' }) as { messages: Array<{ with: string }> }).messages.map((m) => m.with), ['dan@example.com'], 'with names the other party');

    t.equal(await archive.remove(H, 'ben', [n[1]!, n[9]!, 'unknown-id']), 2, 'remove takes what the account has of the ids');
    t.same(await of('ben'), [n[0], ...n.slice(2, 6)], "ben's copies are gone");
    t.same(await of('ann'), n.slice(0, 9), "ann's copy of the message stays");
    t.equal(await archive.remove(H, 'ann', [n[8]!]), 1, 'a note to oneself goes with its one copy');
    t.same(await of('ann'), n.slice(0, 8));
    t.equal(await archive.remove(H, 'cat', [n[0]!]), 0, 'nothing of another conversation');

    await storage.users.delete(H, 'ben');
    t.same(await of('ann'), n.slice(0, 8), "deleting ben leaves ann's copies");
    await withAccounts(storage, 'ben');
    t.same(await of('ben'), [], "and takes his: a new account of the same name starts empty");

    t.equal(await archive.trim(H, 'ann', 3, 100), 5, 'ann keeps her newest three');
    t.same(await of('ann'), n.slice(5, 8));
    t.same(await of('cat'), n.slice(6, 8), "cat's copies are his");
    t.equal(await archive.trim(H, 'ann', 3, 100), 0, 'nothing more to trim');
    t.ok(await archive.expire(T0 + 7000, 100) > 0, 'expire deletes by age');
    t.same(await of('ann'), [n[7]]);
    t.same(await of('cat'), [n[7]]);
  });

  t.test('ArchiveStore: a batch appended again (a retry after a lost answer) leaves the entries already there as they are', async (t) => {
    const storage = await openFor(t, makeStorage);
    await withAccounts(storage, 'ann', 'ben', 'cat');
    const archive = storage.archive;
    const T0 = 1_800_000_000_000;
    const made = [0, 1, 2].map((i) => ({ at: T0 + i, key: (T0 + i) * KEYS_PER_MS })).map((m) => ({ ...m, id: archiveIdFor(m.key) }));
    const entriesOf = (m: typeof made[number], body: string) => [
      { host: H, username: 'ben', id: m.id, seq: 2 * m.key, with: 'ann@example.com', at: m.at, stanza: `<message xmlns="jabber:client"><body>${body}</body></message>` },
      { host: H, username: 'ann', id: m.id, seq: 2 * m.key + 1, with: 'ben@example.com', at: m.at, stanza: `<message xmlns="jabber:client"><body>${body}</body></message>` },
    ];
    await archive.append([...entriesOf(made[0]!, 'first'), ...entriesOf(made[1]!, 'first')]);
    await archive.append([...entriesOf(made[0]!, 'again'), ...entriesOf(made[1]!, 'again'), ...entriesOf(made[2]!, 'new')]);
    // Entries of the older form (no seq) too.
    await archive.append([entry(1, 'cat'), entry(2, 'cat')]);
    await archive.append([{ ...entry(1, 'cat'), stanza: '<message xmlns="jabber:client"><body>again</body></message>' }, entry(2, 'cat'), entry(3, 'cat')]);
    const stored = async (user: string) => {
      const page = await archive.query(H, user, { limit: 50, direction: 'forward' });
      return typeof page === 'string' ? page : { count: page.count, messages: page.messages.map((m) => [m.id, /<body>([^<]*)</.exec(m.stanza)?.[1]]) };
    };
    for (const user of ['ann', 'ben']) {
      t.same(await stored(user), { count: 3, messages: [[made[0]!.id, 'first'], [made[1]!.id, 'first'], [made[2]!.id, 'new']] }, `${user}'s: each message once, as first stored`);
    }
    t.same(await stored('cat'), { count: 3, messages: [['m1', '1'], ['m2', '2'], ['m3', '3']] }, 'the older form: each once, as first stored');
  });
}

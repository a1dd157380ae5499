/**
 * The offline messages port contract (XEP-0160): order, pages, ids, the
 * count and byte quotas and their counters, and that messages go with the
 * account. Run by offline.test.ts over every backend.
 */
import type { Test } from 'tap';
import { NOW, openFor, withAccounts, type MakeStorage } from './backends.js';

export function offlineContract(t: Test, makeStorage: MakeStorage): void {
  t.test('OfflineStore', async (t) => {
    const storage = await openFor(t, makeStorage);
    await withAccounts(storage, 'alice', 'bob');
    const offline = storage.offline;

    t.test('an account without messages lists none', async (t) => {
      t.same(await offline.list('example.com', 'alice'), []);
      t.equal(await offline.count('example.com', 'alice'), 0);
    });

    t.test('push keeps arrival order and the store clock, per account', async (t) => {
      t.equal(await offline.push('example.com', 'alice', '<message>1</message>', 10), true);
      t.equal(await offline.push('example.com', 'alice', '<message>2</message>', 10), true);
      t.equal(await offline.push('example.com', 'bob', '<message>b</message>', 10), true);
      const list = await offline.list('example.com', 'alice');
      t.same(list.map((m) => m.stanza), ['<message>1</message>', '<message>2</message>']);
      t.same(list.map((m) => m.storedAt), [NOW, NOW]);
      t.ok(list[0]!.id < list[1]!.id, 'ids increase');
      t.equal(await offline.count('example.com', 'bob'), 1, 'accounts are separate');
    });

    t.test('push refuses beyond max and stores nothing then', async (t) => {
      t.equal(await offline.push('example.com', 'alice', '<message>3</message>', 3), true);
      t.equal(await offline.push('example.com', 'alice', '<message>4</message>', 3), false);
      t.equal(await offline.count('example.com', 'alice'), 3);
    });

    t.test('remove deletes only the given messages of that account; unknown ids are ignored', async (t) => {
      const [first, second] = await offline.list('example.com', 'alice');
      const bobs = await offline.list('example.com', 'bob');
      await offline.remove('example.com', 'alice', [first!.id, second!.id, 999_999, bobs[0]!.id]);
      t.same((await offline.list('example.com', 'alice')).map((m) => m.stanza), ['<message>3</message>']);
      t.equal(await offline.count('example.com', 'bob'), 1, "another account's id is not removed through alice");
      await offline.remove('example.com', 'alice', []);
      t.equal(await offline.count('example.com', 'alice'), 1);
    });

    t.test('an id is never reused after removal', async (t) => {
      const before = await offline.list('example.com', 'alice');
      await offline.remove('example.com', 'alice', before.map((m) => m.id));
      await offline.push('example.com', 'alice', '<message>5</message>', 10);
      const [after] = await offline.list('example.com', 'alice');
      t.ok(after!.id > before[before.length - 1]!.id);
    });

    t.test('list reads in pages: ids after afterId, at most limit, oldest first', async (t) => {
      await withAccounts(storage, 'paged');
      for (let i = 0; i < 7; i++) await offline.push('example.com', 'paged', `<message>p${i}</message>`, 100);
      const seen: string[] = [];
      let afterId = 0;
      for (let page = await offline.list('example.com', 'paged', { afterId, limit: 3 }); page.length > 0;
        page = await offline.list('example.com', 'paged', { afterId, limit: 3 })) {
        t.ok(page.length <= 3, 'never more than limit');
        seen.push(...page.map((m) => m.stanza));
        afterId = page[page.length - 1]!.id;
      }
      t.same(seen, [0, 1, 2, 3, 4, 5, 6].map((i) => `<message>p${i}</message>`), 'every message once, in order');
      const all = await offline.list('example.com', 'paged');
      t.same((await offline.list('example.com', 'paged', { afterId: all[4]!.id })).map((m) => m.stanza), ['<message>p5</message>', '<message>p6</message>'], 'afterId alone reads to the end');
      t.same(await offline.list('example.com', 'paged', { afterId: all[6]!.id, limit: 3 }), [], 'nothing after the last');
    });

    t.test('list with storedAt reads only the messages stored at that millisecond, in pages as without it', async (t) => {
      let clock = NOW;
      const timed = await makeStorage(t, { now: () => clock });
      t.teardown(() => timed.close());
      await withAccounts(timed, 'alice', 'bob');
      for (const [at, text] of [[NOW, 'a0'], [NOW + 1, 'a1'], [NOW, 'a2'], [NOW + 1, 'a3'], [NOW + 1, 'a4']] as const) {
        clock = at;
        await timed.offline.push('example.com', 'alice', `<message>${text}</message>`, 100);
      }
      clock = NOW + 1;
      await timed.offline.push('example.com', 'bob', '<message>b</message>', 100);
      const texts = (ms: readonly { stanza: string }[]) => ms.map((m) => m.stanza);
      t.same(texts(await timed.offline.list('example.com', 'alice', { storedAt: NOW + 1 })), ['<message>a1</message>', '<message>a3</message>', '<message>a4</message>'], "that millisecond's, that account's, oldest first");
      t.same(texts(await timed.offline.list('example.com', 'alice', { storedAt: NOW })), ['<message>a0</message>', '<message>a2</message>']);
      const first = await timed.offline.list('example.com', 'alice', { storedAt: NOW + 1, limit: 2 });
      t.same(texts(first), ['<message>a1</message>', '<message>a3</message>'], 'limit counts the matching ones');
      t.same(texts(await timed.offline.list('example.com', 'alice', { storedAt: NOW + 1, afterId: first[1]!.id, limit: 2 })), ['<message>a4</message>'], 'afterId pages on');
      t.same(await timed.offline.list('example.com', 'alice', { storedAt: NOW + 2 }), [], 'none at another millisecond');
      t.equal((await timed.offline.list('example.com', 'alice')).length, 5, 'without it, all');
    });

    t.test('messages go with the account', async (t) => {
      await storage.users.delete('example.com', 'bob');
      t.equal(await offline.count('example.com', 'bob'), 0);
      t.same(await offline.usage('example.com', 'bob'), { messages: 0, bytes: 0 }, 'and so does its usage');
    });
  });

  t.test('byte quota and usage counters', async (t) => {
    const storage = await openFor(t, makeStorage);
    await withAccounts(storage, 'alice', 'bob');
    const offline = storage.offline;
    // 'é' is two bytes in UTF-8: the quota counts bytes, not characters.
    const big = `<message>${'é'.repeat(100)}</message>`;
    const BIG = 19 + 200;
    const quota = { maxMessages: 100, maxBytes: 3 * BIG };

    t.test('push counts bytes and refuses the message that would pass maxBytes, storing nothing of it', async (t) => {
      for (let i = 0; i < 3; i++) t.equal(await offline.push('example.com', 'alice', big, quota), true, `message ${i + 1} fits`);
      t.same(await offline.usage('example.com', 'alice'), { messages: 3, bytes: 3 * BIG });
      t.equal(await offline.push('example.com', 'alice', '<m/>', quota), false, 'four more bytes do not fit');
      t.same(await offline.usage('example.com', 'alice'), { messages: 3, bytes: 3 * BIG }, 'unchanged');
      t.equal((await offline.list('example.com', 'alice')).length, 3, 'nothing partial was stored');
      t.equal(await offline.push('example.com', 'bob', big, quota), true, 'another account has its own quota');
    });

    t.test('a message larger than the whole quota is refused', async (t) => {
      t.equal(await offline.push('example.com', 'bob', big, { maxMessages: 100, maxBytes: BIG - 1 }), false);
      t.same(await offline.usage('example.com', 'bob'), { messages: 1, bytes: BIG });
    });

    t.test('concurrent pushes cannot overshoot the byte quota', async (t) => {
      const results = await Promise.all(Array.from({ length: 10 }, () => offline.push('example.com', 'bob', big, { maxMessages: 100, maxBytes: 4 * BIG })));
      t.equal(results.filter(Boolean).length, 3, 'exactly the three that fit');
      t.same(await offline.usage('example.com', 'bob'), { messages: 4, bytes: 4 * BIG });
    });

    t.test('remove by ids keeps the counters right; unknown and foreign ids change nothing', async (t) => {
      const [first, second] = await offline.list('example.com', 'alice');
      const bobs = await offline.list('example.com', 'bob');
      await offline.remove('example.com', 'alice', [first!.id, 999_999, bobs[0]!.id]);
      t.same(await offline.usage('example.com', 'alice'), { messages: 2, bytes: 2 * BIG });
      t.same(await offline.usage('example.com', 'bob'), { messages: 4, bytes: 4 * BIG });
      await offline.remove('example.com', 'alice', [first!.id, second!.id]);
      t.same(await offline.usage('example.com', 'alice'), { messages: 1, bytes: BIG }, 'an id removed twice counts once');
      t.equal(await offline.count('example.com', 'alice'), 1);
      t.equal(await offline.push('example.com', 'alice', big, quota), true, 'the room freed is usable again');
      t.equal(await offline.push('example.com', 'alice', big, quota), true);
      t.equal(await offline.push('example.com', 'alice', big, quota), false, 'up to the quota again');
    });

    t.test('the count limit still applies next to the byte quota', async (t) => {
      t.equal(await offline.push('example.com', 'bob', '<m/>', { maxMessages: 4, maxBytes: 1_000_000 }), false);
      t.equal(await offline.push('example.com', 'bob', '<m/>', 5), true, 'a bare number limits the count only');
      t.same(await offline.usage('example.com', 'bob'), { messages: 5, bytes: 4 * BIG + 4 });
    });

    t.test('deleting the account clears its counters; a new account of the same name starts at zero', async (t) => {
      await storage.users.delete('example.com', 'bob');
      t.same(await offline.usage('example.com', 'bob'), { messages: 0, bytes: 0 });
      await withAccounts(storage, 'bob');
      t.same(await offline.usage('example.com', 'bob'), { messages: 0, bytes: 0 });
      t.equal(await offline.push('example.com', 'bob', big, quota), true);
      t.same(await offline.usage('example.com', 'bob'), { messages: 1, bytes: BIG });
    });
  });
}

/**
 * The OfflineStore and VcardStore contracts, run over every backend, and
 * what only SQLite can show: the data survives reopening and goes with the
 * account (ON DELETE CASCADE).
 */
import t, { type Test } from 'tap';
import { createMemoryStorage, deriveStoredCredentials, openSqliteStorage, type Storage } from '../../src/storage/index.js';

const NOW = 1_700_000_000_000;
type Open = (t: Test) => Storage;
const backends: Record<string, Open> = {
  memory: () => createMemoryStorage({ now: () => NOW }),
  sqlite: (t) => openSqliteStorage(t.testdir(), { now: () => NOW }),
};

async function withAccounts(storage: Storage, ...names: string[]): Promise<void> {
  const credentials = await deriveStoredCredentials('pw', 4096);
  for (const n of names) await storage.users.create('example.com', n, credentials);
}

for (const [name, open] of Object.entries(backends)) {
  t.test(`${name} storage: OfflineStore contract`, async (t) => {
    const storage = open(t);
    t.teardown(() => storage.close());
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

    t.test('messages go with the account', async (t) => {
      await storage.users.delete('example.com', 'bob');
      t.equal(await offline.count('example.com', 'bob'), 0);
    });
  });

  t.test(`${name} storage: VcardStore contract`, async (t) => {
    const storage = open(t);
    t.teardown(() => storage.close());
    await withAccounts(storage, 'alice', 'bob');
    const vcards = storage.vcards;
    t.equal(await vcards.get('example.com', 'alice'), undefined);
    await vcards.set('example.com', 'alice', '<vCard xmlns="vcard-temp"><FN>A</FN></vCard>');
    await vcards.set('example.com', 'alice', '<vCard xmlns="vcard-temp"><FN>B</FN></vCard>');
    t.equal(await vcards.get('example.com', 'alice'), '<vCard xmlns="vcard-temp"><FN>B</FN></vCard>', 'set replaces');
    t.equal(await vcards.get('example.com', 'bob'), undefined, 'accounts are separate');
    await vcards.set('example.com', 'bob', '<vCard xmlns="vcard-temp"/>');
    await vcards.delete('example.com', 'bob');
    t.equal(await vcards.get('example.com', 'bob'), undefined, 'delete');
    await storage.users.delete('example.com', 'alice');
    t.equal(await vcards.get('example.com', 'alice'), undefined, 'a vCard goes with the account');
  });
}

t.test('sqlite: offline messages and vCards survive reopening', async (t) => {
  const dir = t.testdir();
  const first = openSqliteStorage(dir);
  await withAccounts(first, 'alice');
  await first.offline.push('example.com', 'alice', '<message/>', 10);
  await first.vcards.set('example.com', 'alice', '<vCard xmlns="vcard-temp"/>');
  await first.close();
  const second = openSqliteStorage(dir);
  t.teardown(() => second.close());
  t.equal(await second.offline.count('example.com', 'alice'), 1);
  t.equal(await second.vcards.get('example.com', 'alice'), '<vCard xmlns="vcard-temp"/>');
});

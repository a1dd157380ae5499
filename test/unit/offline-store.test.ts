/**
 * The OfflineStore and VcardStore contracts, run over every backend, and
 * what only SQLite can show: the data survives reopening and goes with the
 * account (ON DELETE CASCADE).
 */
import t, { type Test } from 'tap';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createMemoryStorage, deriveStoredCredentials, openSqliteStorage, DATABASE_FILE, type Storage } from '../../src/storage/index.js';
import { migrate, MIGRATIONS } from '../../src/storage/sqlite/migrations.js';

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
      t.same(await offline.usage('example.com', 'bob'), { messages: 0, bytes: 0 }, 'and so does its usage');
    });
  });

  t.test(`${name} storage: OfflineStore byte quota and usage counters`, async (t) => {
    const storage = open(t);
    t.teardown(() => storage.close());
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

t.test('sqlite: migration 4 back-fills the offline counters of messages stored before it', async (t) => {
  const dir = t.testdir();
  const db = new Database(join(dir, DATABASE_FILE));
  migrate(db, MIGRATIONS.slice(0, 3));
  db.prepare("INSERT INTO users (host, username, credentials, created_at) VALUES ('example.com', ?, '{}', 0)").run('alice');
  db.prepare("INSERT INTO users (host, username, credentials, created_at) VALUES ('example.com', ?, '{}', 0)").run('bob');
  const insert = db.prepare("INSERT INTO offline_messages (host, username, stanza, stored_at) VALUES ('example.com', ?, ?, 0)");
  for (const stanza of ['<message>1</message>', '<message>é</message>']) insert.run('alice', stanza);
  db.close();
  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  t.same(await storage.offline.usage('example.com', 'alice'), { messages: 2, bytes: 20 + 21 });
  t.same(await storage.offline.usage('example.com', 'bob'), { messages: 0, bytes: 0 });
  t.equal(await storage.offline.push('example.com', 'alice', '<m/>', { maxMessages: 3, maxBytes: 45 }), true);
  t.equal(await storage.offline.push('example.com', 'alice', '<m/>', { maxMessages: 10, maxBytes: 48 }), false, 'the back-filled bytes count');
  t.same(await storage.offline.usage('example.com', 'alice'), { messages: 3, bytes: 45 });
});

t.test('sqlite: any DELETE of offline messages keeps the counters right (triggers, not the store code)', async (t) => {
  const dir = t.testdir();
  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  await withAccounts(storage, 'alice');
  for (const b of ['1', '22', '333']) await storage.offline.push('example.com', 'alice', `<message>${b}</message>`, 10);
  // A second connection, as another store implementation or the CLI would delete.
  const other = new Database(join(dir, DATABASE_FILE));
  other.prepare("DELETE FROM offline_messages WHERE stanza LIKE '%22%'").run();
  other.close();
  t.same(await storage.offline.usage('example.com', 'alice'), { messages: 2, bytes: 20 + 22 });
});

t.test('sqlite: two connections pushing to one account (server and CLI) share one quota', async (t) => {
  const dir = t.testdir();
  const first = openSqliteStorage(dir);
  t.teardown(() => first.close());
  await withAccounts(first, 'alice');
  const second = openSqliteStorage(dir);
  t.teardown(() => second.close());
  const quota = { maxMessages: 100, maxBytes: 5 * 20 };
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? second : first).offline.push('example.com', 'alice', `<message>${i}</message>`, quota)));
  t.equal(results.filter(Boolean).length, 5, 'five fit, whichever connection pushed them');
  t.same(await second.offline.usage('example.com', 'alice'), { messages: 5, bytes: 100 });
});

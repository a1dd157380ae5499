/** The blocklist port contract (XEP-0191), run by blocklist.test.ts over every backend. */
import type { Test } from 'tap';
import { openFor, withAccounts, type MakeStorage } from './backends.js';

export function blocklistContract(t: Test, makeStorage: MakeStorage): void {
  t.test('a blocklist adds, removes and clears, idempotently', async (t) => {
    const s = await openFor(t, makeStorage);
    await withAccounts(s, 'alice');
    await s.blocklists.add('example.com', 'alice', ['b@x', 'a@x', 'x']);
    await s.blocklists.add('example.com', 'alice', ['a@x']);
    t.same(await s.blocklists.list('example.com', 'alice'), ['a@x', 'b@x', 'x'], 'sorted, no duplicates');
    await s.blocklists.remove('example.com', 'alice', ['a@x', 'not-there']);
    t.same(await s.blocklists.list('example.com', 'alice'), ['b@x', 'x']);
    await s.blocklists.clear('example.com', 'alice');
    t.same(await s.blocklists.list('example.com', 'alice'), []);
  });

  t.test('a blocklist goes with its account', async (t) => {
    const s = await openFor(t, makeStorage);
    await withAccounts(s, 'alice');
    await s.blocklists.add('example.com', 'alice', ['bad@example.com']);
    await s.users.delete('example.com', 'alice');
    await withAccounts(s, 'alice');
    t.same(await s.blocklists.list('example.com', 'alice'), [], 'a new account of the same name starts empty');
  });
}

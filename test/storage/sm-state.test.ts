/**
 * The stream management state contract over every backend, and what only
 * SQLite can show: stale h records survive a restart (a client that comes
 * back after one still learns its h), and migration 6 on an older file.
 */
import t from 'tap';
import { openSqliteStorage } from '../../src/storage/index.js';
import { overBackends, sqliteBefore } from './backends.js';
import { smStateContract } from './sm-state.contract.js';

overBackends(t, 'sm-state', smStateContract);

t.test('sqlite: stale h survives reopening', async (t) => {
  const dir = t.testdir();
  const first = openSqliteStorage(dir);
  await first.smState.setStaleH('smid-1', 7, 1000);
  await first.close();
  const second = openSqliteStorage(dir);
  t.teardown(() => second.close());
  t.equal(await second.smState.getStaleH('smid-1'), 7);
});

t.test('sqlite: migration 6 adds the stale h table to a file at version 5, keeping its data', async (t) => {
  const { dir, old: db } = sqliteBefore(t, 6, ['alice']);
  db.close();
  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  t.same(await storage.users.list(), [{ host: 'example.com', username: 'alice' }]);
  await storage.smState.setStaleH('smid-2', 3, 1000);
  t.equal(await storage.smState.getStaleH('smid-2'), 3);
});

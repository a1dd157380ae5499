/**
 * The accounts port contract (UserStore and its change log): what every
 * backend must do, run by accounts.test.ts over each one.
 */
import type { Test } from 'tap';
import { UserExistsError, UserNotFoundError } from '../../src/storage/index.js';
import { creds, NOW, openFor, type MakeStorage } from './backends.js';

// Code point order puts U+1F600 (a surrogate pair in UTF-16) after U+FFFD; UTF-16 order would not.
const SORT_CASES = [['b', 'example.com'], ['\u{1F600}', 'example.com'], ['a', 'example.com'], ['\uFFFD', 'example.com'], ['z', 'a.example']];

export function accountsContract(t: Test, makeStorage: MakeStorage): void {
  t.test('UserStore', async (t) => {
    const users = (await openFor(t, makeStorage)).users;

    t.test('get of an unknown user is undefined', async (t) => {
      t.equal(await users.get('example.com', 'nobody'), undefined);
    });

    t.test('create then get returns the record', async (t) => {
      await users.create('example.com', 'alice', creds('alice'));
      t.same(await users.get('example.com', 'alice'), { host: 'example.com', username: 'alice', credentials: creds('alice'), createdAt: NOW, credentialsChangedAt: NOW });
      t.equal(await users.get('other.org', 'alice'), undefined, 'hosts are separate');
    });

    t.test('a returned record is a copy', async (t) => {
      const record = await users.get('example.com', 'alice');
      record!.credentials['SCRAM-SHA-1'].storedKey = 'tampered';
      t.equal((await users.get('example.com', 'alice'))!.credentials['SCRAM-SHA-1'].storedKey, 'alice-1-sk');
    });

    t.test('creating an existing user throws UserExistsError', async (t) => {
      await t.rejects(users.create('example.com', 'alice', creds('again')), UserExistsError);
      const err = await users.create('example.com', 'alice', creds('again')).catch((e: unknown) => e);
      t.match(err, { host: 'example.com', username: 'alice', message: "user 'alice@example.com' already exists" });
      t.same((await users.get('example.com', 'alice'))!.credentials, creds('alice'), 'unchanged');
    });

    t.test('setCredentials replaces them; unknown user throws', async (t) => {
      await users.setCredentials('example.com', 'alice', creds('new'));
      t.same((await users.get('example.com', 'alice'))!.credentials, creds('new'));
      await t.rejects(users.setCredentials('example.com', 'ghost', creds('x')), UserNotFoundError);
      t.equal(await users.get('example.com', 'ghost'), undefined, 'not created by setCredentials');
    });

    t.test('delete removes; unknown user throws', async (t) => {
      await users.create('example.com', 'doomed', creds('d'));
      await users.delete('example.com', 'doomed');
      t.equal(await users.get('example.com', 'doomed'), undefined);
      await t.rejects(users.delete('example.com', 'doomed'), UserNotFoundError);
    });

    t.test('list is sorted by host then username, optionally one host', async (t) => {
      await users.delete('example.com', 'alice');
      for (const [u, h] of SORT_CASES) await users.create(h!, u!, creds(u!));
      t.same(await users.list(), [
        { host: 'a.example', username: 'z' },
        { host: 'example.com', username: 'a' },
        { host: 'example.com', username: 'b' },
        { host: 'example.com', username: '\uFFFD' },
        { host: 'example.com', username: '\u{1F600}' },
      ]);
      t.same(await users.list('a.example'), [{ host: 'a.example', username: 'z' }]);
      t.same(await users.list('nowhere'), []);
    });

    t.test('createMany creates all', async (t) => {
      await users.createMany([]);
      await users.createMany([
        { host: 'batch.example', username: 'u1', credentials: creds('u1') },
        { host: 'batch.example', username: 'u2', credentials: creds('u2') },
      ]);
      t.same((await users.list('batch.example')).map((u) => u.username), ['u1', 'u2']);
      t.equal((await users.get('batch.example', 'u2'))!.createdAt, NOW);
    });

    t.test('changesSince reports deletions and new credentials after the cursor, oldest first', async (t) => {
      const start = await users.changesSince();
      t.same(start.changes, [], 'a new watcher starts at the current end');
      await users.create('watch.example', 'w1', creds('w1'));
      await users.create('watch.example', 'w2', creds('w2'));
      await users.setCredentials('watch.example', 'w1', creds('w1-new'));
      await users.delete('watch.example', 'w2');
      const next = await users.changesSince(start.cursor);
      t.same(next.changes, [
        { host: 'watch.example', username: 'w1', change: 'credentials' },
        { host: 'watch.example', username: 'w2', change: 'deleted' },
      ], 'creating an account is not a change its sessions must answer to');
      t.same((await users.changesSince(next.cursor)).changes, [], 'nothing twice');
    });

    t.test('createMany with an existing user creates nothing', async (t) => {
      const err = await users.createMany([
        { host: 'atomic.example', username: 'fresh1', credentials: creds('f1') },
        { host: 'batch.example', username: 'u2', credentials: creds('dup') },
        { host: 'batch.example', username: 'u1', credentials: creds('dup') },
      ]).catch((e: unknown) => e);
      t.type(err, UserExistsError);
      t.match(err, { host: 'batch.example', username: 'u2' }, 'names the first duplicate');
      t.same(await users.list('atomic.example'), [], 'nothing created');
      t.same((await users.get('batch.example', 'u2'))!.credentials, creds('u2'), 'existing untouched');
    });

    t.test('createMany with a user twice in the batch creates nothing', async (t) => {
      const err = await users.createMany([
        { host: 'atomic.example', username: 'x', credentials: creds('x') },
        { host: 'atomic.example', username: 'y', credentials: creds('y') },
        { host: 'atomic.example', username: 'x', credentials: creds('x2') },
      ]).catch((e: unknown) => e);
      t.match(err, { name: 'UserExistsError', host: 'atomic.example', username: 'x' });
      t.same(await users.list('atomic.example'), []);
    });
  });

  t.test('credentialsChangedAt: when the credentials were last set, at creation or by setCredentials', async (t) => {
    // Token logins minted before it are refused (sasl-token.ts): a password change ends them.
    let clock = NOW;
    const storage = await makeStorage(t, { now: () => clock });
    t.teardown(() => storage.close());
    const users = storage.users;
    await users.create('example.com', 'carol', creds('carol'));
    await users.createMany([{ host: 'example.com', username: 'dave', credentials: creds('dave') }]);
    t.equal((await users.get('example.com', 'carol'))!.credentialsChangedAt, NOW, 'create: its creation time');
    t.equal((await users.get('example.com', 'dave'))!.credentialsChangedAt, NOW, 'createMany too');
    clock = NOW + 5_000;
    await users.setCredentials('example.com', 'carol', creds('carol-new'));
    const carol = (await users.get('example.com', 'carol'))!;
    t.equal(carol.credentialsChangedAt, NOW + 5_000, 'setCredentials: now');
    t.equal(carol.createdAt, NOW, 'the creation time stays');
    t.equal((await users.get('example.com', 'dave'))!.credentialsChangedAt, NOW, 'another account is untouched');
  });

  t.test('close is idempotent', async (t) => {
    const other = await makeStorage(t);
    await other.close();
    await other.close();
    t.pass();
  });
}

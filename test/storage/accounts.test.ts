/**
 * The accounts contract over every backend, plus credentials derivation and
 * what only the SQLite file can show about accounts: a corrupt row fails
 * loudly, and no password ever reaches the disk.
 */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { deriveStoredCredentials, InvalidPasswordError, openSqliteStorage, DATABASE_FILE } from '../../src/storage/index.js';
import { verifyPassword } from '../../src/sasl/scram.js';
import { accountsContract } from './accounts.contract.js';
import { creds, overBackends } from './backends.js';

overBackends(t, 'accounts', accountsContract);

t.test('deriveStoredCredentials', async (t) => {
  const c = await deriveStoredCredentials('correct horse', 4096);
  t.ok(await verifyPassword('sha1', c['SCRAM-SHA-1'], 'correct horse'));
  t.ok(await verifyPassword('sha256', c['SCRAM-SHA-256'], 'correct horse'));
  t.notOk(await verifyPassword('sha256', c['SCRAM-SHA-256'], 'wrong'));
  t.equal(c['SCRAM-SHA-1'].iterations, 4096);
  t.not(c['SCRAM-SHA-1'].salt, c['SCRAM-SHA-256'].salt, 'each hash gets its own salt');
  await t.rejects(deriveStoredCredentials('', 4096), InvalidPasswordError);
  await t.rejects(deriveStoredCredentials('bell\u0007', 4096), InvalidPasswordError, 'SASLprep-prohibited');
});

t.test('sqlite: malformed stored credentials fail loudly', async (t) => {
  const dir = t.testdir();
  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  await storage.users.create('example.com', 'eve', creds('eve'));
  const raw = new Database(join(dir, DATABASE_FILE));
  raw.prepare("UPDATE users SET credentials = '{}'").run();
  raw.close();
  await t.rejects(storage.users.get('example.com', 'eve'), /malformed/);
});

t.test('sqlite: no password ever reaches the database files', async (t) => {
  const dir = t.testdir();
  const passwords = ['Tr0ub4dor&3-first', 'correct-horse-battery-second'];
  const bytesOnDisk = (): Buffer => Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
  const assertAbsent = (when: string): void => {
    const bytes = bytesOnDisk();
    for (const p of passwords) {
      t.equal(bytes.indexOf(Buffer.from(p, 'utf8')), -1, `${when}: '${p}' absent (utf8)`);
      t.equal(bytes.indexOf(Buffer.from(p, 'utf16le')), -1, `${when}: '${p}' absent (utf16)`);
    }
  };

  const storage = openSqliteStorage(dir);
  await storage.users.create('example.com', 'alice', await deriveStoredCredentials(passwords[0]!, 4096));
  await storage.users.createMany([{ host: 'example.com', username: 'bob', credentials: await deriveStoredCredentials(passwords[0]!, 4096) }]);
  await storage.users.setCredentials('example.com', 'alice', await deriveStoredCredentials(passwords[1]!, 4096));
  assertAbsent('while open (WAL not yet checkpointed)');
  const stored = (await storage.users.get('example.com', 'alice'))!.credentials;
  t.ok(await verifyPassword('sha256', stored['SCRAM-SHA-256'], passwords[1]!), 'stored keys still verify after the round trip');
  await storage.close();
  assertAbsent('after close');
});

/**
 * What deleting an account costs on SQLite whatever the size of the database. The deletion
 * (the CLI's `user delete`, another process) holds the file's write lock while its triggers
 * and foreign-key actions run, and the server's writers wait meanwhile: none of them may read
 * a whole table, so its time depends on what the account and its contacts hold, not on how
 * many accounts there are.
 *
 * How it is checked: the program SQLite compiles for the store's own DELETE statement, read
 * from EXPLAIN, which lists the statement's bytecode and that of every trigger and foreign-key
 * action it can run, nested ones included (test/helpers/sqlite-program.ts). A read of a table
 * or index from its first row (`Rewind`) is a scan that grows with the table; a seek is a
 * lookup. That is what SQLite runs for any data, not one run's count of rows. Counting rows at
 * run time is not possible here: better-sqlite3 exposes neither sqlite3_stmt_scanstatus nor
 * sqlite3_stmt_status (FULLSCAN_STEP), its SQLite has no sqlite_stmt or bytecode tables and no
 * progress handler; and EXPLAIN QUERY PLAN of the DELETE shows its foreign-key lookups but not
 * its triggers. The database is a real file with accounts, nodes and affiliations, opened by a
 * second connection as the CLI would; the server never runs ANALYZE, so neither does the test
 * (the planner works from the schema alone, as in production), and the deletion then runs.
 */
import t from 'tap';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteStorage, DATABASE_FILE, type PepNodeConfig } from '../../src/storage/index.js';
import { withAccounts } from './backends.js';
import { programSteps } from '../helpers/sqlite-program.js';

const H = 'example.com';
const CONFIG: PepNodeConfig = { accessModel: 'whitelist', persistItems: true, maxItems: 10, rosterGroupsAllowed: [] };
/** The store's statement (src/storage/sqlite/users.ts). */
const DELETE_ACCOUNT = 'DELETE FROM users WHERE host = ? AND username = ?';

/** Accounts with nodes, some of whose affiliations name alice; returns the file. */
async function populated(dir: string): Promise<string> {
  const storage = openSqliteStorage(dir);
  const names = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];
  await withAccounts(storage, ...names);
  for (const [i, owner] of names.entries()) {
    await storage.pep.configure(H, owner, 'http://jabber.org/protocol/nick', { ...CONFIG, accessModel: 'presence' });
    const affiliations: PepNodeConfig['affiliations'] = i % 2 === 1 ? { 'alice@example.com': 'member', 'zed@example.com': 'member' } : { 'zed@example.com': 'outcast' };
    await storage.pep.configure(H, owner, 'urn:xmpp:bookmarks:1', { ...CONFIG, affiliations });
  }
  await storage.close();
  return join(dir, DATABASE_FILE);
}

t.test('sqlite: deleting an account reads no table or index from its first row, in its triggers and cascades', async (t) => {
  const dir = t.testdir();
  const cli = new Database(await populated(dir));
  t.teardown(() => cli.close());
  const steps = programSteps(cli, DELETE_ACCOUNT, [H, 'alice']);
  t.ok(steps.some((s) => s.trigger === 'contacts_of_deleted_account'), 'the listing has the triggers');
  // sqlite_sequence: AUTOINCREMENT's counters (account_changes), one row per such table.
  const scans = steps.flatMap((s) => s.scans.filter((b) => b !== 'sqlite_sequence').map((b) => `${b} in ${s.trigger || 'the statement'}: ${s.statement}`));
  t.same(scans, [], 'no scan');
  t.ok(programSteps(cli, 'DELETE FROM users WHERE created_at = ?', [0])[0]?.scans.includes('users'), 'a scan is seen when there is one');

  const pep = steps.filter((s) => /^UPDATE pep_nodes\b/.test(s.statement));
  t.equal(pep.length, 1, "one step rewrites other accounts' nodes");
  t.ok(pep[0]?.seeks.some((b) => /\(jid\b/.test(b)), `the nodes naming the JID are found on an index of affiliate JIDs (seeks: ${pep[0]?.seeks.join(', ')})`);
  t.ok(pep[0]?.seeks.includes('pep_nodes'), 'each node then by its key');

  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  await storage.users.delete(H, 'alice');
  for (const owner of ['bob', 'carol', 'dave']) {
    t.same((await storage.pep.node(H, owner, 'urn:xmpp:bookmarks:1'))?.affiliations, owner === 'carol' ? { 'zed@example.com': 'outcast' } : { 'zed@example.com': 'member' },
      `${owner}'s node names alice no more, and keeps the other affiliation`);
  }
});

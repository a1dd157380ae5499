/**
 * The PEP contract over every backend, and what only the SQLite file shows: nodes and items
 * survive reopening; pep_affiliates (migration 13) is back-filled and kept in step by triggers.
 */
import t from 'tap';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteStorage, DATABASE_FILE } from '../../src/storage/index.js';
import { MIGRATIONS } from '../../src/storage/sqlite/migrations.js';
import { BACKENDS, openFor, overBackends, sqliteBefore, withAccounts } from './backends.js';
import { pepContract } from './pep.contract.js';
import { affiliationsElement } from '../../src/xmpp/features/pep/affiliations.js';
import { parseJid } from '../../src/jid/index.js';

overBackends(t, 'pep', pepContract);

for (const [name, make] of Object.entries(BACKENDS)) {
  t.test(`${name} storage: the affiliations a node's owner retrieves (XEP-0060 §8.9.1) are in JID order, whatever the store keeps`, async (t) => {
    // PostgreSQL's JSONB keeps an object's keys shortest first, the others in the order written.
    const storage = await openFor(t, make);
    await withAccounts(storage, 'alice');
    const affiliations = { 'al-longer@example.com': 'member', 'bob@example.com': 'outcast', 'z@example.com': 'member' } as const;
    const config = { accessModel: 'whitelist', persistItems: true, maxItems: 10, rosterGroupsAllowed: [], affiliations } as const;
    await storage.pep.configure('example.com', 'alice', 'urn:xmpp:bookmarks:1', config);
    const stored = (await storage.pep.node('example.com', 'alice', 'urn:xmpp:bookmarks:1'))!;
    const listed = affiliationsElement(parseJid('alice@example.com'), 'urn:xmpp:bookmarks:1', stored)
      .getChild('affiliations')!.getChildren('affiliation').map((a) => [a.attr('jid'), a.attr('affiliation')]);
    t.same(listed, [['alice@example.com', 'owner'], ['al-longer@example.com', 'member'], ['bob@example.com', 'outcast'], ['z@example.com', 'member']]);
  });
}

t.test('sqlite: PEP nodes and items survive reopening', async (t) => {
  const dir = t.testdir();
  const first = openSqliteStorage(dir);
  await withAccounts(first, 'alice');
  const config = { accessModel: 'open', persistItems: true, maxItems: 10, rosterGroupsAllowed: [] } as const;
  await first.pep.configure('example.com', 'alice', 'urn:xmpp:avatar:metadata', config);
  await first.pep.publish('example.com', 'alice', 'urn:xmpp:avatar:metadata', { id: 'h1', payload: '<metadata xmlns="urn:xmpp:avatar:metadata"/>' }, 10);
  await first.close();
  const second = openSqliteStorage(dir);
  t.teardown(() => second.close());
  t.same(await second.pep.nodes('example.com', 'alice'), [{ node: 'urn:xmpp:avatar:metadata', config }]);
  t.same(await second.pep.items('example.com', 'alice', 'urn:xmpp:avatar:metadata'), [{ id: 'h1', payload: '<metadata xmlns="urn:xmpp:avatar:metadata"/>' }]);
});

/** What pep_affiliates holds, and what the nodes' documents name: the two must agree. */
function affiliates(db: Database.Database): { held: string[]; named: string[] } {
  const rows = (sql: string) => db.prepare<[], { r: string }>(sql).all().map((x) => x.r);
  return {
    held: rows("SELECT username || ' ' || node || ' ' || jid AS r FROM pep_affiliates ORDER BY r"),
    named: rows(`SELECT n.username || ' ' || n.node || ' ' || a.key AS r FROM pep_nodes n, json_each(n.config, '$.affiliations') a
      WHERE json_type(n.config, '$.affiliations') = 'object' ORDER BY r`),
  };
}

t.test('sqlite: migration 13 lists the affiliations stored before it, and a deletion then removes them', async (t) => {
  const { dir, file, old } = sqliteBefore(t, 13, ['alice', 'bob', 'carol']);
  const node = old.prepare("INSERT INTO pep_nodes (host, username, node, config) VALUES ('example.com', ?, ?, ?)");
  const config = { accessModel: 'whitelist', persistItems: true, maxItems: 10, rosterGroupsAllowed: [] };
  node.run('bob', 'urn:xmpp:bookmarks:1', JSON.stringify({ ...config, affiliations: { 'alice@example.com': 'member', 'carol@example.com': 'member' } }));
  node.run('bob', 'urn:xmpp:avatar:data', JSON.stringify({ ...config, affiliations: { 'alice@example.com': 'outcast' } }));
  node.run('bob', 'http://jabber.org/protocol/nick', JSON.stringify(config));
  node.run('carol', 'urn:xmpp:bookmarks:1', JSON.stringify({ ...config, affiliations: {} }));
  node.run('alice', 'urn:xmpp:bookmarks:1', JSON.stringify({ ...config, affiliations: { 'bob@example.com': 'member' } }));
  old.close();

  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  t.equal((db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number }).v, MIGRATIONS.length);
  const { held, named } = affiliates(db);
  t.same(held, [
    'alice urn:xmpp:bookmarks:1 bob@example.com', 'bob urn:xmpp:avatar:data alice@example.com',
    'bob urn:xmpp:bookmarks:1 alice@example.com', 'bob urn:xmpp:bookmarks:1 carol@example.com',
  ], 'back-filled from the documents');
  t.same(held, named);

  await storage.users.delete('example.com', 'alice');
  t.same((await storage.pep.node('example.com', 'bob', 'urn:xmpp:bookmarks:1'))?.affiliations, { 'carol@example.com': 'member' }, 'a member no more; carol stays');
  t.same((await storage.pep.node('example.com', 'bob', 'urn:xmpp:avatar:data'))?.affiliations, {}, 'an outcast no more');
  t.same(affiliates(db).held, ['bob urn:xmpp:bookmarks:1 carol@example.com'], "alice's rows gone, and her nodes' rows");
});

t.test('sqlite: pep_affiliates follows every write of pep_nodes, by any connection (triggers, not the store code)', async (t) => {
  const dir = t.testdir();
  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  await withAccounts(storage, 'alice', 'bob');
  const config = { accessModel: 'whitelist', persistItems: true, maxItems: 10, rosterGroupsAllowed: [] } as const;
  await storage.pep.configure('example.com', 'alice', 'n', { ...config, affiliations: { 'bob@example.com': 'member' } });
  // Another connection, as the CLI or a hand-made fix would write.
  const other = new Database(join(dir, DATABASE_FILE));
  t.teardown(() => other.close());
  const check = (what: string, expected: string[]) => {
    const { held, named } = affiliates(other);
    t.same(held, expected, what);
    t.same(held, named, `${what}: as the documents name them`);
  };
  check('by the store', ['alice n bob@example.com']);
  other.prepare("UPDATE pep_nodes SET config = json_set(config, '$.affiliations.\"eve@example.com\"', 'outcast') WHERE node = 'n'").run();
  check('a JID added in place', ['alice n bob@example.com', 'alice n eve@example.com']);
  // As the bookmarks mirror does at each publish to a bookmarks node (XEP-0402 §5.3). total_changes()
  // counts the rows written by trigger programs too: the node's row alone, so they ran nothing.
  const changes = () => (other.prepare('SELECT total_changes() AS n').get() as { n: number }).n;
  const before = changes();
  other.prepare("UPDATE pep_nodes SET config = config WHERE node = 'n'").run();
  t.equal(changes() - before, 1, 'the same document written again: the triggers write nothing');
  check('the same document written again', ['alice n bob@example.com', 'alice n eve@example.com']);
  other.prepare("UPDATE pep_nodes SET node = 'm', config = json_remove(config, '$.affiliations') WHERE node = 'n'").run();
  check('renamed, affiliations removed', []);
  other.prepare("INSERT INTO pep_nodes (host, username, node, config) VALUES ('example.com', 'bob', 'n', ?)").run(JSON.stringify({ ...config, affiliations: { 'alice@example.com': 'member' } }));
  check('a node inserted', ['bob n alice@example.com']);
  other.prepare("INSERT INTO pep_nodes (host, username, node, config) VALUES ('example.com', 'bob', 'x', ?)").run(JSON.stringify({ ...config, affiliations: ['alice@example.com'] }));
  check('an array is no affiliations', ['bob n alice@example.com']);
  other.prepare("DELETE FROM pep_nodes WHERE username = 'bob' AND node = 'n'").run();
  check('a node deleted', []);
  await storage.pep.configure('example.com', 'bob', 'n', { ...config, affiliations: { 'alice@example.com': 'member' } });
  other.prepare("DELETE FROM users WHERE username = 'bob'").run();
  check("its owner's account deleted", []);
});

t.test('sqlite: migration 14 on a database at 13: a deleted account named with a backslash leaves the nodes it was named in', async (t) => {
  const { dir, file, old } = sqliteBefore(t, 14, ['alice', 'john\\20doe']);
  const config = { accessModel: 'whitelist', persistItems: true, maxItems: 10, rosterGroupsAllowed: [] };
  old.prepare("INSERT INTO pep_nodes (host, username, node, config) VALUES ('example.com', 'alice', 'n', ?)")
    .run(JSON.stringify({ ...config, affiliations: { 'john\\20doe@example.com': 'member', 'bob@example.com': 'outcast' } }));
  old.close();

  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  await storage.users.delete('example.com', 'john\\20doe');
  t.same((await storage.pep.node('example.com', 'alice', 'n'))?.affiliations, { 'bob@example.com': 'outcast' }, 'a member no more; bob stays');
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  t.same(affiliates(db).held, ['alice n bob@example.com'], 'pep_affiliates follows');
});

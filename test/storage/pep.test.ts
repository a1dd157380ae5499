/** The PEP contract over every backend, and that SQLite keeps nodes and items across reopening. */
import t from 'tap';
import { openSqliteStorage } from '../../src/storage/index.js';
import { overBackends, withAccounts } from './backends.js';
import { pepContract } from './pep.contract.js';

overBackends(t, 'pep', pepContract);

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

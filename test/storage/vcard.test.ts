/** The vCard contract over every backend, and that SQLite keeps vCards across reopening. */
import t from 'tap';
import { openSqliteStorage } from '../../src/storage/index.js';
import { overBackends, withAccounts } from './backends.js';
import { vcardContract } from './vcard.contract.js';

overBackends(t, 'vcard', vcardContract);

t.test('sqlite: vCards survive reopening', async (t) => {
  const dir = t.testdir();
  const first = openSqliteStorage(dir);
  await withAccounts(first, 'alice');
  await first.vcards.set('example.com', 'alice', '<vCard xmlns="vcard-temp"/>');
  await first.close();
  const second = openSqliteStorage(dir);
  t.teardown(() => second.close());
  t.equal(await second.vcards.get('example.com', 'alice'), '<vCard xmlns="vcard-temp"/>');
});

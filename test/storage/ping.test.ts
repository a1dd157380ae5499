/**
 * Storage.ping, what /readyz asks (issue 17 item 7): it answers on an open
 * store of every backend, and fails once the SQL backends' connection is gone.
 */
import t from 'tap';
import { BACKENDS, overBackends } from './backends.js';

overBackends(t, 'ping', (t, makeStorage) => {
  t.test('an open store answers', async (t) => {
    const storage = await makeStorage(t);
    t.teardown(() => storage.close());
    await t.resolves(storage.ping());
  });
});

for (const name of ['sqlite', 'postgres'] as const) {
  t.test(`${name}: a closed store does not answer`, async (t) => {
    const storage = await BACKENDS[name]!(t);
    await storage.close();
    await t.rejects(storage.ping());
  });
}

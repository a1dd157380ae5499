/** The vCard port contract (XEP-0054), run by vcard.test.ts over every backend. */
import type { Test } from 'tap';
import { openFor, withAccounts, type MakeStorage } from './backends.js';

export function vcardContract(t: Test, makeStorage: MakeStorage): void {
  t.test('VcardStore', async (t) => {
    const storage = await openFor(t, makeStorage);
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

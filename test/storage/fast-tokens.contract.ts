/** The FAST token port contract (XEP-0484), run by fast-tokens.test.ts over every backend. */
import type { Test } from 'tap';
import type { FastToken } from '../../src/storage/index.js';
import { creds, NOW, openFor, withAccounts, type MakeStorage } from './backends.js';

const H = 'example.com';
const AGENT = '11111111-1111-4111-8111-111111111111';
const OTHER = '22222222-2222-4222-8222-222222222222';
const token = (key: string, agent = AGENT, expiresAt = NOW + 1000): Omit<FastToken, 'slot'> =>
  ({ host: H, username: 'alice', agent, mechanism: 'HT-SHA-256-NONE', storedKey: key, serverKey: `${key}-server`, expiresAt });

export function fastTokensContract(t: Test, makeStorage: MakeStorage): void {
  t.test('FastTokenStore: issue, find, and the new → current → retired rotation of XEP-0484 §5.1', async (t) => {
    const storage = await openFor(t, makeStorage);
    await withAccounts(storage, 'alice', 'bob');
    const fast = storage.fastTokens;
    t.equal(await fast.find(H, 'alice', 'k1'), undefined, 'nothing before a token is issued');
    await fast.issue(token('k1'), 10);
    t.same(await fast.find(H, 'alice', 'k1'), { ...token('k1'), slot: 'new' }, 'an issued token waits in the new slot, every field kept');
    t.equal(await fast.find(H, 'bob', 'k1'), undefined, 'it is alice\'s only');
    await fast.used(H, 'alice', AGENT, 'k1');
    t.equal((await fast.find(H, 'alice', 'k1'))?.slot, 'current', 'its first use makes it current');
    await fast.issue(token('k2', AGENT, NOW + 2000), 10);
    t.equal((await fast.find(H, 'alice', 'k1'))?.slot, 'current', 'a rotation leaves the current token valid until the new one is used');
    await fast.issue(token('k3', AGENT, NOW + 3000), 10);
    t.equal(await fast.find(H, 'alice', 'k2'), undefined, 'an unused new token is replaced by the next one');
    await fast.used(H, 'alice', OTHER, 'k3');
    t.equal((await fast.find(H, 'alice', 'k3'))?.slot, 'new', 'another agent cannot promote it');
    await fast.used(H, 'alice', AGENT, 'k3');
    t.equal((await fast.find(H, 'alice', 'k3'))?.slot, 'current', 'the new token used: current');
    t.equal((await fast.find(H, 'alice', 'k1'))?.slot, 'retired', 'the one before: retired (kept to recognise a replay)');
    await fast.issue(token('k4', AGENT, NOW + 4000), 10);
    await fast.used(H, 'alice', AGENT, 'k4');
    t.equal(await fast.find(H, 'alice', 'k1'), undefined, 'one retired slot per agent: the oldest goes');
    t.equal((await fast.find(H, 'alice', 'k3'))?.slot, 'retired');
    await fast.retire(H, 'alice', 'k4');
    t.equal((await fast.find(H, 'alice', 'k4'))?.slot, 'retired', 'invalidate retires a token');
    t.equal(await fast.find(H, 'alice', 'k3'), undefined, 'and makes room in the retired slot');
  });

  t.test('FastTokenStore: bounded per account, expired, and gone with the password or the account', async (t) => {
    const storage = await openFor(t, makeStorage);
    await withAccounts(storage, 'alice');
    const fast = storage.fastTokens;
    await fast.issue(token('a', AGENT, NOW + 1000), 2);
    await fast.issue(token('b', OTHER, NOW + 3000), 2);
    await fast.issue(token('c', '33333333-3333-4333-8333-333333333333', NOW + 2000), 2);
    t.equal(await fast.find(H, 'alice', 'a'), undefined, 'past maxAgents, the agent whose token expires first loses it');
    t.ok(await fast.find(H, 'alice', 'b'));
    t.ok(await fast.find(H, 'alice', 'c'));
    t.equal(await fast.expire(NOW + 2000), 1, 'expire removes what has expired at that time');
    t.equal(await fast.find(H, 'alice', 'c'), undefined);
    await storage.users.setCredentials(H, 'alice', creds('new'));
    t.equal(await fast.find(H, 'alice', 'b'), undefined, 'a new password ends every token of the account');
    await fast.issue(token('d'), 10);
    await fast.revoke(H, 'alice');
    t.equal(await fast.find(H, 'alice', 'd'), undefined, 'revoke ends them too');
    await fast.issue(token('e'), 10);
    await storage.users.delete(H, 'alice');
    t.equal(await fast.find(H, 'alice', 'e'), undefined, 'the tokens go with the account');
  });

  t.test('FastTokenStore: past maxAgents with expiries tied, the token just issued stays; then agents by id', async (t) => {
    const storage = await openFor(t, makeStorage);
    await withAccounts(storage, 'alice');
    const fast = storage.fastTokens;
    const THIRD = '33333333-3333-4333-8333-333333333333';
    await fast.issue(token('a', OTHER, NOW + 1000), 1);
    await fast.issue(token('b', AGENT, NOW + 1000), 1);
    t.equal(await fast.find(H, 'alice', 'a'), undefined, 'the other agent goes');
    t.ok(await fast.find(H, 'alice', 'b'), 'the token the client was just given stays');
    await fast.issue(token('c', THIRD, NOW + 1000), 2);
    await fast.issue(token('d', OTHER, NOW + 1000), 2);
    t.ok(await fast.find(H, 'alice', 'd'), 'the token just issued stays');
    t.ok(await fast.find(H, 'alice', 'b'), 'then the agents in id order');
    t.equal(await fast.find(H, 'alice', 'c'), undefined);
  });
}

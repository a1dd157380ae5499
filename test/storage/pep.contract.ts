/** The PEP port contract (XEP-0163), run by pep.test.ts over every backend. */
import type { Test } from 'tap';
import type { PepNodeConfig } from '../../src/storage/index.js';
import { openFor, withAccounts, type MakeStorage } from './backends.js';

const CONFIG: PepNodeConfig = { accessModel: 'presence', persistItems: true, maxItems: 3, rosterGroupsAllowed: [] };
const H = 'example.com';

export function pepContract(t: Test, makeStorage: MakeStorage): void {
  t.test('PepStore: nodes and their configuration', async (t) => {
    const storage = await openFor(t, makeStorage);
    await withAccounts(storage, 'alice', 'bob');
    const pep = storage.pep;
    t.same(await pep.nodes(H, 'alice'), []);
    t.equal(await pep.node(H, 'alice', 'urn:xmpp:avatar:data'), undefined);
    await pep.configure(H, 'alice', 'urn:xmpp:bookmarks:1', { ...CONFIG, accessModel: 'whitelist' });
    await pep.configure(H, 'alice', 'http://jabber.org/protocol/nick', CONFIG);
    await pep.configure(H, 'alice', 'urn:xmpp:bookmarks:1', { ...CONFIG, accessModel: 'roster', rosterGroupsAllowed: ['Friends'] });
    t.same(await pep.nodes(H, 'alice'), [
      { node: 'http://jabber.org/protocol/nick', config: CONFIG },
      { node: 'urn:xmpp:bookmarks:1', config: { ...CONFIG, accessModel: 'roster', rosterGroupsAllowed: ['Friends'] } },
    ], 'by name, configure replaces');
    t.same(await pep.nodes(H, 'bob'), [], 'accounts are separate');
    // Code point order, as every other listing of the ports (UTF-16 order puts U+1F600 before U+FFFD).
    for (const node of ['urn:x:\u{1F600}', 'urn:x:\uFFFD', 'urn:x:a']) await pep.configure(H, 'bob', node, CONFIG);
    t.same((await pep.nodes(H, 'bob')).map((n) => n.node), ['urn:x:a', 'urn:x:\uFFFD', 'urn:x:\u{1F600}'], 'by name in code point order');
    t.equal(await pep.deleteNode(H, 'alice', 'http://jabber.org/protocol/nick'), true);
    t.equal(await pep.deleteNode(H, 'alice', 'http://jabber.org/protocol/nick'), false, 'deleting twice');
    t.same((await pep.nodes(H, 'alice')).map((n) => n.node), ['urn:xmpp:bookmarks:1']);
    const affiliations = { 'bob@example.com': 'member', 'eve@example.com': 'outcast' } as const;
    await pep.configure(H, 'alice', 'urn:xmpp:bookmarks:1', { ...CONFIG, accessModel: 'whitelist', affiliations });
    t.same(await pep.node(H, 'alice', 'urn:xmpp:bookmarks:1'), { ...CONFIG, accessModel: 'whitelist', affiliations }, 'affiliations kept with the configuration');
  });

  t.test('PepStore: items in publication order, trimmed to the newest', async (t) => {
    const storage = await openFor(t, makeStorage);
    await withAccounts(storage, 'alice');
    const pep = storage.pep;
    const node = 'urn:xmpp:bookmarks:1';
    await pep.publish(H, 'alice', node, { id: 'lost', payload: '<x/>' }, 3);
    t.same(await pep.items(H, 'alice', node), [], 'no publish to a node that does not exist');
    await pep.configure(H, 'alice', node, CONFIG);
    for (const id of ['a', 'b', 'c']) await pep.publish(H, 'alice', node, { id, payload: `<i n="${id}"/>` }, 3);
    await pep.publish(H, 'alice', node, { id: 'a', payload: '<i n="a2"/>' }, 3);
    t.same(await pep.items(H, 'alice', node), [
      { id: 'b', payload: '<i n="b"/>' }, { id: 'c', payload: '<i n="c"/>' }, { id: 'a', payload: '<i n="a2"/>' },
    ], 'a re-published id replaces the old item and becomes the newest');
    await pep.publish(H, 'alice', node, { id: 'd', payload: '<i n="d"/>' }, 3);
    t.same((await pep.items(H, 'alice', node)).map((i) => i.id), ['c', 'a', 'd'], 'the oldest goes beyond maxItems');
    t.same((await pep.items(H, 'alice', node, { max: 2 })).map((i) => i.id), ['a', 'd'], 'the newest 2, oldest first');
    t.same((await pep.items(H, 'alice', node, { ids: ['d', 'c', 'zz'] })).map((i) => i.id), ['c', 'd'], 'by id');
    // Both (XEP-0060 §6.5.8 selects by id, §6.5.7's max_items limits): the newest `max` of the items asked for,
    // not those of the newest `max` items that were asked for (d, the newest, was not asked for).
    t.same((await pep.items(H, 'alice', node, { ids: ['c', 'a', 'zz'], max: 1 })).map((i) => i.id), ['a'], 'by id, then the newest 1 of them');
    t.same((await pep.items(H, 'alice', node, { ids: ['d', 'c'], max: 5 })).map((i) => i.id), ['c', 'd'], 'a max above their number keeps them all');
    await pep.configure(H, 'alice', node, { ...CONFIG, maxItems: 1 });
    t.same((await pep.items(H, 'alice', node)).map((i) => i.id), ['d'], 'a smaller max_items trims at once');
    t.equal(await pep.retract(H, 'alice', node, 'd'), true);
    t.equal(await pep.retract(H, 'alice', node, 'd'), false, 'retracting twice');
    await pep.publish(H, 'alice', node, { id: 'e', payload: '<i/>' }, 1);
    await pep.purgeNode(H, 'alice', node);
    t.same(await pep.items(H, 'alice', node), [], 'purged');
    t.same(await pep.node(H, 'alice', node), { ...CONFIG, maxItems: 1 }, 'a purged node stays');
  });

  t.test('PepStore: nodes and items go with their node and with the account', async (t) => {
    const storage = await openFor(t, makeStorage);
    await withAccounts(storage, 'alice');
    const pep = storage.pep;
    await pep.configure(H, 'alice', 'n', CONFIG);
    await pep.publish(H, 'alice', 'n', { id: '1', payload: '<i/>' }, 3);
    await pep.deleteNode(H, 'alice', 'n');
    await pep.configure(H, 'alice', 'n', CONFIG);
    t.same(await pep.items(H, 'alice', 'n'), [], 'a node created again starts empty');
    await pep.publish(H, 'alice', 'n', { id: '2', payload: '<i/>' }, 3);
    await storage.users.delete(H, 'alice');
    t.same(await pep.nodes(H, 'alice'), [], 'no nodes after the account is deleted');
    t.same(await pep.items(H, 'alice', 'n'), [], 'no items either');
  });

  t.test("PepStore: a deleted account leaves other accounts' node affiliations", async (t) => {
    const storage = await openFor(t, makeStorage);
    await withAccounts(storage, 'alice', 'bob', 'carol');
    const pep = storage.pep;
    await pep.configure(H, 'bob', 'urn:xmpp:bookmarks:1', { ...CONFIG, accessModel: 'whitelist', affiliations: { 'alice@example.com': 'member', 'carol@example.com': 'member' } });
    await pep.configure(H, 'bob', 'urn:xmpp:avatar:data', { ...CONFIG, affiliations: { 'alice@example.com': 'outcast' } });
    await pep.configure(H, 'carol', 'urn:xmpp:avatar:data', { ...CONFIG, affiliations: { 'bob@example.com': 'outcast' } });
    await pep.configure(H, 'carol', 'http://jabber.org/protocol/nick', CONFIG);
    await pep.publish(H, 'bob', 'urn:xmpp:bookmarks:1', { id: 'b1', payload: '<x/>' }, 3);

    await storage.users.delete(H, 'alice');

    t.same(await pep.node(H, 'bob', 'urn:xmpp:bookmarks:1'), { ...CONFIG, accessModel: 'whitelist', affiliations: { 'carol@example.com': 'member' } },
      'a member no longer: a new account of the name is not admitted by the whitelist');
    t.same((await pep.node(H, 'bob', 'urn:xmpp:avatar:data'))?.affiliations ?? {}, {}, 'an outcast no longer');
    t.same(await pep.items(H, 'bob', 'urn:xmpp:bookmarks:1'), [{ id: 'b1', payload: '<x/>' }], 'the items stay');
    t.same(await pep.node(H, 'carol', 'urn:xmpp:avatar:data'), { ...CONFIG, affiliations: { 'bob@example.com': 'outcast' } }, 'other affiliations are untouched');
    t.same(await pep.node(H, 'carol', 'http://jabber.org/protocol/nick'), CONFIG);
  });

  t.test("PepStore: a deleted account's affiliations go from the nodes that name it now, however they came to", async (t) => {
    const storage = await openFor(t, makeStorage);
    await withAccounts(storage, 'alice', 'bob', 'carol', 'dave');
    const pep = storage.pep;
    const node = 'urn:xmpp:bookmarks:1';
    const affiliationsOf = async (owner: string, name: string) => (await pep.node(H, owner, name))?.affiliations ?? {};
    // Reconfigured: alice is named no more, dave is named since.
    await pep.configure(H, 'bob', node, { ...CONFIG, affiliations: { 'alice@example.com': 'member', 'carol@example.com': 'member' } });
    await pep.configure(H, 'bob', node, { ...CONFIG, affiliations: { 'carol@example.com': 'outcast', 'dave@example.com': 'member' } });
    // A node deleted and created again naming the same JID; an owner deleted and made again.
    await pep.configure(H, 'carol', node, { ...CONFIG, affiliations: { 'dave@example.com': 'member' } });
    await pep.deleteNode(H, 'carol', node);
    await pep.configure(H, 'carol', node, { ...CONFIG, affiliations: { 'dave@example.com': 'outcast', 'alice@example.com': 'member' } });
    await pep.configure(H, 'alice', node, { ...CONFIG, affiliations: { 'dave@example.com': 'member' } });
    await storage.users.delete(H, 'alice');
    t.same(await affiliationsOf('carol', node), { 'dave@example.com': 'outcast' }, 'alice goes from the node created again');
    await withAccounts(storage, 'alice');
    t.same(await pep.nodes(H, 'alice'), [], 'the new account of the name has no node');
    await pep.configure(H, 'alice', node, { ...CONFIG, affiliations: { 'dave@example.com': 'member' } });

    await storage.users.delete(H, 'dave');
    t.same(await affiliationsOf('bob', node), { 'carol@example.com': 'outcast' }, 'dave goes, named by the last configure; carol stays');
    t.same(await affiliationsOf('carol', node), {}, 'from the node created again');
    t.same(await affiliationsOf('alice', node), {}, "from the node of the account made again");
    await storage.users.delete(H, 'carol');
    t.same(await affiliationsOf('bob', node), {}, 'carol goes in turn');
    t.same(await pep.node(H, 'bob', node), { ...CONFIG, affiliations: {} }, 'the rest of the configuration stays');
  });

  t.test("PepStore: a deleted account whose name has a backslash (XEP-0106's escapes, as in john\\20doe) goes from the nodes too", async (t) => {
    const storage = await openFor(t, makeStorage);
    const escaped = 'john\\20doe';
    await withAccounts(storage, 'alice', escaped);
    const node = 'urn:xmpp:avatar:data';
    await storage.pep.configure(H, 'alice', node, { ...CONFIG, affiliations: { [`${escaped}@${H}`]: 'member', 'bob@example.com': 'outcast' } });
    await storage.users.delete(H, escaped);
    t.same((await storage.pep.node(H, 'alice', node))?.affiliations, { 'bob@example.com': 'outcast' }, 'a member no more; bob stays');
    await withAccounts(storage, escaped);
    t.same((await storage.pep.node(H, 'alice', node))?.affiliations, { 'bob@example.com': 'outcast' }, 'the account made again under the name is no member');
  });
}

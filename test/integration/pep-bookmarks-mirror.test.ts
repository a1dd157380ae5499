/**
 * XEP-0402 §5.3 compatibility (found in review): the legacy storage:bookmarks node is kept in step
 * for purge and delete too, and mirroring counts against PEP_MAX_NODES_PER_ACCOUNT.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { xml } from '../helpers/xmppjs.js';
import { capsClient, iq, itemsRequest, NS_PUBSUB, NS_PUBSUB_OWNER, pepError, publish } from '../helpers/pep-kit.js';

const limited = await withUsers(t, ['alice'], { PEP_MAX_NODES_PER_ACCOUNT: '1' });

t.test('an account at its node limit: a publish whose mirror would pass it is refused, and creates nothing', async (t) => {
  const alice = await capsClient(t, limited, 'alice', 'a', []);
  const reply = await iq(alice, 'set', publish('storage:bookmarks',
    xml('storage', { xmlns: 'storage:bookmarks' }, xml('conference', { jid: 'r@muc.localhost', name: 'R' })), 'current'));
  t.same(pepError(reply), { type: 'error', condition: 'policy-violation', app: 'max-nodes-exceeded', feature: undefined }, 'the two bookmarks nodes would be two nodes, one more than allowed');
  t.same(await limited.storage.pep.nodes('localhost', 'alice'), [], 'nothing created');
  const other = await iq(alice, 'set', publish('urn:example:one', xml('x', { xmlns: 'urn:example:one' }), 'current'));
  t.equal(other.attrs.type, 'result', 'one node of its own is within the limit');
});

const server = await withUsers(t, ['alice']);

for (const op of ['purge', 'delete'] as const) {
  t.test(`${op} of urn:xmpp:bookmarks:1 empties the legacy node too`, async (t) => {
    const alice = await capsClient(t, server, 'alice', op, []);
    await iq(alice, 'set', publish('urn:xmpp:bookmarks:1', xml('conference', { xmlns: 'urn:xmpp:bookmarks:1', name: 'R' }), `r-${op}@muc.localhost`,
      { 'pubsub#max_items': 'max', 'pubsub#access_model': 'whitelist' }));
    const rooms = async () => (await iq(alice, 'get', itemsRequest('storage:bookmarks'))).getChild('pubsub', NS_PUBSUB)?.getChild('items')
      ?.getChild('item')?.getChild('storage', 'storage:bookmarks')?.getChildren('conference').map((c) => c.attrs.jid) ?? [];
    t.same(await rooms(), [`r-${op}@muc.localhost`], 'mirrored on publish');
    t.equal((await iq(alice, 'set', xml('pubsub', { xmlns: NS_PUBSUB_OWNER }, xml(op, { node: 'urn:xmpp:bookmarks:1' })))).attrs.type, 'result');
    t.same(await rooms(), [], `no room left in storage:bookmarks after the ${op}`);
  });
}

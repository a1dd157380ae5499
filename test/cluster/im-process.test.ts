/**
 * End to end across real processes (test/helpers/cluster.ts): a message
 * from a client on node 0 reaches a client on node 1, to the full and to
 * the bare JID; a message sent to node 1 just after it was killed (kill -9)
 * is drained from its inbox by node 0, kept offline and reaches the next
 * login on node 0.
 * Needs the session directory (src/cluster/directory.ts, branch i14-dir).
 */
import t from 'tap';
import { withGatewayCluster } from '../helpers/cluster.js';
import { eventually } from '../helpers/eventually.js';
import { RawWsClient } from '../helpers/ws-client.js';
import type { XmlElement } from '../../src/xml/index.js';

t.setTimeout(180_000);

async function online(url: string, user: string, resource: string): Promise<RawWsClient> {
  const c = await RawWsClient.connect(url);
  t.teardown(() => c.ws.terminate());
  await c.login(user, 'pw', resource);
  c.send("<presence xmlns='jabber:client'/>");
  return c;
}

const isChat = (body: string) => (el: XmlElement) => el.local === 'message' && el.getChildText('body') === body;

t.test('a message from node 0 reaches a client on node 1, to the full and the bare JID; one sent as node 1 is killed is kept offline', async (t) => {
  const cluster = await withGatewayCluster(t, { nodes: 2 });
  await cluster.addUser('alice', 'pw');
  await cluster.addUser('bob', 'pw');
  const [n0, n1] = cluster.nodes;
  const alice = await online(n0!.wsUrl, 'alice', 'desk');
  const bob = await online(n1!.wsUrl, 'bob', 'phone');
  await alice.until((el) => el.local === 'presence');

  // bob's session lives on node 1: node 0 finds it in the directory and hands the stanza to node 1's inbox.
  await eventually(async () => {
    alice.send("<message xmlns='jabber:client' to='bob@localhost/phone' type='chat' id='probe'><body>are you there</body></message>");
    return bob.until(isChat('are you there'), 300).then(() => true, () => false);
  }, { timeout: 10_000, message: "bob's session to be seen from node 0" });
  alice.send("<message xmlns='jabber:client' to='bob@localhost/phone' type='chat' id='m1'><body>to the full JID</body></message>");
  const full = await bob.until(isChat('to the full JID'), 5000);
  t.equal(full.attrs.from, 'alice@localhost/desk', 'from alice on node 0');
  alice.send("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m2'><body>to the bare JID</body></message>");
  await bob.until(isChat('to the bare JID'), 5000);
  t.pass('the bare JID reached the resource on node 1');

  const exit = await cluster.kill(1);
  t.equal(exit.signal, 'SIGKILL');
  // Sent while node 1's lease is still current: it waits in node 1's inbox until node 0 notices the
  // death (CLUSTER_NODE_TTL) and drains it; bob has no session then, so it is kept offline.
  alice.send("<message xmlns='jabber:client' to='bob@localhost/phone' type='chat' id='m3'><body>while you were gone</body></message>");
  // The drain follows the death (a lease, then node 0's heartbeat), which a loaded machine stretches: its time counts from there.
  await eventually(() => n0!.events().some((e) => e.event === 'cluster-node-down'), { timeout: 60_000, message: 'node 0 to declare node 1 dead' });
  await eventually(() => n0!.events().some((e) => e.event === 'cluster-inbox-drained' && e.inbox === 'n1'), {
    timeout: 10_000, message: "node 0 to drain node 1's inbox",
  });
  const again = await online(n0!.wsUrl, 'bob', 'laptop');
  const kept = await again.until(isChat('while you were gone'), 10_000);
  t.equal(kept.attrs.from, 'alice@localhost/desk', 'kept offline and delivered at the next login, on node 0');
});

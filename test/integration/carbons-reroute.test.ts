/**
 * XEP-0280 when a message to a full JID is routed again: the resource went
 * while the route waited (a transform awaited: the archive reading prefs, a
 * cluster stub dropped), so the router takes the bare-JID rules (RFC 6121
 * §8.5.3.2.1). The sender's other resources still get their <sent/> copy
 * (§8), and the recipient's resources that did not get the message get a
 * <received/> copy (§7).
 */
import t from 'tap';
import { settled, startFakeServer, type FakeClient } from '../helpers/fake-conn.js';
import { NS } from '../../src/xml/index.js';
import type { ModuleContext } from '../../src/xmpp/context.js';
import { waitUntil } from '../helpers/eventually.js';

// A transform on full-JID messages that holds them until the test lets go: the async step
// during which the recipient's resource goes.
let gate: Promise<void> | undefined;
const hold = (ctx: ModuleContext): void => {
  ctx.hooks.transform('message/full', () => gate, 10_000);
};
const server = await startFakeServer({}, false, undefined, [hold]);
t.teardown(() => server.close());
for (const u of ['alice', 'bob']) await server.addUser(u);

async function tab(user: string, resource: string, priority: number): Promise<FakeClient> {
  const c = await server.login(user, resource);
  c.send(`<presence xmlns='jabber:client'><priority>${priority}</priority></presence>`);
  c.send(`<iq xmlns='jabber:client' type='set' id='on'><enable xmlns='${NS.CARBONS}'/></iq>`);
  await settled();
  return c;
}

t.test('the resource goes while the message waits: sent copies to the sender, received copies to the rest', async (t) => {
  const sender = await tab('alice', 'phone', 0);
  const other = await tab('alice', 'laptop', 0);
  const gone = await tab('bob', 'tab1', 5);
  const high = await tab('bob', 'tab2', 1);
  const low = await tab('bob', 'tab3', 0);
  for (const c of [sender, other, gone, high, low]) c.conn.take();

  let open!: () => void;
  gate = new Promise<void>((r) => { open = r; });
  sender.send(`<message xmlns='jabber:client' to='bob@localhost/tab1' type='chat' id='m1'><body>hi</body></message>`);
  await settled();
  gone.session.close();
  await settled();
  open();
  gate = undefined;

  t.ok(await waitUntil(() => high.conn.out.some((m) => m.attr('id') === 'm1')), 'the bare-JID rules deliver to the highest priority left');
  await settled();
  const carbon = (c: FakeClient, kind: 'sent' | 'received') =>
    c.conn.takeStanzas('message').filter((m) => m.getChild(kind, NS.CARBONS)?.getChild('forwarded', NS.FORWARD)?.getChild('message', NS.CLIENT)?.attr('id') === 'm1');
  t.equal(carbon(other, 'sent').length, 1, "§8: the sender's other resource gets one <sent/> copy");
  t.equal(carbon(low, 'received').length, 1, '§7: the resource that did not get it gets one <received/> copy');
  t.equal(carbon(high, 'received').length, 0, 'the resource that got the message itself gets no copy');
  t.equal(sender.conn.takeStanzas('message').length, 0, 'the sending resource gets nothing back');
});

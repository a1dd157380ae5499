/**
 * XEP-0191 §3.3 across nodes: a block made by one resource is pushed to
 * every resource of the account that requested the blocklist, wherever it
 * is bound. Whether a resource requested it travels with its directory
 * entry (before: it was a per-process set, which a remote stub was never in,
 * so a resource on another node got no push).
 */
import t from 'tap';
import { addUsers, clusterBackends, startGateway, type Gateway } from '../helpers/gateways.js';
import { login, xml, type XmppJsClient } from '../helpers/xmppjs.js';
import { eventually } from '../helpers/eventually.js';

const NS_BLOCKING = 'urn:xmpp:blocking';
const backends = clusterBackends(t);

async function pushed(c: XmppJsClient, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (c.received.some((el) => el.is('iq') && el.attrs.type === 'set' && el.getChild('block', NS_BLOCKING)?.getChild('item')?.attrs.jid === 'mallory@localhost')) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

for (const where of ['n1', 'n2'] as const) t.test(`a1 on n1 blocks mallory: a2 on ${where}, which requested the blocklist, gets the push`, async (t) => {
  const opts = await backends.options();
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice']);
  const g: Gateway = where === 'n1' ? n1 : n2;
  const a1 = await login(t, n1.server, { username: 'alice', password: 'alice-pw', resource: 'a1' });
  const a2 = await login(t, g.server, { username: 'alice', password: 'alice-pw', resource: 'a2' });
  await a2.xmpp.iqCaller.request(xml('iq', { type: 'get' }, xml('blocklist', { xmlns: NS_BLOCKING })));
  // The directory entry is written after the answer went out (resource-changed does not hold it up), as for roster interest.
  await eventually(() => n1.server.app.sessions.get('localhost', 'alice', 'a2')?.blocklistRequested === true, { message: 'n1 sees that a2 requested the blocklist' });
  await a1.xmpp.iqCaller.request(xml('iq', { type: 'set' }, xml('block', { xmlns: NS_BLOCKING }, xml('item', { jid: 'mallory@localhost' }))));
  t.ok(await pushed(a2, 3000), `a2 on ${where} gets the block push (XEP-0191 §3.3)`);
});

/**
 * A served domain given in XMPP_DOMAIN as its A-labels (the Punycode form
 * DNS shows, xn--…) is the domain of its U-labels: RFC 7622 §3.2.1 converts
 * A-labels to U-labels before a JID is compared or routed, and the server
 * does so for every JID it reads. Kept as written in the configuration, the
 * domain matched none of them: the stream header was refused with
 * host-unknown and a message to a user of the domain bounced as remote.
 */
import t from 'tap';
import { request } from 'node:http';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';

const A_LABELS = 'xn--bcher-kva.example';
const U_LABELS = 'bücher.example';
const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true', XMPP_DOMAIN: A_LABELS });

async function online(user: string, resource: string, to: string): Promise<{ c: RawWsClient; jid: string }> {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.ws.terminate());
  const jid = await c.login(user, `${user}-pw`, resource, to);
  c.send(`<presence xmlns='jabber:client'/>`);
  return { c, jid };
}

t.test('XMPP_DOMAIN in A-labels: clients log in to either form, are bound at the U-labels, and chat', async (t) => {
  const alice = await online('alice', 'a', A_LABELS);
  t.equal(alice.jid, `alice@${U_LABELS}/a`, 'bound at the domain in U-labels (RFC 7622 §3.2.1)');
  const bob = await online('bob', 'b', U_LABELS);
  t.equal(bob.jid, `bob@${U_LABELS}/b`);
  alice.c.send(`<message xmlns='jabber:client' to='bob@${A_LABELS}' type='chat' id='m1'><body>hi</body></message>`);
  const m = await bob.c.until((el) => el.local === 'message' && el.attr('id') === 'm1');
  t.equal(m.attr('type'), 'chat', `delivered, not bounced: ${m.toString()}`);
  t.equal(m.attr('from'), `alice@${U_LABELS}/a`);
  t.notOk(alice.c.frames.some((el) => el.local === 'message' && el.attr('type') === 'error'), 'alice got no error back');
});

/** GET `path` with the Host header `host` (as a browser sends it: ASCII, A-labels). */
function get(path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('host-meta (XEP-0156) answers for the domain, which browsers name in A-labels in Host', async (t) => {
  const r = await get('/.well-known/host-meta.json', `${A_LABELS}:${server.port}`);
  t.equal(r.status, 200, r.body);
  const links = (JSON.parse(r.body) as { links: { href: string }[] }).links.map((l) => l.href);
  t.same(links.map((h) => new URL(h).host), links.map(() => `${A_LABELS}:${server.port}`), 'the endpoints at the host the browser asked');
  t.equal((await get('/.well-known/host-meta.json', `xn--other-kva.example:${server.port}`)).status, 404, 'another domain is still refused');
});

/**
 * Failed logins are counted across the cluster (issue 13's throttle, issue
 * 14's nodes): a guesser whose connections a balancer spreads over N nodes,
 * or the kernel over WORKERS=N processes, got N times the free failures and
 * N backoff clocks, each node counting alone. Addresses come from
 * X-Forwarded-For through the trusted loopback proxy, as behind nginx.
 */
import t, { type Test } from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { addUsers, clusterBackends, startGateway, type Gateway } from '../helpers/gateways.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { plain, scramFinal, scramFirst } from '../helpers/scram-client.js';
import { connectRedis } from '../../src/cluster/redis.js';
import { eventually } from '../helpers/eventually.js';

const backends = clusterBackends(t);
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

const outcome = (el: XmlElement): string | undefined => (el.local === 'success' ? 'success' : el.getChildren().find((c) => c.local !== 'text')?.local);

async function from(t: Test, g: Gateway, ip: string): Promise<RawWsClient> {
  const c = await RawWsClient.connect(g.server.wsUrl, 'xmpp', { 'x-forwarded-for': ip });
  t.teardown(() => c.ws.terminate());
  await c.openStream();
  return c;
}

/** The messages on the nodes' `login` channel, as a third subscriber sees them. */
async function watch(t: Test, g: Gateway): Promise<string[]> {
  const seen: string[] = [];
  const sub = await connectRedis(g.server.config.redisUrl, quiet, 'test-watch');
  t.teardown(() => sub.quit());
  await sub.subscribe(`${g.cluster.node.prefix}login`, (m: string) => { seen.push(m); });
  return seen;
}

t.test("failures on one node throttle the address and account on another; the owner's other addresses are not", async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', LOGIN_FAILURES_PER_ACCOUNT: '2', LOGIN_FAILURES_PER_IP: '100', LOGIN_BACKOFF_MAX: '60' });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice']);
  const seen = await watch(t, n1);
  const attacker = '203.0.113.50';
  // Six SCRAM guesses on n1, all past the throttle's check (client-first) before the first fails (client-final):
  // the pair is then six failures in, four past its two free ones, and waits 8 s.
  const guesses = await Promise.all([1, 2, 3, 4, 5, 6].map(async () => {
    const c = await from(t, n1, attacker);
    const first = scramFirst('alice');
    c.send(`<auth xmlns='${NS.SASL}' mechanism='SCRAM-SHA-256'>${first.message}</auth>`);
    return { c, first, challenge: await c.next() };
  }));
  for (const { c, first, challenge } of guesses) c.send(`<response xmlns='${NS.SASL}'>${scramFinal(first, challenge.text(), 'wrong')}</response>`);
  for (const { c } of guesses) t.equal(outcome(await c.next()), 'not-authorized');
  await eventually(() => seen.length >= 6, { message: 'the failures published' });

  const c = await from(t, n2, attacker);
  c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('alice', 'alice-pw')}</auth>`);
  t.equal(outcome(await c.next()), 'temporary-auth-failure', 'on the other node, the pair waits too (even the right password is refused)');
  const owner = await from(t, n2, '198.51.100.7');
  owner.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('alice', 'alice-pw')}</auth>`);
  t.equal(outcome(await owner.next()), 'success', 'the owner from another address logs in on either node');
});

/**
 * METRICS_ALLOW written in the IPv4-mapped IPv6 form (::ffff:10.1.2.3, what a
 * dual-stack socket reports as the peer, so what an operator copies from a
 * log) names the IPv4 address it maps, as the peer side already does: the
 * peer is matched as IPv4, so an allow entry left as IPv6 never matched.
 */
import t from 'tap';
import { withServer } from '../helpers/server.js';
import { createPeerFilter } from '../../src/http/metrics-access.js';

t.test('an IPv4-mapped METRICS_ALLOW entry admits the IPv4 peer it names', async (t) => {
  const server = await withServer(t, { METRICS_ALLOW: '::ffff:127.0.0.1' });
  const res = await fetch(`${server.httpUrl}/metrics`);
  t.equal(res.status, 200, 'loopback scrapes over IPv4');
  await res.text();
});

t.test('mapped addresses and ranges in the allow list, against plain and mapped peers', async (t) => {
  const allowed = createPeerFilter(['::ffff:10.1.2.3', '::ffff:192.168.0.0/112']);
  for (const ok of ['10.1.2.3', '::ffff:10.1.2.3', '192.168.7.9', '::ffff:192.168.255.1']) t.ok(allowed(ok), `${ok} is allowed`);
  for (const no of ['10.1.2.4', '192.169.0.1', '::ffff:10.1.2.4', '2001:db8::1']) t.notOk(allowed(no), `${no} is refused`);
});

import ipaddr from 'ipaddr.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { metricsText } from '../metrics/workers.js';

/** Who may read /metrics: a test on the direct peer's address. */
export type PeerFilter = (address: string | undefined) => boolean;

/**
 * METRICS_ALLOW as a filter. Addresses and CIDR ranges are parsed by ipaddr.js
 * (the library behind Fastify's proxy-addr), not by hand; an IPv4-mapped IPv6
 * peer (::ffff:10.1.2.3, what a dual-stack socket reports) is matched as the
 * IPv4 address it is. An address that does not parse is refused.
 */
export function createPeerFilter(allow: readonly string[]): PeerFilter {
  const ranges = allow.map((item) => ipv4IfMapped(item.includes('/') ? ipaddr.parseCIDR(item) : [ipaddr.parse(item), item.includes(':') ? 128 : 32]));
  return (address) => {
    if (address === undefined || !ipaddr.isValid(address)) return false;
    const peer = ipaddr.process(address);
    return ranges.some(([range, bits]) => peer.kind() === range.kind() && peer.match(range, bits));
  };
}

/**
 * GET /metrics, served only to peers METRICS_ALLOW names. The check is on the
 * socket's own peer address, never on req.ip: behind a trusted proxy req.ip
 * comes from X-Forwarded-For, which anyone reaching the proxy writes (issue 17
 * item 2; Prosody's mod_http_openmetrics likewise serves loopback only by default).
 */
export function registerMetricsRoute(app: FastifyInstance, registry: Registry, allowed: PeerFilter): void {
  // With WORKERS > 1, every worker's metrics summed (metrics/workers.ts), whichever worker is asked.
  const text = metricsText(registry);
  app.get('/metrics', async (req: FastifyRequest, reply: FastifyReply) => {
    if (!allowed(req.socket.remoteAddress)) {
      return reply.code(403).type('text/plain').header('cache-control', 'no-store')
        .send('metrics are served only to the addresses in METRICS_ALLOW\n');
    }
    reply.type(registry.contentType);
    return text();
  });
}

/**
 * An allow entry in the IPv4-mapped form (::ffff:10.1.2.3, as a dual-stack
 * socket reports its peer, so as an operator copies it from a log) is the
 * IPv4 address or range it maps: the peer is matched as IPv4, so the entry
 * left as IPv6 would never match. A range wider than the mapped block
 * (/96) is left as it is.
 */
function ipv4IfMapped([range, bits]: readonly [ipaddr.IPv4 | ipaddr.IPv6, number]): readonly [ipaddr.IPv4 | ipaddr.IPv6, number] {
  if (range.kind() === 'ipv6' && bits >= 96 && (range as ipaddr.IPv6).isIPv4MappedAddress()) return [(range as ipaddr.IPv6).toIPv4Address(), bits - 96];
  return [range, bits];
}


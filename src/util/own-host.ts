import { tryNormalizeDomain } from '../jid/index.js';

/**
 * The authority (host and port) a request's Host header names, when that is
 * the gateway's own without PUBLIC_URL: a served domain, or the address the
 * request really came in on (`localAddress`). Undefined for any other name:
 * echoing any Host would let `Host: evil.example` put a foreign WebSocket URL
 * into a cached host-meta, and would make a page after DNS rebinding (its
 * name resolved to the gateway, its Origin and the Host alike) the gateway's
 * own origin (both found in hostile reviews).
 *
 * The header is parsed as a URL's authority, and the result built from what
 * was parsed: checking one reading (Fastify's hostname: up to the first ':')
 * and echoing the raw header let `Host: localhost:@evil.example` through,
 * read by browsers as user 'localhost:' at evil.example.
 */
export function ownAuthority(host: string, localAddress: string | undefined, domains: readonly string[]): string | undefined {
  let url: URL;
  try { url = new URL(`http://${host}/`); } catch { return undefined; }
  if (url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '' || url.hash !== '' || host.includes('@')) return undefined;
  const name = url.hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  // A browser names an internationalised domain by its A-labels; the served domains are in U-labels (RFC 7622 §3.2.1).
  const domain = tryNormalizeDomain(name) ?? name;
  if (!domains.includes(domain) && name !== localAddress?.replace(/^::ffff:/, '')) return undefined;
  return url.host;
}

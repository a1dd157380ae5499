import { isIP } from 'node:net';

/**
 * The key a client address is counted under for per-IP limits: an IPv4
 * address as it is (IPv4-mapped IPv6 too, however spelled), and an IPv6 address by its /64,
 * since one subscriber usually holds a whole /64 and could otherwise step
 * through 2^64 addresses. The text forms of one address (`2001:DB8:0::1`,
 * `2001:db8::1`) give one key, and a port some proxies append is dropped.
 * Anything that is not an IP address gives undefined: callers count all such
 * under one key (UNPARSABLE), so varying the garbage escapes no limit.
 */
export function ipKey(address: string): string | undefined {
  // Some proxies append the client's port: 192.0.2.1:1111, [2001:db8::1]:1111.
  const bare = address.replace(/^(\d+\.\d+\.\d+\.\d+):\d+$/, '$1').replace(/^\[(.*)\](:\d+)?$/, '$1').replace(/%.*$/, '');
  const family = isIP(bare);
  if (family === 4) return bare;
  if (family !== 6) return undefined;
  const groups = expandIpv6(bare);
  // IPv4-mapped (::ffff:0:0/96) in whichever spelling: ::ffff:192.0.2.1, ::ffff:c000:201, 0:0:0:0:0:ffff:….
  if (groups[5] === 0xffff && groups.slice(0, 5).every((g) => g === 0)) {
    const [hi, lo] = [groups[6]!, groups[7]!];
    return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (an embedded IPv4 tail becomes two groups). */
function expandIpv6(address: string): number[] {
  let text = address.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const left = parse(head);
  if (tail === undefined) return left;
  const right = parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/** The one key every address that is not an IP address counts under (a misbehaving trusted proxy's garbage). */
export const UNPARSABLE = 'unparsable';

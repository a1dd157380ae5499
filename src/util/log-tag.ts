import { createHash } from 'node:crypto';

/**
 * How a log line names a secret that identifies something, such as a BOSH sid (with the next rid, all it takes to
 * act on the session: XEP-0124 §19.3 calls it security-critical): the first 12 hex digits of its SHA-256. The same
 * on every line and every node, so lines about one session still go together; 48 bits of a hash of 128 random bits
 * give nothing back. `undefined` (no sid yet) stays undefined. smids are named the same way (cluster/sm-scripts.ts smidRef).
 */
export function logTag(secret: string): string;
export function logTag(secret: string | undefined): string | undefined;
export function logTag(secret: string | undefined): string | undefined {
  return secret === undefined ? undefined : createHash('sha256').update(secret).digest('hex').slice(0, 12);
}

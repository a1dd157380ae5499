/**
 * Errors and length limits shared by the JID part normalisers.
 */

/** Thrown for any address that is not a valid JID (RFC 6120 §8.3.3.8 <jid-malformed/>). */
export class JidError extends Error {
  readonly condition = 'jid-malformed' as const;
  override readonly name = 'JidError';
}

/** RFC 7622 §3.2, §3.3, §3.4: each part is 1..1023 octets of UTF-8. */
export const MAX_PART_OCTETS = 1023;

/**
 * Cheap guard run before any Unicode work so a huge attribute cannot make us normalise megabytes.
 * Every UTF-16 unit encodes to at least one octet, and mapping/NFC shrink a string by far less
 * than 4x, so anything above 4 units per allowed octet can never end up within the limit.
 */
export function assertRawLength(s: string, part: string): void {
  if (s.length > MAX_PART_OCTETS * 4) throw new JidError(`${part} is too long`);
}

/** Enforces the 1..1023 octet rule on the normalised value. */
export function assertOctets(s: string, part: string): void {
  if (s === '') throw new JidError(`${part} is empty`);
  if (Buffer.byteLength(s, 'utf8') > MAX_PART_OCTETS) {
    throw new JidError(`${part} is longer than ${MAX_PART_OCTETS} octets`);
  }
}

/**
 * Domainpart enforcement (RFC 7622 §3.2).
 *
 * IDNA processing is delegated to Node's url.domainToASCII/domainToUnicode (WHATWG URL host
 * parsing = UTS #46 non-transitional: width/case mapping, NFC, Punycode validation). UTS #46 is
 * more permissive than IDNA2008, so on top of it we:
 *   - accept only LDH labels plus '_' in the ASCII form (UTS #46 lets '!', '"', '*', ... through),
 *     rejecting empty labels; '_' and leading/trailing '-' are tolerated for real-world hostnames;
 *   - check each U-label's code points against the PRECIS IdentifierClass derivation, which is
 *     built on the same RFC 5892 rules as IDNA2008, so symbols such as U+2603 are rejected;
 *   - reject names the WHATWG parser would reinterpret as IPv4 ("1.2.3", "0x7f.1").
 * Not checked: IDNA2008 Bidi rule (RFC 5893), CONTEXTJ (rejected outright), and the DNS 63-octet
 * label / 253-octet name limits (RFC 7622 only demands 1..1023 octets).
 *
 * The result is the U-label form (RFC 7622 §3.2.1: A-labels are converted to U-labels), lower
 * case, with one trailing dot removed; IP literals are returned in canonical text form.
 */
import { domainToASCII, domainToUnicode } from 'node:url';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { assertOctets, assertRawLength, JidError, MAX_PART_OCTETS } from './errors.js';
import { disallowedReason } from './precis.js';

// Fast path: lower-case LDH(+'_') names whose last label starts with a letter (so they can never
// be an IPv4 address) and which hold no A-label; the slow path returns these unchanged.
const FAST_DOMAIN = /^(?:[a-z0-9_-]+\.)*[a-z][a-z0-9_-]*$/;
const LDH_LABEL = /^[a-z0-9_-]+$/;
const NON_ASCII = /[^\x00-\x7F]/u;
// RFC 7622 §3.2 / RFC 3490 §3.1: characters IDNA treats as a label separator (dot).
// An ASCII character no domain name holds. The WHATWG host parser behind domainToASCII does not
// keep all of them to reject them: it cuts the name at '/', '?', '#' or '\', percent-decodes it and
// drops tabs and newlines ('localhost/x', 'localhost?x' and 'local%68ost' came out as 'localhost').
const NOT_IN_A_NAME = /(?![A-Za-z0-9_.-])[\x00-\x7F]/;
const TRAILING_SEPARATOR = /[.\u3002\uFF0E\uFF61]$/u;

/** RFC 7622 §3.2.1 IP-literal: "[" IPv6 "]"; zone identifiers are not allowed. */
function normalizeIpv6Literal(s: string): string {
  const inner = s.slice(1, -1);
  if (!isIPv6(inner) || inner.includes('%')) throw new JidError('domainpart is not a valid IPv6 literal');
  // The WHATWG URL serializer gives the RFC 5952 canonical (compressed, lower-case) form.
  return new URL(`http://[${inner}]/`).hostname;
}

function normalizeName(s: string): string {
  if (NOT_IN_A_NAME.test(s)) throw new JidError('domainpart holds a character no domain name has');
  const ascii = domainToASCII(s);
  // '' means UTS #46 / Punycode rejected it; an IP here means a numeric name got reinterpreted.
  if (ascii === '' || isIP(ascii) !== 0) throw new JidError('domainpart is not a valid domain name');
  if (!ascii.split('.').every((label) => LDH_LABEL.test(label))) {
    throw new JidError('domainpart has an empty or non-LDH label');
  }
  const unicode = domainToUnicode(ascii);
  if (NON_ASCII.test(unicode)) {
    for (const label of unicode.split('.')) {
      const reason = disallowedReason(label, 'identifier');
      if (reason !== undefined) throw new JidError(`domainpart: ${reason}`);
    }
  }
  return unicode;
}

/**
 * Enforces a domainpart (RFC 7622 §3.2.2). Accepts DNS names (ASCII, U-labels or A-labels),
 * dotted-quad IPv4 and bracketed IPv6 literals. Throws JidError.
 */
export function normalizeDomain(input: string): string {
  // RFC 7622 §3.2: a final label separator MUST be stripped (only one).
  const s = TRAILING_SEPARATOR.test(input) ? input.slice(0, -1) : input;
  if (s.length <= MAX_PART_OCTETS && FAST_DOMAIN.test(s) && !s.includes('xn--')) return s;
  assertRawLength(s, 'domainpart');
  if (s === '') throw new JidError('domainpart is empty');
  let out: string;
  if (isIPv4(s)) out = s;
  else if (s.startsWith('[') && s.endsWith(']')) out = normalizeIpv6Literal(s);
  else out = normalizeName(s);
  assertOctets(out, 'domainpart');
  return out;
}

/**
 * normalizeDomain that returns null instead of throwing (and for undefined, e.g. a missing
 * attribute): for a bare domain given outside a JID, such as a stream header's 'to', compared
 * with the served domains only after enforcement (RFC 7622 §3.2: the final dot stripped).
 */
export function tryNormalizeDomain(s: string | undefined): string | null {
  if (s === undefined) return null;
  try {
    return normalizeDomain(s);
  } catch (err) {
    if (err instanceof JidError) return null;
    throw err;
  }
}

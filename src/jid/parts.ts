/**
 * Localpart and resourcepart enforcement (RFC 7622 §3.3 and §3.4).
 *
 * Localpart = PRECIS UsernameCaseMapped profile (RFC 8265 §3.3) + the RFC 7622 §3.3.1 exclusions.
 * Resourcepart = PRECIS OpaqueString profile (RFC 8265 §4.2).
 * The profile rules are a few lines on top of String.prototype.normalize/toLowerCase; the class
 * checks live in ./precis.ts (see there for exactly what is and is not checked).
 *
 * Not checked: the Directionality ("Bidi") Rule of RFC 8265 §3.3.1 step 5 (RFC 5893), because it
 * needs the Bidi_Class property, which JavaScript RegExp cannot query.
 */
import { assertOctets, assertRawLength, JidError, MAX_PART_OCTETS } from './errors.js';
import { disallowedReason } from './precis.js';

// Fast paths (this runs on every stanza 'to'/'from'): strings these match are already in
// enforced form, so the slow path would return them unchanged.
// Localpart: printable ASCII (RFC 8264 §9.11 ASCII7) minus upper case and the RFC 7622 §3.3.1
// exclusions " & ' / : < > @.
const FAST_LOCAL = /^[a-z0-9!#$%()*+,.;=?[\\\]^_`{|}~-]+$/;
// Resourcepart: printable ASCII plus U+0020 (FreeformClass allows Spaces, RFC 8264 §9.14).
const FAST_RESOURCE = /^[\x20-\x7E]+$/;

// RFC 7622 §3.3.1: characters a localpart MUST NOT contain, in addition to the PRECIS rules.
const LOCAL_EXCLUDED = /["&'/:<>@]/;
// RFC 8265 §3.3.1 step 1: fullwidth/halfwidth code points (decomposition types <wide> and
// <narrow>) live in U+3000 and U+FF01..U+FFEE; NFKC of one of them is its decomposition mapping.
const WIDE_OR_NARROW = /[\u3000\uFF01-\uFFEE]/gu;
// RFC 8265 §4.2.1 step 1: non-ASCII spaces (Zs other than U+0020) map to U+0020.
const NON_ASCII_SPACE = /(?!\u0020)\p{Zs}/gu;

/** RFC 8265 §3.3.1 steps 1-4: width map, (no additional mapping), toLowerCase, NFC. */
function usernameCaseMapped(s: string): string {
  return s
    .replace(WIDE_OR_NARROW, (ch) => ch.normalize('NFKC'))
    .toLowerCase()
    .normalize('NFC');
}

/** RFC 8265 §4.2.1 steps 1-4: map non-ASCII spaces, no case mapping, NFC. */
function opaqueString(s: string): string {
  return s.replace(NON_ASCII_SPACE, ' ').normalize('NFC');
}

/**
 * RFC 8264 §7 warns the mapping rules are not idempotent for every input. As RFC 8266 §2.4 does
 * for nicknames, reapply them until the output is stable; give up after three reapplications.
 */
function stabilize(s: string, rules: (s: string) => string, part: string): string {
  let current = s;
  for (let pass = 0; pass < 4; pass++) {
    const next = rules(current);
    if (next === current) return current;
    current = next;
  }
  throw new JidError(`${part} does not stabilise under PRECIS enforcement`);
}

/**
 * Enforces a localpart (RFC 7622 §3.3.2): UsernameCaseMapped, then the §3.3.1 exclusions.
 * '' is not accepted here; an absent localpart is the caller's business. Throws JidError.
 */
export function normalizeLocal(s: string): string {
  if (s.length <= MAX_PART_OCTETS && FAST_LOCAL.test(s)) return s;
  assertRawLength(s, 'localpart');
  const out = stabilize(s, usernameCaseMapped, 'localpart');
  assertOctets(out, 'localpart');
  if (LOCAL_EXCLUDED.test(out)) throw new JidError('localpart has a character RFC 7622 §3.3.1 excludes');
  const reason = disallowedReason(out, 'identifier');
  if (reason !== undefined) throw new JidError(`localpart: ${reason}`);
  return out;
}

/**
 * Enforces a resourcepart (RFC 7622 §3.4.2): OpaqueString. Case is preserved.
 * '' is not accepted here; an absent resourcepart is the caller's business. Throws JidError.
 */
export function normalizeResource(s: string): string {
  if (s.length <= MAX_PART_OCTETS && FAST_RESOURCE.test(s)) return s;
  assertRawLength(s, 'resourcepart');
  const out = stabilize(s, opaqueString, 'resourcepart');
  assertOctets(out, 'resourcepart');
  const reason = disallowedReason(out, 'freeform');
  if (reason !== undefined) throw new JidError(`resourcepart: ${reason}`);
  return out;
}

/**
 * PRECIS string classes, code-point validation only (RFC 8264 §4.2 IdentifierClass,
 * §4.3 FreeformClass).
 *
 * Written by hand because no PRECIS library is installed, and the derivation only needs
 * General_Category and a few binary Unicode properties, which JavaScript RegExp property escapes
 * provide from the ICU data bundled with Node (so "Unicode version" = Node's ICU version).
 *
 * CHECKED, in the order of RFC 8264 §8:
 *   - Exceptions (RFC 5892 §2.6, used by RFC 8264 §9.6): PVALID / CONTEXTO / DISALLOWED lists.
 *   - Unassigned (\p{Cn}), ASCII7 (U+0021..U+007E) PVALID, JoinControl, OldHangulJamo,
 *     PrecisIgnorableProperties (Default_Ignorable_Code_Point, Noncharacter_Code_Point),
 *     Controls (\p{Cc}), HasCompat (toNFKC(cp) != cp), LetterDigits, OtherLetterDigits, Spaces,
 *     Symbols, Punctuation; anything else (private use, surrogates, other Cf, Zl, Zp) DISALLOWED.
 *   - CONTEXTO rules of RFC 5892 Appendix A.3-A.9 (middle dot, Greek keraia, Hebrew
 *     geresh/gershayim, katakana middle dot, Arabic-Indic digit mixing).
 * NOT CHECKED:
 *   - CONTEXTJ (RFC 5892 Appendix A.1/A.2): needs Canonical_Combining_Class and Joining_Type,
 *     which RegExp cannot query, so ZERO WIDTH (NON-)JOINER is always rejected (stricter).
 *   - BackwardCompatible (RFC 8264 §9.7) is empty today, so there is nothing to do.
 */

export type StringClass = 'identifier' | 'freeform';
type Property = 'PVALID' | 'CONTEXTO' | 'CONTEXTJ' | 'DISALLOWED' | 'UNASSIGNED';

// RFC 5892 §2.6 Exceptions.
const EXCEPTION_PVALID = new Set([0x00df, 0x03c2, 0x06fd, 0x06fe, 0x0f0b, 0x3007]);
const EXCEPTION_DISALLOWED = new Set([
  0x0640, 0x07fa, 0x302e, 0x302f, 0x3031, 0x3032, 0x3033, 0x3034, 0x3035, 0x303b,
]);
const EXCEPTION_CONTEXTO = /^[\u00B7\u0375\u05F3\u05F4\u0660-\u0669\u06F0-\u06F9\u30FB]$/u;

// RFC 8264 §9 categories.
const UNASSIGNED = /^\p{Cn}$/u; // §9.4 (noncharacters are also Cn; both end up rejected)
const ASCII7 = /^[\x21-\x7E]$/u; // §9.11
const JOIN_CONTROL = /^\p{Join_Control}$/u; // §9.8
// §9.9 OldHangulJamo = Hangul_Syllable_Type L, V or T; these blocks hold exactly those.
const OLD_HANGUL_JAMO = /^[\u1100-\u11FF\uA960-\uA97F\uD7B0-\uD7FF]$/u;
const IGNORABLE = /^[\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}]$/u; // §9.13
const CONTROLS = /^\p{Cc}$/u; // §9.12
const LETTER_DIGITS = /^[\p{Ll}\p{Lu}\p{Lo}\p{Nd}\p{Lm}\p{Mn}\p{Mc}]$/u; // §9.1
// §9.2 OtherLetterDigits, §9.14 Spaces, §9.15 Symbols, §9.16 Punctuation.
const FREEFORM_ONLY = /^[\p{Lt}\p{Nl}\p{No}\p{Me}\p{Zs}\p{S}\p{P}]$/u;

/** RFC 8264 §8 derivation for one code point (given as a one-code-point string). */
function derive(ch: string, cls: StringClass): Property {
  const cp = ch.codePointAt(0) ?? 0;
  if (EXCEPTION_PVALID.has(cp)) return 'PVALID';
  if (EXCEPTION_DISALLOWED.has(cp)) return 'DISALLOWED';
  if (EXCEPTION_CONTEXTO.test(ch)) return 'CONTEXTO';
  if (UNASSIGNED.test(ch)) return 'UNASSIGNED';
  if (ASCII7.test(ch)) return 'PVALID';
  if (JOIN_CONTROL.test(ch)) return 'CONTEXTJ';
  if (OLD_HANGUL_JAMO.test(ch) || IGNORABLE.test(ch) || CONTROLS.test(ch)) return 'DISALLOWED';
  const freeform = cls === 'freeform' ? 'PVALID' : 'DISALLOWED';
  if (ch.normalize('NFKC') !== ch) return freeform; // §9.17 HasCompat
  if (LETTER_DIGITS.test(ch)) return 'PVALID';
  if (FREEFORM_ONLY.test(ch)) return freeform;
  return 'DISALLOWED';
}

const GREEK = /^\p{Script=Greek}$/u;
const HEBREW = /^\p{Script=Hebrew}$/u;
const KANA_OR_HAN = /^[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]$/u;
const ARABIC_INDIC = /^[\u0660-\u0669]$/u;
const EXTENDED_ARABIC_INDIC = /^[\u06F0-\u06F9]$/u;

/** RFC 5892 Appendix A.3-A.9: CONTEXTO rules, evaluated over the whole string. */
function contextOk(cps: readonly string[], i: number): boolean {
  const cp = cps[i]?.codePointAt(0) ?? 0;
  const before = cps[i - 1] ?? '';
  const after = cps[i + 1] ?? '';
  if (cp === 0x00b7) return before === 'l' && after === 'l'; // A.3 MIDDLE DOT
  if (cp === 0x0375) return GREEK.test(after); // A.4 GREEK LOWER NUMERAL SIGN
  if (cp === 0x05f3 || cp === 0x05f4) return HEBREW.test(before); // A.5, A.6
  if (cp === 0x30fb) return cps.some((c) => KANA_OR_HAN.test(c)); // A.7 KATAKANA MIDDLE DOT
  if (cp <= 0x0669) return !cps.some((c) => EXTENDED_ARABIC_INDIC.test(c)); // A.8
  return !cps.some((c) => ARABIC_INDIC.test(c)); // A.9
}

/**
 * Returns why `s` is not a valid string of the given class, or undefined if every code point is
 * allowed. The caller applies the profile's mapping rules first (RFC 8264 §7).
 */
export function disallowedReason(s: string, cls: StringClass): string | undefined {
  const cps = Array.from(s);
  for (let i = 0; i < cps.length; i++) {
    const ch = cps[i] ?? '';
    const property = derive(ch, cls);
    if (property === 'PVALID') continue;
    if (property === 'CONTEXTO' && contextOk(cps, i)) continue;
    const hex = (ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0');
    return `U+${hex} is ${property} in the PRECIS ${cls} class`;
  }
  return undefined;
}

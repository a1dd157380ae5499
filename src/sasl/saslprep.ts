/**
 * SASLprep (RFC 4013), as SCRAM requires for user names and passwords (RFC 5802 §2.2 Normalize).
 * A thin wrapper so the rest of the code does not depend on the library's CommonJS export shape.
 */
import saslprepLib from '@mongodb-js/saslprep';

const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

/**
 * Prepares `s` as a "stored string" (RFC 4013 §2.5 / RFC 3454 §7: unassigned code points are
 * prohibited). Throws an Error for prohibited characters or a bidi violation (RFC 4013 §2.3,
 * §2.4). Note the result may be '' (e.g. for a lone U+00AD); callers decide whether that is valid.
 */
export function saslprep(s: string): string {
  // Printable ASCII comes out unchanged: RFC 4013's mappings, prohibitions and bidi rules only
  // touch other characters, and NFKC leaves ASCII alone. Most user names and passwords are ASCII,
  // and the library's table walk was 1.4 % of the server's CPU per login in the benchmark.
  if (PRINTABLE_ASCII.test(s)) return s;
  try {
    return saslprepLib(s);
  } catch (err) {
    // The library throws a TypeError (reading codePointAt of undefined) when
    // mapping leaves nothing, e.g. for a lone U+00AD: report that plainly.
    const reason = err instanceof TypeError ? 'nothing is left after mapping' : err instanceof Error ? err.message : String(err);
    throw new Error(`SASLprep rejected the string: ${reason}`, { cause: err });
  }
}

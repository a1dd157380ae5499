import { notWellFormed, policyViolation, restrictedXml, unsupportedEncoding } from './errors.js';

// Checks fast-xml-parser cannot make: it has no notion of RFC 6120 §11.1 restricted XML (its
// validator silently skips comments, PIs and DOCTYPEs), no size limit, no strict UTF-8 decoding,
// and accepts any character, including NUL.

const UTF8 = new TextDecoder('utf-8', { fatal: true });

// Characters outside the XML 1.0 §2.2 Char production. With the `u` flag a surrogate only
// matches when it is unpaired, so valid astral characters pass.
const BAD_CHAR = /[\0-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF\uD800-\uDFFF]/u;
// One pass finds both a forbidden character and the start of `<!` / `<?` markup.
const BAD_CHAR_OR_MARKUP = /[\0-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF\uD800-\uDFFF]|<[!?]/gu;
// XML 1.0 §2.8 XMLDecl, version 1.0 only (RFC 6120 §11.6). `\s` is avoided: XML's S is just these 4.
const XML_DECL =
  /<\?xml[ \t\n\r]+version[ \t\n\r]*=[ \t\n\r]*(["'])1\.0\1(?:[ \t\n\r]+encoding[ \t\n\r]*=[ \t\n\r]*(["'])(?<encoding>[A-Za-z][\w.-]*)\2)?(?:[ \t\n\r]+standalone[ \t\n\r]*=[ \t\n\r]*(["'])(?:yes|no)\4)?[ \t\n\r]*\?>/y;
// XML 1.0 §2.8 markupdecl keywords: DTD content, forbidden by RFC 6120 §11.1.
const DTD_DECL = /<!(?:DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)/y;

/** Whether every character of `s` is an XML 1.0 §2.2 Char (no C0 controls but tab, LF, CR; no U+FFFE/U+FFFF; no unpaired surrogate). */
export function isXmlText(s: string): boolean {
  return !BAD_CHAR.test(s);
}

/** Rejects oversized input (RFC 6120 §4.9.3.14 policy-violation) before any parsing work. */
export function decodeInput(input: string | Uint8Array, maxBytes: number): string {
  if (typeof input !== 'string') {
    if (input.byteLength > maxBytes) throw policyViolation(`document exceeds ${maxBytes} bytes`, 'size');
    try {
      return UTF8.decode(input); // also drops a leading BOM
    } catch {
      throw notWellFormed('input is not valid UTF-8'); // RFC 6120 §11.6: UTF-8 only
    }
  }
  // Each UTF-16 unit encodes to 1..3 bytes, so the exact count is only needed in between.
  if (input.length > maxBytes || (input.length * 3 > maxBytes && Buffer.byteLength(input, 'utf8') > maxBytes)) {
    throw policyViolation(`document exceeds ${maxBytes} bytes`, 'size');
  }
  return input.charCodeAt(0) === 0xfeff ? input.slice(1) : input;
}

/** Offset just past a leading XML declaration (XML 1.0 §2.8), or 0 when there is none. */
export function skipXmlDecl(s: string): number {
  if (!s.startsWith('<?xml') || !isXmlSpace(s.charCodeAt(5))) return 0; // `<?xml-foo`: a PI, rejected later
  XML_DECL.lastIndex = 0;
  const decl = XML_DECL.exec(s);
  if (!decl) throw notWellFormed('malformed XML declaration');
  // RFC 6120 §11.6: UTF-8 only; declaring another encoding is a stream error, unsupported-encoding.
  const encoding = decl.groups?.encoding;
  if (encoding !== undefined && encoding.toLowerCase() !== 'utf-8') throw unsupportedEncoding(`encoding '${encoding}' is not UTF-8`);
  return XML_DECL.lastIndex;
}

/**
 * RFC 6120 §11.1: no comments, processing instructions (the XML declaration is skipped before
 * this runs), DTDs or entity declarations; XML 1.0 §2.2: no characters outside Char.
 * A `<!` or `<?` inside an attribute value (itself not well-formed) is reported as restricted-xml.
 */
export function checkCharsAndMarkup(s: string): void {
  const re = BAD_CHAR_OR_MARKUP;
  re.lastIndex = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    const at = m.index;
    if (m[0].charCodeAt(0) !== 60 /* < */) throw badChar(m[0]);
    if (m[0] === '<?') throw restrictedXml('processing instructions are not allowed');
    if (s.startsWith('<![CDATA[', at)) {
      re.lastIndex = skipCdata(s, at);
    } else if (s.startsWith('<!--', at)) {
      throw restrictedXml('comments are not allowed');
    } else {
      DTD_DECL.lastIndex = at;
      if (DTD_DECL.test(s)) throw restrictedXml('DTDs and markup declarations are not allowed');
      throw notWellFormed('unexpected "<!"');
    }
  }
}

/** CDATA content is checked for bad characters but not for markup: `<?` in it is just text. */
function skipCdata(s: string, at: number): number {
  const end = s.indexOf(']]>', at + 9);
  if (end === -1) throw notWellFormed('unterminated CDATA section');
  const bad = BAD_CHAR.exec(s.slice(at + 9, end));
  if (bad !== null) throw badChar(bad[0]);
  return end + 3;
}

/** XML 1.0 §2.3 S ::= (#x20 | #x9 | #xD | #xA)+ */
export function isXmlSpace(c: number): boolean {
  return c === 32 || c === 10 || c === 9 || c === 13;
}

function badChar(ch: string): Error {
  const hex = (ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0');
  return notWellFormed(`character U+${hex} is not allowed in XML`);
}

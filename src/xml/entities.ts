import { notWellFormed } from './errors.js';

// fast-xml-parser runs with processEntities: false, so that it never expands an entity of any kind
// (billion laughs, external entities) and leaves references as written. This file decodes them
// instead, because only the raw text tells `&foo;` (undefined entity: reject) apart from
// `&amp;foo;` (literal text "&foo;"), and because fast-xml-parser does not normalize attribute
// whitespace or reject '<' in attribute values.

// XML 1.0 §4.6: the five predefined entities. RFC 6120 §11.1 forbids references to any other
// entity, and without a DTD any other name is undefined, which XML 1.0 §4.1 (WFC: Entity
// Declared) makes a well-formedness error.
const PREDEFINED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

// A valid reference (XML 1.0 §4.1 CharRef / predefined EntityRef), else a bare '&', else
// ']]>', which XML 1.0 §2.4 forbids in character data outside a CDATA section.
const TEXT_TOKEN = /&(?:#(x[0-9A-Fa-f]+|[0-9]+)|(amp|lt|gt|quot|apos));|&|\]\]>/g;
// Same references, else a bare '&', else '<' (XML 1.0 §3.1 AttValue excludes it), else a
// literal tab or newline, which §3.3.3 normalizes to a space ('\r' is already gone: §2.11
// line ends are normalized by fast-xml-parser before anything else).
const ATTR_TOKEN = /&(?:#(x[0-9A-Fa-f]+|[0-9]+)|(amp|lt|gt|quot|apos));|[&<\t\n]/g;

// Quick "anything to do?" tests before replace(): most text and attribute values contain no
// reference at all. indexOf() is much faster than a regex scan on long text (base64 payloads).
const ATTR_SPECIAL = /[&<\t\n]/;

/** Decodes parsed character data. Returns the input itself when it holds nothing to decode. */
export function decodeText(raw: string): string {
  if (raw.indexOf('&') === -1 && raw.indexOf(']]>') === -1) return raw;
  return raw.replace(TEXT_TOKEN, decodeTextToken);
}

/** Decodes and normalizes an attribute value as written between its quotes. */
export function decodeAttr(raw: string): string {
  return ATTR_SPECIAL.test(raw) ? raw.replace(ATTR_TOKEN, decodeAttrToken) : raw;
}

function decodeTextToken(match: string, num: string | undefined, name: string | undefined): string {
  if (name !== undefined) return PREDEFINED[name];
  if (num !== undefined) return charRef(num);
  if (match === '&') throw notWellFormed('undefined entity reference or unescaped "&" in text');
  throw notWellFormed('"]]>" is not allowed in character data');
}

function decodeAttrToken(match: string, num: string | undefined, name: string | undefined): string {
  if (name !== undefined) return PREDEFINED[name];
  if (num !== undefined) return charRef(num);
  if (match === '&') throw notWellFormed('undefined entity reference or unescaped "&" in attribute value');
  if (match === '<') throw notWellFormed('"<" is not allowed in attribute values');
  return ' ';
}

/** XML 1.0 §4.1 WFC: Legal Character: the referenced code point must match the Char production. */
function charRef(num: string): string {
  const cp = num.charCodeAt(0) === 120 /* x */ ? parseInt(num.slice(1), 16) : parseInt(num, 10);
  if (!isXmlChar(cp)) throw notWellFormed(`character reference &#${num}; is not an XML character`);
  return String.fromCodePoint(cp);
}

/** XML 1.0 §2.2 Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF] */
function isXmlChar(cp: number): boolean {
  if (cp >= 0x20) return cp <= 0xd7ff || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
  return cp === 0x9 || cp === 0xa || cp === 0xd;
}

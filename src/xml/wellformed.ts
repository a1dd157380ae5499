import { notWellFormed, policyViolation } from './errors.js';
import type { XmlLimits } from './limits.js';
import { isXmlSpace } from './prescan.js';

// XML 1.0 well-formedness of the document structure, in one pass over the string, before
// fast-xml-parser builds the tree. Hand-written because fast-xml-parser's parser accepts broken
// input (it is not validating) and its XMLValidator tokenizes the whole document a second time:
// in the message benchmark the validator was 12 % of the server's CPU, as much as the parse
// itself, and it still let content after a self-closing root through. This checks only what the
// other passes do not:
//   - prescan.ts ran first: characters, restricted markup (comments, PIs, DTDs), CDATA ends;
//   - entities.ts checks references, ']]>' in text and '<' in attribute values as it decodes;
//   - convert.ts checks namespaces, expanded-name duplicates and the value-length limit.
// Here: one root element and nothing but white space around it, tags nested and matched, names
// (XML 1.0 §2.3 Name), attribute syntax and unique attribute names (§3.1 WFC: Unique Att Spec),
// and the depth and attribute-count limits (policy-violation) before any tree is built.

const LT = 60; // <
const GT = 62; // >
const SLASH = 47; // /
const BANG = 33; // !
const EQ = 61; // =
const DQUOTE = 34; // "
const SQUOTE = 39; // '

/** Start offsets and lengths of the open elements' names and of the current start tag's attribute names. */
interface Scan {
  readonly limits: XmlLimits;
  readonly open: number[]; // [at0, len0, at1, len1, …]
  readonly attrs: number[]; // likewise
}

/** @throws XmlError not-well-formed, or policy-violation for the depth and attribute limits */
export function checkWellFormed(s: string, limits: XmlLimits): void {
  const scan: Scan = { limits, open: [], attrs: [] };
  const open = scan.open;
  let i = skipSpace(s, 0);
  if (i === s.length || s.charCodeAt(i) !== LT) throw notWellFormed('expected one root element');
  for (;;) {
    // At a '<'.
    const c = s.charCodeAt(i + 1);
    if (c === SLASH) {
      i = endTag(scan, s, i + 2);
      if (open.length === 0) return rootClosed(s, i);
    } else if (c === BANG) {
      // prescan.ts let only a complete CDATA section through; it is content, so not outside the root.
      if (open.length === 0) throw notWellFormed('CDATA section outside the root element');
      i = s.indexOf(']]>', i + 9) + 3;
    } else {
      i = startTag(scan, s, i + 1);
      if (open.length === 0) return rootClosed(s, i); // a self-closing root
    }
    // Character data up to the next tag; references in it are checked by entities.ts.
    i = s.indexOf('<', i);
    if (i === -1) throw notWellFormed(`element "${s.slice(open.at(-2)!, open.at(-2)! + open.at(-1)!)}" is not closed`);
  }
}

/** Past the '<' of a start tag: returns the offset after its '>'. */
function startTag(scan: Scan, s: string, at: number): number {
  const { open, limits } = scan; // open holds this element's ancestors: its depth is open.length / 2 + 1
  if (open.length / 2 >= limits.maxDepth) throw policyViolation(`elements nested deeper than ${limits.maxDepth}`, 'depth');
  const nameEnd = name(s, at);
  scan.attrs.length = 0;
  let i = nameEnd;
  for (;;) {
    const spaced = i < s.length && isXmlSpace(s.charCodeAt(i));
    i = skipSpace(s, i);
    const c = s.charCodeAt(i);
    if (c === GT) {
      open.push(at, nameEnd - at);
      return i + 1;
    }
    if (c === SLASH) {
      if (s.charCodeAt(i + 1) !== GT) throw notWellFormed('expected ">" after "/" in a start tag');
      return i + 2;
    }
    if (!spaced) throw notWellFormed(i === s.length ? 'unterminated start tag' : 'expected white space before an attribute');
    i = attribute(scan, s, i);
  }
}

/** At an attribute's name: checks Name S? '=' S? quoted value; returns the offset after the closing quote. */
function attribute(scan: Scan, s: string, at: number): number {
  const { attrs, limits } = scan;
  const nameEnd = name(s, at);
  const len = nameEnd - at;
  for (let k = 0; k < attrs.length; k += 2) {
    if (attrs[k + 1] === len && sameText(s, at, attrs[k]!, len)) throw notWellFormed(`attribute "${s.slice(at, at + len)}" appears twice`);
  }
  if (attrs.length / 2 >= limits.maxAttrs) throw policyViolation(`more than ${limits.maxAttrs} attributes`);
  attrs.push(at, len);
  let i = skipSpace(s, nameEnd);
  if (s.charCodeAt(i) !== EQ) throw notWellFormed(`expected "=" after attribute "${s.slice(at, at + len)}"`);
  i = skipSpace(s, i + 1);
  const quote = s.charCodeAt(i);
  if (quote !== DQUOTE && quote !== SQUOTE) throw notWellFormed(`the value of attribute "${s.slice(at, at + len)}" is not quoted`);
  const end = s.indexOf(quote === DQUOTE ? '"' : "'", i + 1);
  if (end === -1) throw notWellFormed(`unterminated value of attribute "${s.slice(at, at + len)}"`);
  // Only the value itself is scanned: indexOf('<') could run on to the end of the document for
  // every attribute, 64 times the input for a start tag followed by a long text.
  for (let k = i + 1; k < end; k++) if (s.charCodeAt(k) === LT) throw notWellFormed('"<" is not allowed in attribute values');
  return end + 1;
}

/** Past the '</' of an end tag: matches it to the open element; returns the offset after its '>'. */
function endTag(scan: Scan, s: string, at: number): number {
  const open = scan.open;
  const nameEnd = name(s, at);
  const len = nameEnd - at;
  if (open.length === 0) throw notWellFormed('end tag without a start tag');
  const openAt = open[open.length - 2]!;
  const openLen = open[open.length - 1]!;
  if (openLen !== len || !sameText(s, at, openAt, len)) {
    throw notWellFormed(`end tag "${s.slice(at, at + len)}" does not match "${s.slice(openAt, openAt + openLen)}"`);
  }
  open.length -= 2;
  const i = skipSpace(s, nameEnd);
  if (s.charCodeAt(i) !== GT) throw notWellFormed('expected ">" to end an end tag');
  return i + 1;
}

/** XML 1.0 §2.8 document: after the root element only white space (Misc without comments and PIs). */
function rootClosed(s: string, at: number): void {
  if (skipSpace(s, at) !== s.length) throw notWellFormed('content after the root element');
}

/** XML 1.0 §2.3 Name at `at`: returns the offset just past it. */
function name(s: string, at: number): number {
  let i = at;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      // [#x10000-#xEFFFF]: the high surrogates D800..DB7F; prescan.ts already rejected unpaired ones.
      if (c > 0xdb7f) break;
      i++;
      continue;
    }
    if (i === at ? !isNameStartChar(c) : !isNameChar(c)) break;
  }
  if (i === at) throw notWellFormed(i === s.length ? 'unexpected end of the document' : 'expected a name');
  return i;
}

/** XML 1.0 §2.3 NameStartChar, for one UTF-16 unit of the Basic Multilingual Plane. */
export function isNameStartChar(c: number): boolean {
  if (c < 0x80) return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58; // a-z A-Z _ :
  return (c >= 0xc0 && c <= 0xd6) || (c >= 0xd8 && c <= 0xf6) || (c >= 0xf8 && c <= 0x2ff)
    || (c >= 0x370 && c <= 0x37d) || (c >= 0x37f && c <= 0x1fff) || c === 0x200c || c === 0x200d
    || (c >= 0x2070 && c <= 0x218f) || (c >= 0x2c00 && c <= 0x2fef) || (c >= 0x3001 && c <= 0xd7ff)
    || (c >= 0xf900 && c <= 0xfdcf) || (c >= 0xfdf0 && c <= 0xfffd);
}

/** XML 1.0 §2.3 NameChar. */
function isNameChar(c: number): boolean {
  if (c < 0x80) return isNameStartChar(c) || (c >= 48 && c <= 57) || c === 45 || c === 46; // 0-9 - .
  return isNameStartChar(c) || c === 0xb7 || (c >= 0x300 && c <= 0x36f) || c === 0x203f || c === 0x2040;
}

/** Whether s[a, a+len) and s[b, b+len) hold the same text, without slicing either. */
function sameText(s: string, a: number, b: number, len: number): boolean {
  for (let k = 0; k < len; k++) if (s.charCodeAt(a + k) !== s.charCodeAt(b + k)) return false;
  return true;
}

function skipSpace(s: string, at: number): number {
  let i = at;
  while (i < s.length && isXmlSpace(s.charCodeAt(i))) i++;
  return i;
}

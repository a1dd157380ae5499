import { XmlElement, type XmlNode } from './element.js';
import { decodeAttr, decodeText } from './entities.js';
import { notWellFormed, policyViolation } from './errors.js';
import type { XmlLimits } from './limits.js';
import { NS } from './ns.js';
import { isNameStartChar } from './wellformed.js';

// Turns fast-xml-parser's preserveOrder output into XmlElements. Hand-written because
// fast-xml-parser has no namespace support (only prefix stripping), does not decode entities
// here (see entities.ts) and enforces none of XmlLimits. Depth and attribute count were checked
// by wellformed.ts before fast-xml-parser ran; the value length is checked here, where values are
// decoded. Arrays produced by fast-xml-parser are reused in place.

/** preserveOrder entry: {tag: entries, ':@'?: attrs} | {'#text': s} | {'#cdata': [{'#text': s}]} */
export type FxpEntry = Record<string, unknown>;
export const TEXT_KEY = '#text';
export const CDATA_KEY = '#cdata';
const ATTRS_KEY = ':@';

/** In-scope namespace bindings as a linked list: allocated only where an element declares one. */
interface Binding {
  readonly prefix: string; // '' for the default namespace
  readonly uri: string;
  readonly next: Binding | null;
  readonly size: number; // bindings in this list, so lookups stay bounded
}

// Namespaces in XML 1.0 §3: the `xml` prefix is bound by definition.
const XML_BINDING: Binding = { prefix: 'xml', uri: NS.XML, next: null, size: 1 };

// Lookups walk the list, so maxDepth × maxAttrs declarations in scope would make every element
// cost thousands of comparisons. Real stanzas have a handful; this caps the walk (XmlLimits.maxBindings).
const MAX_BINDINGS_IN_SCOPE = 64;

function bind(prefix: string, uri: string, scope: Binding, limits: XmlLimits): Binding {
  const max = limits.maxBindings ?? MAX_BINDINGS_IN_SCOPE;
  if (scope.size >= max) throw policyViolation(`more than ${max} namespace declarations in scope`);
  return { prefix, uri, next: scope, size: scope.size + 1 };
}

export function convertRoot(entries: FxpEntry[], limits: XmlLimits, defaultNs: string): XmlElement {
  if (entries.length !== 1) throw notWellFormed('expected exactly one root element');
  const root = entries[0];
  const name = firstKey(root);
  if (name === TEXT_KEY || name === CDATA_KEY) throw notWellFormed('expected a root element');
  return convertElement(root, name, bind('', defaultNs, XML_BINDING, limits), limits);
}

function convertElement(entry: FxpEntry, name: string, scope: Binding, limits: XmlLimits): XmlElement {
  let attrs = entry[ATTRS_KEY] as Record<string, string> | undefined;
  if (attrs === undefined) attrs = {};
  else scope = readAttrs(attrs, scope, limits);
  const ns = elementNs(name, scope);
  const children = entry[name] as unknown[];
  convertChildren(children, scope, limits);
  return XmlElement.adopt(name, attrs, children as XmlNode[], ns);
}

/** Replaces each entry of `list` with its XmlNode, merging adjacent text and CDATA. */
function convertChildren(list: unknown[], scope: Binding, limits: XmlLimits): void {
  let w = 0;
  for (let r = 0; r < list.length; r++) {
    const entry = list[r] as FxpEntry;
    const key = firstKey(entry);
    let text: string;
    if (key === TEXT_KEY) text = decodeText(entry[TEXT_KEY] as string);
    else if (key === CDATA_KEY) text = ((entry[CDATA_KEY] as FxpEntry[])[0]?.[TEXT_KEY] as string | undefined) ?? '';
    else {
      list[w++] = convertElement(entry, key, scope, limits);
      continue;
    }
    if (text === '') continue;
    const prev = w > 0 ? list[w - 1] : undefined;
    if (typeof prev === 'string') list[w - 1] = prev + text;
    else list[w++] = text;
  }
  list.length = w;
}

/** Decodes values in place, enforces the value-length limit and returns the scope with this element's declarations. */
function readAttrs(attrs: Record<string, string>, scope: Binding, limits: XmlLimits): Binding {
  let prefixed = false;
  for (const name in attrs) {
    const raw = attrs[name];
    if (raw.length > limits.maxAttrValueLength) {
      throw policyViolation(`attribute value longer than ${limits.maxAttrValueLength}`);
    }
    const value = decodeAttr(raw);
    attrs[name] = value;
    if (name === 'xmlns') scope = bind('', value, scope, limits);
    else if (name.startsWith('xmlns:')) scope = declarePrefix(name, value, scope, limits);
    else if (name.indexOf(':') !== -1) prefixed = true;
  }
  if (prefixed) checkAttrPrefixes(attrs, scope);
  return scope;
}

/** Namespaces in XML 1.0 §3 (NSC: Reserved Prefixes, NSC: No Prefix Undeclaring). */
function declarePrefix(name: string, uri: string, scope: Binding, limits: XmlLimits): Binding {
  prefixLength(name, 5);
  const prefix = name.slice(6);
  if (uri === '') throw notWellFormed(`prefix "${prefix}" cannot be undeclared`);
  if (prefix === 'xmlns') throw notWellFormed('the xmlns prefix cannot be declared');
  if ((prefix === 'xml') !== (uri === NS.XML)) throw notWellFormed('the xml prefix and namespace go only together');
  if (prefix === 'xml') return scope;
  return bind(prefix, uri, scope, limits);
}

/**
 * Namespaces in XML 1.0 §5 (NSC: Prefix Declared) and §6.3 (Attributes Unique: p:x and q:x clash
 * when p and q are bound to the same URI; fast-xml-parser's validator compares raw names only).
 * Only runs for elements with prefixed attributes; the Set is only built for a second one.
 */
function checkAttrPrefixes(attrs: Record<string, string>, scope: Binding): void {
  let first: string | undefined;
  let seen: Set<string> | undefined;
  for (const name in attrs) {
    const colon = name.indexOf(':');
    if (colon === -1 || (colon === 5 && name.startsWith('xmlns'))) continue;
    const uri = lookup(scope, name, prefixLength(name, colon));
    if (uri === undefined) throw notWellFormed(`undeclared namespace prefix on attribute "${name}"`);
    const expanded = uri + '\0' + name.slice(colon + 1); // NUL cannot occur in a parsed value
    if (first === undefined) {
      first = expanded;
      continue;
    }
    seen ??= new Set([first]);
    if (seen.has(expanded)) throw notWellFormed(`attribute "${name}" repeats an expanded name`);
    seen.add(expanded);
  }
}

/** Namespaces in XML 1.0 §5/§6: an element's namespace comes from its prefix or the default. */
function elementNs(name: string, scope: Binding): string {
  const colon = name.indexOf(':');
  if (colon === -1) return lookup(scope, name, 0) as string; // the root scope always binds ''
  const len = prefixLength(name, colon);
  if (len === 5 && name.startsWith('xmlns')) throw notWellFormed('elements cannot use the xmlns prefix');
  const uri = lookup(scope, name, len);
  if (uri === undefined) throw notWellFormed(`undeclared namespace prefix on element "${name}"`);
  return uri;
}

/** Walks the bindings comparing the first `len` chars of `qname`, so no prefix string is sliced. */
function lookup(scope: Binding | null, qname: string, len: number): string | undefined {
  for (let b = scope; b !== null; b = b.next) {
    if (b.prefix.length === len && qname.startsWith(b.prefix)) return b.uri;
  }
  return undefined;
}

/**
 * Namespaces in XML 1.0 §3 QName ::= Prefix ':' LocalPart, neither part empty nor holding a
 * colon. fast-xml-parser accepts names such as `:a`, `a:` and `a:b:c`. Both parts are NCNames,
 * so the local part starts as a Name does (§4): `a:-b`, `a:1b` or `xmlns:.p` are XML 1.0 Names
 * but not qualified names, and a namespace-aware parser at a recipient refuses them. (The prefix
 * starts the Name, already checked by wellformed.ts; a high surrogate is an astral NameStartChar.)
 */
function prefixLength(name: string, colon: number): number {
  const next = name.charCodeAt(colon + 1);
  if (colon === 0 || colon === name.length - 1 || name.indexOf(':', colon + 1) !== -1
    || !(isNameStartChar(next) || (next >= 0xd800 && next <= 0xdb7f))) {
    throw notWellFormed(`"${name}" is not a valid qualified name`);
  }
  return colon;
}

/** The tag (or '#text' / '#cdata') key is always inserted first in a preserveOrder entry. */
function firstKey(entry: FxpEntry): string {
  for (const key in entry) return key;
  return '';
}

import { XMLParser } from 'fast-xml-parser';
import { CDATA_KEY, convertRoot, TEXT_KEY, type FxpEntry } from './convert.js';
import type { XmlElement } from './element.js';
import { notWellFormed, policyViolation, XmlError } from './errors.js';
import { DEFAULT_LIMITS, type XmlLimits } from './limits.js';
import { checkCharsAndMarkup, decodeInput, skipXmlDecl } from './prescan.js';
import { checkWellFormed } from './wellformed.js';

export { XmlError, type XmlErrorCondition } from './errors.js';
export { DEFAULT_LIMITS, WRITTEN_LIMITS, type XmlLimits } from './limits.js';

/** Entity expansion is off (processEntities: false), so this is never asked to decode anything. */
const NO_ENTITY_DECODER = {
  setExternalEntities(): void {},
  addInputEntities(): void {},
  reset(): void {},
  decode: (text: string): string => text,
  setXmlVersion(): void {},
};

// One parser serves every call: its options do not depend on the limits, which convert.ts enforces.
const fxp = new XMLParser({
  preserveOrder: true, // text and elements interleaved in document order
  ignoreAttributes: false,
  attributeNamePrefix: '', // attribute keys are the names as written
  allowBooleanAttributes: false,
  parseTagValue: false, // everything stays a string
  parseAttributeValue: false,
  trimValues: false, // message bodies are kept exactly
  processEntities: false, // never expand anything; entities.ts decodes the predefined five
  htmlEntities: false,
  cdataPropName: CDATA_KEY, // keeps CDATA apart so its content is not entity-decoded
  textNodeName: TEXT_KEY,
  ignoreDeclaration: true,
  jPath: false, // callbacks get the matcher instead of a path string built for every element
  maxNestedTags: Number.MAX_SAFE_INTEGER, // depth is checked by convert.ts as policy-violation
  onDangerousProperty: (name) => name, // keep `toString="x"` as written instead of renaming it
  // Entities are off, yet without a decoder of its own the library builds one (merging its
  // entity tables) for every parse: 1-2 µs of a 7 µs parse of a small stanza.
  entityDecoder: NO_ENTITY_DECODER,
});

/**
 * Parses exactly one complete XML document with one root element (a WebSocket text frame or a
 * BOSH <body/>). Order: limits that need no parsing, then the RFC 6120 §11.1 restricted-XML scan
 * (so nothing restricted ever reaches fast-xml-parser), then well-formedness (wellformed.ts, in
 * place of fast-xml-parser's XMLValidator), then the tree.
 * @param defaultNs namespace of an unprefixed root without xmlns, e.g. 'jabber:client'
 * @throws XmlError with the RFC 6120 §4.9.3 stream error condition to send
 */
export function parseXml(input: string | Uint8Array, limits: XmlLimits = DEFAULT_LIMITS, defaultNs = ''): XmlElement {
  const whole = decodeInput(input, limits.maxBytes);
  const declEnd = skipXmlDecl(whole);
  const doc = declEnd === 0 ? whole : whole.slice(declEnd);
  checkCharsAndMarkup(doc);
  checkWellFormed(doc, limits);
  const entries = runParser(doc);
  try {
    return convertRoot(entries, limits, defaultNs);
  } catch (err) {
    // Only reachable with a maxDepth too large for the call stack.
    if (err instanceof RangeError) throw policyViolation('elements nested too deeply', 'depth');
    throw err;
  }
}

function runParser(doc: string): FxpEntry[] {
  let out: unknown;
  try {
    out = fxp.parse(doc);
  } catch (err) {
    // e.g. an element named `constructor`, refused by fast-xml-parser as a prototype-pollution guard
    if (err instanceof XmlError) throw err;
    throw notWellFormed(err instanceof Error ? err.message : String(err));
  }
  if (!Array.isArray(out)) throw notWellFormed('no root element');
  return out as FxpEntry[];
}

export interface XmlLimits {
  /** Largest document, in UTF-8 bytes. */
  maxBytes: number;
  /** Deepest element nesting; the root is depth 1. */
  maxDepth: number;
  /** Most attributes (namespace declarations included) on one element. */
  maxAttrs: number;
  /** Longest attribute value, in UTF-16 code units as written (before entity decoding). */
  maxAttrValueLength: number;
  /** Most namespace bindings in scope at once (`xml` and the default namespace included); 64 when unset (convert.ts). */
  maxBindings?: number;
}

export const DEFAULT_LIMITS: XmlLimits = Object.freeze({
  // Prosody's default c2s_stanza_size_limit is 256 KiB; a BOSH <body/> may batch several stanzas,
  // and base64 avatars (XEP-0084/XEP-0153) are the largest thing clients legitimately send.
  maxBytes: 262144,
  // Real stanzas nest about 10 deep (carbons wrapping a forwarded MAM result); 64 leaves headroom
  // while keeping the recursive tree walkers far from the call-stack limit.
  maxDepth: 64,
  // No XMPP element needs more than a dozen attributes; this bounds per-element work.
  maxAttrs: 64,
  // Attribute values are JIDs, ids and URIs; large payloads travel as text, not attributes.
  maxAttrValueLength: 65536,
});

/**
 * For reading back XML the server serialised itself (offline messages, the archive, stored vCards
 * and PEP items, a cluster inbox entry, a Redis XEP-0198 queue): not a client's input, so not held
 * to its limits. It is a stanza the server accepted under its configured limits (MAX_STANZA_SIZE
 * up to 16 MiB, MAX_XML_DEPTH and MAX_XML_ATTRIBUTES up to 1024, 64 namespace bindings in scope)
 * plus what the server adds: a `from`, an `xmlns`, a wrapper (a carbon copy, XEP-0280, is three
 * levels deeper). These bounds only keep a corrupt record from costing without end.
 */
export const WRITTEN_LIMITS: XmlLimits = Object.freeze({
  maxBytes: 64 * 1024 * 1024,
  maxDepth: 1024 + 16,
  maxAttrs: 1024 + 16,
  maxAttrValueLength: 64 * 1024 * 1024,
  // Input is held to 64; the server adds an xmlns to a stored stanza, a carbon's wrappers add four.
  maxBindings: 1024,
});

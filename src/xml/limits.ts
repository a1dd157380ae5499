export interface XmlLimits {
  /** Largest document, in UTF-8 bytes. */
  maxBytes: number;
  /** Deepest element nesting; the root is depth 1. */
  maxDepth: number;
  /** Most attributes (namespace declarations included) on one element. */
  maxAttrs: number;
  /** Longest attribute value, in UTF-16 code units as written (before entity decoding). */
  maxAttrValueLength: number;
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

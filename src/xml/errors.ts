/** RFC 6120 §4.9.3 stream error conditions the XML layer can raise (§4.9.3.10, .13, .14, .18, .22). */
export type XmlErrorCondition = 'not-well-formed' | 'restricted-xml' | 'policy-violation' | 'invalid-namespace' | 'unsupported-encoding';

/** Which limit a policy-violation enforced (xmpp_limit_refusals_total); undefined for other errors. */
export type XmlLimit = 'size' | 'depth' | 'other';

export class XmlError extends Error {
  constructor(
    readonly condition: XmlErrorCondition,
    message: string,
    readonly limit?: XmlLimit,
  ) {
    super(message);
    this.name = 'XmlError';
  }
}

export const notWellFormed = (message: string): XmlError => new XmlError('not-well-formed', message);
export const restrictedXml = (message: string): XmlError => new XmlError('restricted-xml', message);
export const unsupportedEncoding = (message: string): XmlError => new XmlError('unsupported-encoding', message);
export const policyViolation = (message: string, limit: XmlLimit = 'other'): XmlError => new XmlError('policy-violation', message, limit);

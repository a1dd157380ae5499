/** RFC 6120 §4.9.3 stream error conditions the XML layer can raise (§4.9.3.10, .13, .14, .18). */
export type XmlErrorCondition = 'not-well-formed' | 'restricted-xml' | 'policy-violation' | 'invalid-namespace';

export class XmlError extends Error {
  constructor(
    readonly condition: XmlErrorCondition,
    message: string,
  ) {
    super(message);
    this.name = 'XmlError';
  }
}

export const notWellFormed = (message: string): XmlError => new XmlError('not-well-formed', message);
export const restrictedXml = (message: string): XmlError => new XmlError('restricted-xml', message);
export const policyViolation = (message: string): XmlError => new XmlError('policy-violation', message);

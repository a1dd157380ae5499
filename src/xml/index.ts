export { NS } from './ns.js';
export { XmlElement, x, type XmlNode, type XmlChild, type XmlAttrInput, type XmlAttrValue } from './element.js';
export { serialize, serializeOut, watchSerialization, unwatchSerialization, escapeText, escapeAttr } from './serialize.js';
export { serializeInto } from './serialize-bytes.js';
export { standalone } from './standalone.js';
export { isXmlText } from './prescan.js';
export { parseXml, XmlError, DEFAULT_LIMITS, WRITTEN_LIMITS, type XmlErrorCondition, type XmlLimits } from './parse.js';

/** What the PEP handlers share about the pubsub wire format (XEP-0060). */
import { x, type XmlElement } from '../../../xml/index.js';
import { PubsubError } from './errors.js';

/** The `node` attribute a request names (XEP-0060 §7.1.3.3: nodeid-required without it). */
export function nodeOf(el: XmlElement): string {
  const node = el.attr('node');
  if (!node) throw new PubsubError('bad-request', 'nodeid-required');
  return node;
}

export function pubsub(ns: string, ...children: XmlElement[]): XmlElement {
  return x('pubsub', { xmlns: ns }, ...children);
}

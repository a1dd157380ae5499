import { serialize } from './serialize.js';

/** Strings are text nodes, already unescaped. */
export type XmlNode = XmlElement | string;
export type XmlAttrValue = string | number | boolean | undefined | null;
export type XmlAttrInput = Record<string, XmlAttrValue>;
/** What append() and x() accept: falsy entries are skipped so callers can write `cond && x(...)`. */
export type XmlChild = XmlNode | undefined | null | false;

export class XmlElement {
  /** Qualified name as written, e.g. 'iq' or 'stream:error'. */
  name: string;
  /** Attributes as written, including xmlns / xmlns:p declarations; values unescaped. */
  attrs: Record<string, string>;
  /** Document order, text and elements interleaved. */
  children: XmlNode[];
  /** Resolved namespace URI ('' if none). */
  ns: string;

  constructor(name: string, attrs?: XmlAttrInput, children?: XmlNode[]) {
    this.name = name;
    this.attrs = attrs === undefined ? {} : normalizeAttrs(attrs);
    this.children = [];
    this.ns = this.attrs.xmlns ?? '';
    if (children !== undefined) appendNodes(this, children);
  }

  /**
   * Wraps attrs and children without copying or normalizing them; the caller hands over ownership.
   * The parser uses it so each parsed element costs one object, not a copied attribute map.
   */
  static adopt(name: string, attrs: Record<string, string>, children: XmlNode[], ns: string): XmlElement {
    const el = Object.create(XmlElement.prototype) as XmlElement;
    el.name = name;
    el.attrs = attrs;
    el.children = children;
    el.ns = ns;
    return el;
  }

  /** Name without prefix. */
  get local(): string {
    const colon = this.name.indexOf(':');
    return colon === -1 ? this.name : this.name.slice(colon + 1);
  }

  is(local: string, ns?: string): boolean {
    return (ns === undefined || this.ns === ns) && hasLocalName(this.name, local);
  }

  attr(name: string): string | undefined {
    return this.attrs[name];
  }

  /** Sets or (with undefined) removes an attribute; setting xmlns also sets ns. */
  setAttr(name: string, value: string | undefined): this {
    if (value === undefined) {
      delete this.attrs[name];
    } else {
      this.attrs[name] = value;
      if (name === 'xmlns') this.ns = value;
    }
    return this;
  }

  getChild(local: string, ns?: string): XmlElement | undefined {
    const children = this.children;
    for (let i = 0; i < children.length; i++) {
      const c = children[i];
      if (typeof c !== 'string' && c.is(local, ns)) return c;
    }
    return undefined;
  }

  /** Child elements, optionally filtered by local name and/or namespace. */
  getChildren(local?: string, ns?: string): XmlElement[] {
    const out: XmlElement[] = [];
    const children = this.children;
    for (let i = 0; i < children.length; i++) {
      const c = children[i];
      if (typeof c === 'string') continue;
      if ((ns === undefined || c.ns === ns) && (local === undefined || hasLocalName(c.name, local))) out.push(c);
    }
    return out;
  }

  get firstElement(): XmlElement | undefined {
    const children = this.children;
    for (let i = 0; i < children.length; i++) {
      const c = children[i];
      if (typeof c !== 'string') return c;
    }
    return undefined;
  }

  /** Concatenation of the direct text children. */
  text(): string {
    const children = this.children;
    if (children.length === 1) {
      const only = children[0];
      return typeof only === 'string' ? only : '';
    }
    let out = '';
    for (let i = 0; i < children.length; i++) {
      const c = children[i];
      if (typeof c === 'string') out += c;
    }
    return out;
  }

  getChildText(local: string, ns?: string): string | undefined {
    return this.getChild(local, ns)?.text();
  }

  append(...children: XmlChild[]): this {
    appendNodes(this, children);
    return this;
  }

  clone(): XmlElement {
    const src = this.children;
    const children = new Array<XmlNode>(src.length);
    for (let i = 0; i < src.length; i++) {
      const c = src[i];
      children[i] = typeof c === 'string' ? c : c.clone();
    }
    return XmlElement.adopt(this.name, { ...this.attrs }, children, this.ns);
  }

  toString(): string {
    return serialize(this);
  }
}

/** Builder: x('iq', { type: 'result', id }, x('query', { xmlns: NS.ROSTER })). */
export function x(name: string, attrs?: XmlAttrInput, ...children: XmlChild[]): XmlElement {
  const el = new XmlElement(name, attrs);
  appendNodes(el, children);
  return el;
}

/**
 * Compares the part after the prefix without slicing (is() runs for every child lookup).
 * A qualified `local` never matches: prefixes are arbitrary, so is('stream:error') would only
 * work for peers that happen to pick the same prefix.
 */
function hasLocalName(name: string, local: string): boolean {
  if (name === local) return local.indexOf(':') === -1;
  const colon = name.length - local.length - 1;
  return colon > 0 && name.charCodeAt(colon) === 58 /* : */ && name.endsWith(local);
}

function normalizeAttrs(input: XmlAttrInput): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key in input) {
    const value = input[key];
    if (value !== undefined && value !== null) out[key] = typeof value === 'string' ? value : String(value);
  }
  return out;
}

function appendNodes(parent: XmlElement, list: readonly XmlChild[]): void {
  for (let i = 0; i < list.length; i++) {
    const node = list[i];
    if (!node) continue;
    if (typeof node !== 'string' && parent.ns !== '' && node.ns === '' && node.attrs.xmlns === undefined) {
      inheritNs(node, parent.ns);
    }
    parent.children.push(node);
  }
}

/**
 * An element without its own xmlns serializes into its parent's default namespace
 * (Namespaces in XML 1.0 §6.2), so ns flows down to descendants built before this append.
 */
function inheritNs(el: XmlElement, ns: string): void {
  el.ns = ns;
  const children = el.children;
  for (let i = 0; i < children.length; i++) {
    const c = children[i];
    if (typeof c !== 'string' && c.ns === '' && c.attrs.xmlns === undefined) inheritNs(c, ns);
  }
}

import type { XmlElement } from './element.js';

const prefixOf = (name: string): string | undefined => {
  const colon = name.indexOf(':');
  return colon === -1 ? undefined : name.slice(0, colon);
};

/**
 * A copy of `el` that reads the same on its own, cut out of the document it was parsed in.
 * Namespaces in XML 1.0 §6.1: a declaration's scope is the element it is on and its content,
 * so a payload may use prefixes (and a default namespace) declared on an ancestor, e.g.
 * `<item xmlns:p='urn:p'><p:thing/></item>`; serialised alone, `<p:thing/>` does not parse.
 * The copy's root declares what the subtree uses and does not declare itself: each prefix of an
 * element name (from the element's resolved namespace) and the default namespace of its
 * unprefixed elements. Undefined when that cannot be done: one prefix bound to two namespaces
 * from outside, or an attribute prefix that no element of the subtree resolves (the model keeps
 * no namespace for attributes).
 */
export function standalone(el: XmlElement): XmlElement | undefined {
  const prefixes = new Map<string, string>();
  const attrPrefixes = new Set<string>();
  let defaultNs: string | undefined;
  let ok = true;
  const walk = (node: XmlElement, declared: ReadonlySet<string>, defaultDeclared: boolean): void => {
    let scope = declared;
    for (const name in node.attrs) {
      if (name.startsWith('xmlns:')) {
        if (scope === declared) scope = new Set(declared);
        (scope as Set<string>).add(name.slice(6));
      }
    }
    const hasDefault = defaultDeclared || node.attrs.xmlns !== undefined;
    const prefix = prefixOf(node.name);
    if (prefix === undefined) {
      if (!hasDefault) {
        if (defaultNs !== undefined && defaultNs !== node.ns) ok = false;
        defaultNs = node.ns;
      }
    } else if (prefix !== 'xml' && !scope.has(prefix)) {
      const known = prefixes.get(prefix);
      if (known !== undefined && known !== node.ns) ok = false;
      prefixes.set(prefix, node.ns);
    }
    for (const name in node.attrs) {
      const p = prefixOf(name);
      if (p !== undefined && p !== 'xmlns' && p !== 'xml' && !scope.has(p)) attrPrefixes.add(p);
    }
    for (const c of node.children) if (typeof c !== 'string') walk(c, scope, hasDefault);
  };
  walk(el, new Set(), false);
  for (const p of attrPrefixes) if (!prefixes.has(p)) ok = false;
  if (!ok) return undefined;
  const copy = el.clone();
  if (defaultNs !== undefined && defaultNs !== '') copy.setAttr('xmlns', defaultNs);
  // setAttr('xmlns') sets ns: a prefixed root keeps its own.
  copy.ns = el.ns;
  for (const [p, ns] of prefixes) copy.attrs[`xmlns:${p}`] = ns;
  return copy;
}


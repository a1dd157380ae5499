// XML for the demo client: parsed with DOMParser, built with the DOM and
// serialized with XMLSerializer, so untrusted text (a message body, a JID
// typed by the user) is always escaped by the browser, never concatenated.

export const NS = Object.freeze({
  CLIENT: 'jabber:client',
  FRAMING: 'urn:ietf:params:xml:ns:xmpp-framing', // RFC 7395 §3.3
  STREAM: 'http://etherx.jabber.org/streams',
  SASL: 'urn:ietf:params:xml:ns:xmpp-sasl',
  BIND: 'urn:ietf:params:xml:ns:xmpp-bind',
  SM: 'urn:xmpp:sm:3', // XEP-0198
  ROSTER: 'jabber:iq:roster', // RFC 6121 §2
  HTTPBIND: 'http://jabber.org/protocol/httpbind', // XEP-0124
  XBOSH: 'urn:xmpp:xbosh', // XEP-0206
  DELAY: 'urn:xmpp:delay', // XEP-0203
});

const doc = document.implementation.createDocument(null, null, null);
const serializer = new XMLSerializer();

/**
 * Builds an element: attributes whose value is undefined or null are left
 * out; children may be elements or strings (text nodes, escaped on output).
 * Names with a prefix ('xmpp:restart') are put in the XEP-0206 namespace.
 */
export function el(name, ns, attrs = {}, children = []) {
  const node = doc.createElementNS(ns, name);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key.startsWith('xmpp:')) node.setAttributeNS(NS.XBOSH, key, String(value));
    else node.setAttribute(key, String(value));
  }
  for (const child of children) node.append(typeof child === 'string' ? doc.createTextNode(child) : child);
  return node;
}

export function serialize(node) {
  return serializer.serializeToString(node);
}

/** Parses one XML text; null when the browser reports it is not well-formed. */
export function parse(text) {
  const parsed = new DOMParser().parseFromString(text, 'text/xml');
  const root = parsed.documentElement;
  if (!root || root.getElementsByTagName('parsererror').length > 0 || root.localName === 'parsererror') return null;
  return root;
}

/** The first child element with this local name (and namespace, when given). */
export function child(node, localName, ns) {
  for (const c of node.children) {
    if (c.localName === localName && (ns === undefined || c.namespaceURI === ns)) return c;
  }
  return null;
}

export function childText(node, localName, ns) {
  return child(node, localName, ns)?.textContent ?? null;
}

/** The bare JID (RFC 7622 §3: localpart@domainpart) of a JID string. */
export function bare(jid) {
  return String(jid ?? '').split('/')[0];
}

// Hand-written rather than fast-xml-parser's XMLBuilder: the builder wants its own JS object
// shape, so going through it would mean converting every outgoing tree first.

// XML 1.0 §2.4: '<' and '&' must be escaped in character data, and '>' at least after ']]'.
// '\r' is escaped too, or §2.11 end-of-line handling would turn it into '\n' when read back.
const TEXT_SPECIAL = /[&<>\r]/g;
// XML 1.0 §3.1 (AttValue): '<', '&' and the delimiting quote ('"' here) must be escaped.
// '\t', '\n', '\r' as well, or §3.3.3 attribute-value normalization turns them into spaces.
const ATTR_SPECIAL = /[&<>"\t\n\r]/g;

const REPLACEMENTS: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  '\t': '&#x9;',
  '\n': '&#xA;',
  '\r': '&#xD;',
};

const replaceChar = (ch: string): string => REPLACEMENTS[ch];

// The "anything to escape?" tests run first because most strings have nothing to escape; for text,
// four indexOf() calls beat one regex scan by far on long payloads such as base64.
const ATTR_SPECIAL_TEST = /[&<>"\t\n\r]/;

export function escapeText(s: string): string {
  if (s.indexOf('&') === -1 && s.indexOf('<') === -1 && s.indexOf('>') === -1 && s.indexOf('\r') === -1) return s;
  return s.replace(TEXT_SPECIAL, replaceChar);
}

export function escapeAttr(s: string): string {
  return ATTR_SPECIAL_TEST.test(s) ? s.replace(ATTR_SPECIAL, replaceChar) : s;
}

/** What serialize reads of an element; XmlElement has it (structural, so element.ts can use serialize without a cycle). */
export interface SerializableElement {
  readonly name: string;
  readonly attrs: Readonly<Record<string, string>>;
  readonly children: ReadonlyArray<SerializableElement | string>;
}

/**
 * Writes attrs exactly as stored (no xmlns is invented); childless elements become `<a/>`.
 * Recursive: parsed trees are bounded by XmlLimits.maxDepth and built trees are shallow.
 */
export function serialize(el: SerializableElement): string {
  let out = '<' + el.name;
  const attrs = el.attrs;
  for (const name in attrs) out += ' ' + name + '="' + escapeAttr(attrs[name]) + '"';
  const children = el.children;
  const n = children.length;
  if (n === 0) return out + '/>';
  out += '>';
  for (let i = 0; i < n; i++) {
    const c = children[i];
    out += typeof c === 'string' ? escapeText(c) : serialize(c);
  }
  return out + '</' + el.name + '>';
}

/**
 * One element whose serialisation on its way out is wanted, and who wants it: the message
 * archive keeps each message as the recipient's transport serialises it, instead of serialising
 * it once more itself (features/mam/index.ts; bench/RESULTS.md, "Message archive", session 38).
 * One at a time: a new watch replaces the last, whose watcher then serialises for itself.
 */
let watched: SerializableElement | undefined;
let watcher: ((text: string) => void) | undefined;

/** The next serializeOut() of `el` itself hands its text to `fn`, once. */
export function watchSerialization(el: SerializableElement, fn: (text: string) => void): void {
  watched = el;
  watcher = fn;
}

/** Ends the watch on `el`, if it is still the one watched. */
export function unwatchSerialization(el: SerializableElement): void {
  if (watched === el) watched = watcher = undefined;
}

/** serialize(), for an element a transport writes out: the watcher of this element gets the text. */
export function serializeOut(el: SerializableElement): string {
  const text = serialize(el);
  if (el === watched) {
    const fn = watcher!;
    watched = watcher = undefined;
    fn(text);
  }
  return text;
}

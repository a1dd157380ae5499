// Minimal XML helpers for the load generator. The generator must cost far
// less CPU than the servers it measures, so it never builds element trees:
// it splits a string into top-level elements and reads attributes and text
// with small scanners. Good enough for the stanzas the three servers send
// (well-formed XML, attributes quoted, '<' escaped in text).

/** @param {string} s */
export function esc(s) {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');
}

/** @param {string} s */
export function unesc(s) {
  if (s.indexOf('&') < 0) return s;
  return s.replace(/&(lt|gt|amp|apos|quot|#x?[0-9a-fA-F]+);/g, (_m, e) => {
    switch (e) {
      case 'lt': return '<';
      case 'gt': return '>';
      case 'amp': return '&';
      case 'apos': return "'";
      case 'quot': return '"';
      default: return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    }
  });
}

/** End index (exclusive) of the tag that starts at `i` ('<'), skipping quoted attribute values. */
function tagEnd(s, i) {
  let q = 0;
  for (let j = i + 1; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (q !== 0) { if (c === q) q = 0; continue; }
    if (c === 34 || c === 39) q = c;
    else if (c === 62) return j + 1;
  }
  return -1;
}

/**
 * Splits a string into its top-level elements (XML declaration, comments
 * and text between elements are skipped).
 * @param {string} s
 * @returns {string[]}
 */
export function splitTop(s) {
  /** @type {string[]} */
  const out = [];
  let depth = 0;
  let start = -1;
  let i = s.indexOf('<');
  while (i >= 0 && i < s.length) {
    const c = s.charCodeAt(i + 1);
    if (c === 63 /* ? */ || c === 33 /* ! */) {
      const end = c === 33 && s.startsWith('<!--', i) ? s.indexOf('-->', i) + 3 : s.indexOf('>', i) + 1;
      if (end <= 0) break;
      i = s.indexOf('<', end);
      continue;
    }
    const end = tagEnd(s, i);
    if (end < 0) break;
    if (c === 47 /* / */) {
      depth--;
      if (depth === 0 && start >= 0) { out.push(s.slice(start, end)); start = -1; }
    } else if (s.charCodeAt(end - 2) === 47) {
      if (depth === 0) out.push(s.slice(i, end));
    } else {
      if (depth === 0) start = i;
      depth++;
    }
    i = s.indexOf('<', end);
  }
  return out;
}

/** The qualified name of the first element in `el`. @param {string} el */
export function nameOf(el) {
  let j = 1;
  while (j < el.length) {
    const c = el.charCodeAt(j);
    if (c === 32 || c === 62 || c === 47 || c === 9 || c === 10 || c === 13) break;
    j++;
  }
  return el.slice(1, j);
}

/** The local part of the first element's name. @param {string} el */
export function localOf(el) {
  const n = nameOf(el);
  const k = n.indexOf(':');
  return k < 0 ? n : n.slice(k + 1);
}

/**
 * An attribute of the first (start) tag of `el`, unescaped; undefined when absent.
 * @param {string} el @param {string} name
 */
export function attr(el, name) {
  const end = tagEnd(el, 0);
  const tag = end < 0 ? el : el.slice(0, end);
  let from = 0;
  for (;;) {
    const k = tag.indexOf(name + '=', from);
    if (k < 0) return undefined;
    const before = tag.charCodeAt(k - 1);
    if (before === 32 || before === 9 || before === 10 || before === 13) {
      const q = tag[k + name.length + 1];
      const close = tag.indexOf(q, k + name.length + 2);
      return unesc(tag.slice(k + name.length + 2, close));
    }
    from = k + 1;
  }
}

/**
 * The text content of the first descendant element named `local` (any
 * prefix), or of `el` itself when `local` is omitted; undefined when absent.
 * @param {string} el @param {string} [local]
 */
export function textOf(el, local) {
  let i = 0;
  if (local !== undefined) {
    const re = new RegExp(`<(?:[\\w.-]+:)?${local}(?=[\\s/>])`);
    const m = re.exec(el.slice(1));
    if (!m) return undefined;
    i = m.index + 1;
  }
  const end = tagEnd(el, i);
  if (end < 0) return undefined;
  if (el.charCodeAt(end - 2) === 47) return '';
  const close = el.indexOf('</', end);
  return unesc(el.slice(end, close < 0 ? el.length : close));
}

/** Whether `el` contains a descendant start tag `<local` (any prefix). @param {string} el @param {string} local */
export function has(el, local) {
  return new RegExp(`<(?:[\\w.-]+:)?${local}(?=[\\s/>])`).test(el.slice(1));
}

/**
 * serialize() written straight into bytes: the same XML (serialize.ts: attributes as stored,
 * childless elements as `<a/>`, the same escapes), UTF-8 encoded into a buffer, with no string
 * built on the way. For the message archive (storage/ports/archive-pack.ts), which keeps every
 * archived message as bytes: serialize() then Buffer.write built a cons string per piece and a
 * flat copy of the whole to encode, about 2.3 KB of garbage and 0.8 µs of the event loop per
 * message of the benchmark's size (bench/RESULTS.md, "Message archive", session 35).
 *
 * By hand because no library writes a tree into a caller's buffer: ASCII (names, JIDs, ids,
 * most text) is copied code unit by code unit, escapes inline; a piece with anything beyond
 * ASCII goes through Buffer.write (native UTF-8, surrogate pairs as one character).
 */
import { escapeAttr, escapeText, type SerializableElement } from './serialize.js';

export type { SerializableElement };

/** Escapes, by code unit: XML 1.0 §2.4 in text, §3.1 and §3.3.3 in attribute values (as serialize.ts). */
const TEXT_ESCAPES: Array<string | undefined> = [];
const ATTR_ESCAPES: Array<string | undefined> = [];
TEXT_ESCAPES[38] = ATTR_ESCAPES[38] = '&amp;';
TEXT_ESCAPES[60] = ATTR_ESCAPES[60] = '&lt;';
TEXT_ESCAPES[62] = ATTR_ESCAPES[62] = '&gt;';
TEXT_ESCAPES[13] = ATTR_ESCAPES[13] = '&#xD;';
ATTR_ESCAPES[34] = '&quot;';
ATTR_ESCAPES[9] = '&#x9;';
ATTR_ESCAPES[10] = '&#xA;';

const NONE: Array<string | undefined> = [];
const LT = 60, GT = 62, SLASH = 47, SPACE = 32, EQUALS = 61, QUOTE = 34;

/** Pieces up to this many code units are copied in a loop; longer ones are encoded natively (a call costs about 30 ns). */
const SHORT = 24;

/**
 * Writes `s` into `buf` at `o`, escaped by `escapes`; returns the offset after it, or -1 when it
 * does not fit. A typed array drops a store past its end, so ASCII is copied without a check per
 * unit and the end is checked once. -1 in, -1 out: the calls chain.
 */
function put(buf: Buffer, o: number, s: string, escapes: Array<string | undefined>): number {
  if (o < 0) return -1;
  const n = s.length;
  if (n > SHORT) return wide(buf, o, s, escapes);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return wide(buf, o, s.slice(i), escapes);
    const e = escapes[c];
    if (e === undefined) buf[o++] = c;
    else for (let j = 0; j < e.length; j++) buf[o++] = e.charCodeAt(j);
  }
  return o <= buf.length ? o : -1;
}

/** A piece (or its rest from its first unit beyond ASCII) escaped as a string, encoded natively. */
function wide(buf: Buffer, o: number, rest: string, escapes: Array<string | undefined>): number {
  const s = escapes === NONE ? rest : escapes === ATTR_ESCAPES ? escapeAttr(rest) : escapeText(rest);
  // UTF-8 takes at most 3 bytes per UTF-16 unit; Buffer.write stops short, silently, where it does not fit.
  const room = buf.length - o;
  if (room < 0 || (3 * s.length > room && Buffer.byteLength(s, 'utf8') > room)) return -1;
  return o + buf.write(s, o, 'utf8');
}

/** `s` in UTF-8 at `o`, as it is (no escapes); the offset after it, or -1 when it does not fit (or `o` is -1). */
export function writeUtf8(buf: Buffer, o: number, s: string): number {
  return put(buf, o, s, NONE);
}

/** One ASCII character. */
function ch(buf: Buffer, o: number, c: number): number {
  if (o < 0 || o >= buf.length) return -1;
  buf[o] = c;
  return o + 1;
}

/**
 * Writes `el` into `buf` from `at`; returns the offset after it, or -1 when it does not fit (the
 * bytes from `at` on are then undefined). `xmlns` replaces the root's xmlns as setAttr would (in
 * its place, or last when it has none): the archive's copy is in jabber:client whatever the
 * stanza was routed in, without a clone.
 */
export function serializeInto(buf: Buffer, at: number, el: SerializableElement, xmlns?: string): number {
  let o = ch(buf, at, LT);
  o = put(buf, o, el.name, NONE);
  const attrs = el.attrs;
  let rootNs = xmlns;
  for (const name in attrs) {
    let value = attrs[name]!;
    if (rootNs !== undefined && name === 'xmlns') { value = rootNs; rootNs = undefined; }
    o = attr(buf, o, name, value);
  }
  if (rootNs !== undefined) o = attr(buf, o, 'xmlns', rootNs);
  const children = el.children;
  const n = children.length;
  if (n === 0) return ch(buf, ch(buf, o, SLASH), GT);
  o = ch(buf, o, GT);
  for (let i = 0; i < n && o >= 0; i++) {
    const c = children[i]!;
    o = typeof c === 'string' ? put(buf, o, c, TEXT_ESCAPES) : serializeInto(buf, o, c);
  }
  o = ch(buf, ch(buf, o, LT), SLASH);
  o = put(buf, o, el.name, NONE);
  return ch(buf, o, GT);
}

function attr(buf: Buffer, o: number, name: string, value: string): number {
  o = ch(buf, o, SPACE);
  o = put(buf, o, name, NONE);
  o = ch(buf, ch(buf, o, EQUALS), QUOTE);
  o = put(buf, o, value, ATTR_ESCAPES);
  return ch(buf, o, QUOTE);
}

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

/** How a piece is escaped: names and the record's fields not at all; text as XML 1.0 §2.4; attribute values §3.1, §3.3.3 (as serialize.ts). */
const RAW = 0, TEXT = 1, ATTR = 2;
type Mode = typeof RAW | typeof TEXT | typeof ATTR;
/** Per ASCII code unit, the modes that escape it (bit 1 text, bit 2 attribute). */
const ESCAPED = new Uint8Array(128);
for (const c of '&<>\r') ESCAPED[c.charCodeAt(0)] = TEXT | ATTR;
for (const c of '"\t\n') ESCAPED[c.charCodeAt(0)] = ATTR;

const LT = 60, GT = 62, SLASH = 47, SPACE = 32, EQUALS = 61, QUOTE = 34;

/** Pieces up to this many code units are copied in a loop; longer ones are encoded natively (a call costs about 30 ns). */
const SHORT = 24;

/**
 * Writes `s` into `buf` at `o`, escaped as `mode` says; returns the offset after it, or -1 when it
 * does not fit. A typed array drops a store past its end, so ASCII is copied without a check per
 * unit and the end is checked once; from the first unit to escape or beyond ASCII, the rest goes
 * through wide(). -1 in, -1 out: the calls chain.
 */
function put(buf: Buffer, o: number, s: string, mode: Mode): number {
  if (o < 0) return -1;
  const n = s.length;
  if (n > SHORT) return wide(buf, o, s, mode);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80 || (ESCAPED[c]! & mode) !== 0) return wide(buf, o, s.slice(i), mode);
    buf[o++] = c;
  }
  return o <= buf.length ? o : -1;
}

/** A piece (or its rest) escaped as a string, encoded natively. */
function wide(buf: Buffer, o: number, rest: string, mode: Mode): number {
  const s = mode === RAW ? rest : mode === ATTR ? escapeAttr(rest) : escapeText(rest);
  // UTF-8 takes at most 3 bytes per UTF-16 unit; Buffer.write stops short, silently, where it does not fit.
  const room = buf.length - o;
  if (room < 0 || (3 * s.length > room && Buffer.byteLength(s, 'utf8') > room)) return -1;
  return o + buf.write(s, o, 'utf8');
}

/** `s` in UTF-8 at `o`, as it is (no escapes); the offset after it, or -1 when it does not fit (or `o` is -1). */
export function writeUtf8(buf: Buffer, o: number, s: string): number {
  return put(buf, o, s, RAW);
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
 * stanza was routed in, without a clone. `omit`, a child of the root, is left out.
 */
export function serializeInto(buf: Buffer, at: number, el: SerializableElement, xmlns?: string, omit?: SerializableElement): number {
  let o = ch(buf, at, LT);
  o = put(buf, o, el.name, RAW);
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
    if (c === omit) continue;
    o = typeof c === 'string' ? put(buf, o, c, TEXT) : serializeInto(buf, o, c);
  }
  o = ch(buf, ch(buf, o, LT), SLASH);
  o = put(buf, o, el.name, RAW);
  return ch(buf, o, GT);
}

function attr(buf: Buffer, o: number, name: string, value: string): number {
  o = ch(buf, o, SPACE);
  o = put(buf, o, name, RAW);
  o = ch(buf, ch(buf, o, EQUALS), QUOTE);
  o = put(buf, o, value, ATTR);
  return ch(buf, o, QUOTE);
}

/**
 * Archive records packed into bytes as the server queues them (features/mam/writer.ts), for
 * the store to take in one piece. Packed at once, a record leaves nothing on the JavaScript
 * heap while its batch waits for the store (20 ms and more): the serialised stanza and the
 * record die young. Queued as objects, two entries and a rope of the serialised stanza per
 * message lived through a scavenge or two, and `postMessage` cloned them property by property:
 * at saturation the two cost the event loop 8.5 µs per archived message (bench/RESULTS.md,
 * "Message archive"). By hand because it is four strings and three numbers per record: a
 * general serialiser (V8's own is what postMessage used) pays for generality this format does
 * not need.
 *
 * The chunks are in shared memory (SharedArrayBuffer): the SQLite writer thread reads them
 * where they are, nothing is copied and nothing is transferred. A transfer detaches the
 * sender's ArrayBuffer, and once any ArrayBuffer of the process has been detached V8 checks
 * every typed-array access of the event loop for it, for good: ws's unmasking of client frames
 * took 0.8 µs per message instead of 0.03 (bench/RESULTS.md, session 34).
 *
 * A record: key and at (float64 LE), sides (one byte), a uint32 LE byte length, then id,
 * sender, receiver and stanza in UTF-8, the first three each ended by a NUL (which neither an
 * id nor a JID can hold: RFC 7622 disallows control characters); the stanza is the rest. Each
 * piece is written into the chunk where it goes: a string built first (a template of the four,
 * the stanza serialised) was garbage the collector paid for at every message.
 */
import type { ArchiveEntry } from './archive.js';
import { serializeInto, writeUtf8, type SerializableElement } from '../../xml/serialize-bytes.js';

/** `sides`: the recipient's archive keeps the message (its copy at seq 2 × key). */
export const RECIPIENT = 1;
/** `sides`: the sender's archive keeps it (2 × key + 1). */
export const SENDER = 2;

/** One archived message: the server's key and id (archive-ids.ts), both parties' bare JIDs, whose archives keep it. */
export interface ArchiveRecord {
  readonly key: number;
  readonly id: string;
  readonly at: number;
  readonly sender: string;
  readonly receiver: string;
  readonly sides: number;
  /** The <message/> as serialised XML in jabber:client, without the archive's own <stanza-id/>. */
  readonly stanza: string;
}

/**
 * A record as the server queues it: the stanza as a string, or as the element itself, written
 * straight into the chunk (xml/serialize-bytes.ts: no string built on the way), its root in
 * `xmlns` when given (the archive keeps jabber:client whatever the stanza was routed in).
 */
export interface PackedRecord extends Omit<ArchiveRecord, 'stanza'> {
  readonly stanza: string | SerializableElement;
  readonly xmlns?: string;
  /** A child of the element left out: the archive's own <stanza-id/>, appended before the record is packed. */
  readonly omit?: SerializableElement;
  /**
   * With a string: the text from `skipFrom` up to `skipTo` is left out (that <stanza-id/> in the text a
   * transport wrote, features/mam/index.ts); nothing when `skipTo` is not above `skipFrom`.
   */
  readonly skipFrom?: number;
  readonly skipTo?: number;
}

const HEADER = 8 + 8 + 1 + 4;
const FIRST_CHUNK = 4096;
const MAX_CHUNK = 1 << 20;
/** Beyond any stanza the server takes (MAX_STANZA_SIZE): a record that does not fit in this is a bug, not a reason to grow. */
const MAX_RECORD = 256 << 20;
/**
 * Chunks released (ArchivePack.release: their commit is over) and kept for the next packs, by size,
 * up to this many bytes: a fresh SharedArrayBuffer is allocated and zeroed by the engine, and counts
 * as external memory that brings garbage collections forward (#grow was 0.19 µs per archived message).
 */
const POOL_MAX_BYTES = 8 << 20;
const pool = new Map<number, SharedArrayBuffer[]>();
let pooledBytes = 0;

function take(size: number): SharedArrayBuffer {
  const sab = pool.get(size)?.pop();
  if (sab === undefined) return new SharedArrayBuffer(size);
  pooledBytes -= size;
  return sab;
}

function give(sab: SharedArrayBuffer): void {
  const size = sab.byteLength;
  // Only the sizes #grow asks for again (a chunk made for one large record is left to the collector).
  if (size > MAX_CHUNK || (size & (size - 1)) !== 0 || pooledBytes + size > POOL_MAX_BYTES) return;
  let list = pool.get(size);
  if (list === undefined) pool.set(size, list = []);
  list.push(sab);
  pooledBytes += size;
}

/** `s` without its part from `from` up to `to` (substrings of a flat string are views: nothing is copied). */
function writeText(b: Buffer, o: number, s: string, from: number, to: number): number {
  if (to <= from) return writeUtf8(b, o, s);
  return writeUtf8(b, writeUtf8(b, o, s.substring(0, from)), s.substring(to));
}

/** Records appended into chunks of bytes, each chunk its own SharedArrayBuffer (handed to a thread as it is). */
export class ArchivePack {
  readonly #full: Uint8Array[] = [];
  #buf: Buffer | undefined;
  #off = 0;
  #count = 0;
  #bytes = 0;

  /** Packs the record; returns its bytes. */
  add(r: PackedRecord): number {
    for (;;) {
      if (this.#buf === undefined) this.#grow(FIRST_CHUNK);
      const start = this.#off;
      const end = this.#write(this.#buf!, start, r);
      if (end >= 0) {
        this.#off = end;
        this.#count++;
        this.#bytes += end - start;
        return end - start;
      }
      // It did not fit: the next chunk, or a larger one than this if the record is alone in it.
      if (start === 0 && this.#buf!.length >= MAX_RECORD) throw new RangeError('an archive record of more than 256 MiB');
      this.#grow(start === 0 ? 2 * this.#buf!.length : 0);
    }
  }

  /** The record at `start`; the offset after it, or -1 when it does not fit. */
  #write(b: Buffer, start: number, r: PackedRecord): number {
    if (start + HEADER > b.length) return -1;
    b.writeDoubleLE(r.key, start);
    b.writeDoubleLE(r.at, start + 8);
    b[start + 16] = r.sides;
    let o = writeUtf8(b, start + HEADER, r.id);
    o = writeUtf8(b, o, '\0');
    o = writeUtf8(b, o, r.sender);
    o = writeUtf8(b, o, '\0');
    o = writeUtf8(b, o, r.receiver);
    o = writeUtf8(b, o, '\0');
    o = typeof r.stanza === 'string' ? writeText(b, o, r.stanza, r.skipFrom ?? 0, r.skipTo ?? 0) : serializeInto(b, o, r.stanza, r.xmlns, r.omit);
    if (o < 0) return -1;
    b.writeUInt32LE(o - start - HEADER, start + 17);
    return o;
  }

  get count(): number { return this.#count; }
  get bytes(): number { return this.#bytes; }

  /** The packed bytes, in order: one view per chunk. */
  views(): Uint8Array[] {
    return this.#buf === undefined ? [...this.#full] : [...this.#full, this.#buf.subarray(0, this.#off)];
  }

  /**
   * Gives the chunks back for later packs (the pool above): the pack is empty after it, and the
   * views it gave are no longer its caller's to read. Called once the store is done with them
   * (the commit settled, for good).
   */
  release(): void {
    for (const v of this.#full) give(v.buffer as SharedArrayBuffer);
    if (this.#buf !== undefined) give(this.#buf.buffer as SharedArrayBuffer);
    this.#full.length = 0;
    this.#buf = undefined;
    this.#off = 0;
    this.#count = 0;
    this.#bytes = 0;
  }

  #grow(atLeast: number): void {
    const old = this.#buf;
    if (old !== undefined) {
      // An empty chunk (its one record did not fit) goes back to the pool, not into the views.
      if (this.#off > 0) this.#full.push(old.subarray(0, this.#off)); else give(old.buffer as SharedArrayBuffer);
    }
    const size = Math.max(atLeast, Math.min(MAX_CHUNK, old === undefined ? FIRST_CHUNK : 2 * old.length));
    // Shared memory, and not from Buffer's pool: a thread reads the chunk whole, nothing detached (above).
    this.#buf = Buffer.from(take(size));
    this.#off = 0;
  }
}

/** The records of packed chunks (ArchivePack.views()), in order. */
export function* unpack(views: readonly Uint8Array[]): Generator<ArchiveRecord> {
  for (const v of views) {
    const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    let o = 0;
    while (o < b.length) {
      const key = b.readDoubleLE(o);
      const at = b.readDoubleLE(o + 8);
      const sides = b[o + 16]!;
      const n = b.readUInt32LE(o + 17);
      const text = b.toString('utf8', o + 21, o + 21 + n);
      o += 21 + n;
      const a = text.indexOf('\0');
      const c = text.indexOf('\0', a + 1);
      const d = text.indexOf('\0', c + 1);
      yield { key, id: text.slice(0, a), at, sender: text.slice(a + 1, c), receiver: text.slice(c + 1, d), sides, stanza: text.slice(d + 1) };
    }
  }
}

/** A record as the entries of the archives that keep it (stores with a row per account and message). */
export function entriesOf(r: ArchiveRecord): ArchiveEntry[] {
  const out: ArchiveEntry[] = [];
  const split = (bare: string) => {
    const at = bare.indexOf('@');
    return at < 0 ? { username: '', host: bare } : { username: bare.slice(0, at), host: bare.slice(at + 1) };
  };
  if (r.sides & RECIPIENT) out.push({ ...split(r.receiver), id: r.id, seq: 2 * r.key, with: r.sender, at: r.at, stanza: r.stanza });
  if (r.sides & SENDER) out.push({ ...split(r.sender), id: r.id, seq: 2 * r.key + 1, with: r.receiver, at: r.at, stanza: r.stanza });
  return out;
}

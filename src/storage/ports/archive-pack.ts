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
 * id nor a JID can hold: RFC 7622 disallows control characters); the stanza is the rest. One
 * Buffer.write per record: four cost the event loop twice as much.
 */
import type { ArchiveEntry } from './archive.js';

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

const FIXED = 8 + 8 + 1 + 4 + 3;
const FIRST_CHUNK = 4096;
const MAX_CHUNK = 1 << 20;

/** Records appended into chunks of bytes, each chunk its own SharedArrayBuffer (handed to a thread as it is). */
export class ArchivePack {
  readonly #full: Uint8Array[] = [];
  #buf: Buffer | undefined;
  #off = 0;
  #count = 0;
  #bytes = 0;

  /** Packs the record; returns its bytes. */
  add(r: ArchiveRecord): number {
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    const max = FIXED + 3 * (r.id.length + r.sender.length + r.receiver.length + r.stanza.length);
    if (this.#buf === undefined || this.#off + max > this.#buf.length) this.#grow(max);
    const b = this.#buf!;
    const start = this.#off;
    b.writeDoubleLE(r.key, start);
    b.writeDoubleLE(r.at, start + 8);
    b[start + 16] = r.sides;
    const n = b.write(`${r.id}\0${r.sender}\0${r.receiver}\0${r.stanza}`, start + 21, 'utf8');
    b.writeUInt32LE(n, start + 17);
    const o = start + 21 + n;
    this.#off = o;
    this.#count++;
    this.#bytes += o - start;
    return o - start;
  }

  get count(): number { return this.#count; }
  get bytes(): number { return this.#bytes; }

  /** The packed bytes, in order: one view per chunk. */
  views(): Uint8Array[] {
    return this.#buf === undefined ? [...this.#full] : [...this.#full, this.#buf.subarray(0, this.#off)];
  }

  #grow(atLeast: number): void {
    if (this.#buf !== undefined) this.#full.push(this.#buf.subarray(0, this.#off));
    const size = Math.max(atLeast, Math.min(MAX_CHUNK, this.#buf === undefined ? FIRST_CHUNK : 2 * this.#buf.length));
    // Shared memory, and not from Buffer's pool: a thread reads the chunk whole, nothing detached (above).
    this.#buf = Buffer.from(new SharedArrayBuffer(size));
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

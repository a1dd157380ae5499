/**
 * One node's inbox in Redis: the stream `{prefix}inbox:{node}` (consumer
 * group `g`, the consumer named after the node, so a restarted node and a
 * survivor draining a dead one both see its pending list) and the byte
 * count of its entries `{prefix}inbox-bytes:{node}`. The scripts keep the
 * count and the stream in step, and refuse an entry for a node whose lease
 * is gone: nobody would read it (node.ts).
 */
import type { Redis } from './redis.js';

/**
 * What one node asks another to do with one of its sessions (helper A's
 * directory builds them): deliver a stanza to the session at `to` (a full
 * JID), or close the session `sid` at `to` with a stream error condition
 * (RFC 6120 §4.9.3, e.g. `conflict`).
 */
export type InboxEntry =
  | { readonly kind: 'stanza'; readonly to: string; readonly xml: string }
  | { readonly kind: 'close'; readonly to: string; readonly sid: string; readonly condition: string; readonly text?: string };

export const GROUP = 'g';

export interface InboxKeys {
  readonly node: string;
  readonly stream: string;
  readonly bytes: string;
  readonly lease: string;
}

export function inboxKeys(prefix: string, node: string): InboxKeys {
  return { node, stream: `${prefix}inbox:${node}`, bytes: `${prefix}inbox-bytes:${node}`, lease: `${prefix}node:${node}` };
}

// KEYS: stream, bytes, lease. ARGV: max entries, max bytes, size, from, entry.
// -1: the node's lease is gone; -2: entry cap; -3: byte cap; 1: added.
const ADD = `
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return -2 end
if tonumber(redis.call('GET', KEYS[2]) or '0') + tonumber(ARGV[3]) > tonumber(ARGV[2]) then return -3 end
redis.call('XADD', KEYS[1], '*', 'f', ARGV[4], 'n', ARGV[3], 'e', ARGV[5])
redis.call('INCRBY', KEYS[2], ARGV[3])
return 1`;

// KEYS: stream, bytes. ARGV: group, id, size. Redis 7.0 has no XACKDEL; the byte count drops once per entry deleted.
const ACK = `
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if redis.call('XDEL', KEYS[1], ARGV[2]) == 1 then redis.call('DECRBY', KEYS[2], ARGV[3]) end
return 1`;

// KEYS: stream, bytes, lease. Deletes an empty inbox of a node that is not alive: 1 deleted, 0 alive, -1 not empty.
const REMOVE = `
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if redis.call('XLEN', KEYS[1]) > 0 then return -1 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1`;

export type AddResult = 'added' | 'node-down' | 'inbox-full';

export async function addEntry(redis: Redis, keys: InboxKeys, caps: { maxEntries: number; maxBytes: number }, from: string, entry: InboxEntry): Promise<AddResult> {
  const payload = JSON.stringify(entry);
  const size = Buffer.byteLength(payload);
  const r = Number(await redis.eval(ADD, {
    keys: [keys.stream, keys.bytes, keys.lease],
    arguments: [String(caps.maxEntries), String(caps.maxBytes), String(size), from, payload],
  }));
  return r === 1 ? 'added' : r === -1 ? 'node-down' : 'inbox-full';
}

export async function ackEntry(redis: Redis, keys: InboxKeys, id: string, size: number): Promise<void> {
  await redis.eval(ACK, { keys: [keys.stream, keys.bytes], arguments: [GROUP, id, String(size)] });
}

export async function removeInbox(redis: Redis, keys: InboxKeys): Promise<'removed' | 'alive' | 'not-empty'> {
  const r = Number(await redis.eval(REMOVE, { keys: [keys.stream, keys.bytes, keys.lease] }));
  return r === 1 ? 'removed' : r === 0 ? 'alive' : 'not-empty';
}

/** Creates the group (and the stream) if missing; from '0', so entries added before it are read too. */
export async function ensureGroup(redis: Redis, keys: InboxKeys): Promise<void> {
  try {
    await redis.xGroupCreate(keys.stream, GROUP, '0', { MKSTREAM: true });
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('BUSYGROUP')) throw err;
  }
}

/** An entry as read: its stream id, sender, size and body; `entry` undefined when it cannot be decoded (or was deleted). */
export interface ReadEntry {
  readonly id: string;
  readonly from: string;
  readonly size: number;
  readonly entry: InboxEntry | undefined;
  readonly raw: string;
}

/** XREADGROUP of at most `count` entries: `id` '0' (and on) reads our pending list, '>' new entries. */
export async function readEntries(conn: Redis, keys: InboxKeys, id: string, count: number, blockMs?: number): Promise<ReadEntry[]> {
  const reply = await conn.xReadGroup(GROUP, keys.node, { key: keys.stream, id }, blockMs === undefined ? { COUNT: count } : { COUNT: count, BLOCK: blockMs });
  const messages = (reply as Array<{ messages: Array<{ id: string; message: Record<string, string> | null }> }> | null)?.[0]?.messages ?? [];
  return messages.map(({ id: entryId, message }) => {
    const raw = message?.e ?? '';
    return { id: entryId, from: message?.f ?? '', size: Number(message?.n ?? 0), entry: decode(raw), raw };
  });
}

/** How many times each pending entry in [first, last] was read (XPENDING's delivery counter). */
export async function deliveryCounts(redis: Redis, keys: InboxKeys, first: string, last: string, count: number): Promise<Map<string, number>> {
  const rows = await redis.xPendingRange(keys.stream, GROUP, first, last, count, { consumer: keys.node });
  return new Map(rows.map((r) => [String(r.id), Number(r.deliveriesCounter)]));
}

function decode(raw: string): InboxEntry | undefined {
  if (raw === '') return undefined;
  try {
    const e = JSON.parse(raw) as Partial<Record<string, unknown>>;
    if (typeof e.to !== 'string') return undefined;
    if (e.kind === 'stanza' && typeof e.xml === 'string') return e as InboxEntry;
    if (e.kind === 'close' && typeof e.sid === 'string' && typeof e.condition === 'string') return e as InboxEntry;
    return undefined;
  } catch {
    return undefined;
  }
}

/**
 * The smids of sessions that timed out lately, so that a late resumption
 * (XEP-0198 §5) is counted as 'timed-out' rather than 'unknown-smid'. Only
 * for metrics: the answer to the client is item-not-found either way.
 * Bounded in entries and in bytes (string length, counted as UTF-16 code
 * units); the oldest are forgotten first (a Set keeps insertion order).
 */
export interface RecentIds {
  add(id: string): void;
  has(id: string): boolean;
  /** Bytes of ids held (2 per code unit), for tests of the bound. */
  readonly bytes: number;
  readonly size: number;
}

export function createRecentIds(maxEntries: number, maxBytes: number): RecentIds {
  const ids = new Set<string>();
  let bytes = 0;
  return {
    add(id) {
      if (ids.has(id) || 2 * id.length > maxBytes) return;
      ids.add(id);
      bytes += 2 * id.length;
      for (const oldest of ids) {
        if (ids.size <= maxEntries && bytes <= maxBytes) break;
        ids.delete(oldest);
        bytes -= 2 * oldest.length;
      }
    },
    has: (id) => ids.has(id),
    get bytes() { return bytes; },
    get size() { return ids.size; },
  };
}

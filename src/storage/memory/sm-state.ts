/** In-memory SmStateStore (stale h, XEP-0198 §5) with the same observable behaviour as the SQLite one. */
import type { SmStateStore } from '../ports/sm-state.js';

export function createMemorySmStateStore(): SmStateStore {
  const stale = new Map<string, { h: number; at: number }>();
  return {
    async setStaleH(smid, h, storedAt) {
      stale.set(smid, { h, at: storedAt });
    },
    async getStaleH(smid) {
      return stale.get(smid)?.h;
    },
    async collectStaleH(cutoff) {
      let n = 0;
      for (const [smid, record] of stale) {
        if (record.at <= cutoff) { stale.delete(smid); n++; }
      }
      return n;
    },
  };
}

/** SmStateStore (XEP-0198 stale h) over one better-sqlite3 connection; statements are prepared once. */
import type Database from 'better-sqlite3';
import type { SmStateStore } from '../ports/sm-state.js';

export function createSqliteSmStateStore(db: Database.Database): SmStateStore {
  const st = {
    set: db.prepare<[string, number, number]>(
      'INSERT INTO stale_h (smid, h, stored_at) VALUES (?, ?, ?) ON CONFLICT (smid) DO UPDATE SET h = excluded.h, stored_at = excluded.stored_at'),
    get: db.prepare<[string], { h: number }>('SELECT h FROM stale_h WHERE smid = ?'),
    // The stored_at index makes this a range delete, however many records are young.
    collect: db.prepare<[number]>('DELETE FROM stale_h WHERE stored_at <= ?'),
  };
  return {
    async setStaleH(smid, h, storedAt) {
      st.set.run(smid, h, storedAt);
    },
    async getStaleH(smid) {
      return st.get.get(smid)?.h;
    },
    async collectStaleH(cutoff) {
      return st.collect.run(cutoff).changes;
    },
  };
}

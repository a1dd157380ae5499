/** OfflineStore over one better-sqlite3 connection; statements are prepared once. */
import type Database from 'better-sqlite3';
import type { Clock, OfflineMessage, OfflineStore } from '../types.js';

interface OfflineRow {
  id: number;
  stanza: string;
  stored_at: number;
}

export function createSqliteOfflineStore(db: Database.Database, now: Clock): OfflineStore {
  const st = {
    // One statement counts and inserts, so two pushes cannot both take the last free place.
    push: db.prepare<[string, string, string, number, string, string, number]>(`
      INSERT INTO offline_messages (host, username, stanza, stored_at)
      SELECT ?, ?, ?, ?
      WHERE (SELECT COUNT(*) FROM offline_messages WHERE host = ? AND username = ?) < ?`),
    // LIMIT -1 is SQLite's "no limit"; the (host, username, id) index makes `id > ?` a range scan.
    list: db.prepare<[string, string, number, number], OfflineRow>('SELECT id, stanza, stored_at FROM offline_messages WHERE host = ? AND username = ? AND id > ? ORDER BY id LIMIT ?'),
    remove: db.prepare<[string, string, number]>('DELETE FROM offline_messages WHERE host = ? AND username = ? AND id = ?'),
    count: db.prepare<[string, string], { n: number }>('SELECT COUNT(*) AS n FROM offline_messages WHERE host = ? AND username = ?'),
  };
  const removeAll = db.transaction((host: string, username: string, ids: readonly number[]) => {
    for (const id of ids) st.remove.run(host, username, id);
  });

  return {
    async push(host, username, stanza, max) {
      return st.push.run(host, username, stanza, now(), host, username, max).changes === 1;
    },
    async list(host, username, page = {}): Promise<OfflineMessage[]> {
      return st.list.all(host, username, page.afterId ?? 0, page.limit ?? -1).map((r) => ({ id: r.id, stanza: r.stanza, storedAt: r.stored_at }));
    },
    async remove(host, username, ids) {
      if (ids.length > 0) removeAll(host, username, ids);
    },
    async count(host, username) {
      return st.count.get(host, username)?.n ?? 0;
    },
  };
}

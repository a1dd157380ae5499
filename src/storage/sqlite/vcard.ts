/** VcardStore over one better-sqlite3 connection; statements are prepared once. */
import type Database from 'better-sqlite3';
import type { VcardStore } from '../ports/vcard.js';
import type { Clock } from '../types.js';

export function createSqliteVcardStore(db: Database.Database, now: Clock): VcardStore {
  const st = {
    get: db.prepare<[string, string], { vcard: string }>('SELECT vcard FROM vcards WHERE host = ? AND username = ?'),
    set: db.prepare<[string, string, string, number]>(`
      INSERT INTO vcards (host, username, vcard, updated_at) VALUES (?, ?, ?, ?)
      ON CONFLICT (host, username) DO UPDATE SET vcard = excluded.vcard, updated_at = excluded.updated_at`),
    remove: db.prepare<[string, string]>('DELETE FROM vcards WHERE host = ? AND username = ?'),
  };
  return {
    async get(host, username) {
      return st.get.get(host, username)?.vcard;
    },
    async set(host, username, vcard) {
      st.set.run(host, username, vcard, now());
    },
    async delete(host, username) {
      st.remove.run(host, username);
    },
  };
}

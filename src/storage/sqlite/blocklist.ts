/** BlocklistStore (XEP-0191) over one better-sqlite3 connection; statements are prepared once. */
import type Database from 'better-sqlite3';
import type { BlocklistStore } from '../ports/blocklist.js';

export function createSqliteBlocklistStore(db: Database.Database): BlocklistStore {
  const st = {
    list: db.prepare<[string, string], { jid: string }>('SELECT jid FROM blocklist WHERE host = ? AND username = ? ORDER BY jid'),
    add: db.prepare<[string, string, string]>('INSERT INTO blocklist (host, username, jid) VALUES (?, ?, ?) ON CONFLICT DO NOTHING'),
    remove: db.prepare<[string, string, string]>('DELETE FROM blocklist WHERE host = ? AND username = ? AND jid = ?'),
    clear: db.prepare<[string, string]>('DELETE FROM blocklist WHERE host = ? AND username = ?'),
  };
  // A block or unblock command is applied whole or not at all.
  const addAll = db.transaction((host: string, username: string, jids: readonly string[]) => {
    for (const jid of jids) st.add.run(host, username, jid);
  });
  const removeAll = db.transaction((host: string, username: string, jids: readonly string[]) => {
    for (const jid of jids) st.remove.run(host, username, jid);
  });

  return {
    async list(host, username) {
      return st.list.all(host, username).map((r) => r.jid);
    },
    async add(host, username, jids) {
      addAll(host, username, jids);
    },
    async remove(host, username, jids) {
      removeAll(host, username, jids);
    },
    async clear(host, username) {
      st.clear.run(host, username);
    },
  };
}

/**
 * OfflineStore over one better-sqlite3 connection; statements are prepared
 * once. Each account's usage lives in offline_counters, kept by triggers on
 * offline_messages (migration 4): any INSERT or DELETE, the account's
 * ON DELETE CASCADE included, keeps it right, so nothing here counts rows.
 */
import type Database from 'better-sqlite3';
import { fits, NO_USAGE, stanzaBytes, toQuota } from '../offline-quota.js';
import type { OfflineMessage, OfflineQuota, OfflineStore, OfflineUsage } from '../ports/offline.js';
import type { Clock } from '../types.js';

interface OfflineRow {
  id: number;
  stanza: string;
  stored_at: number;
}

function prepareStatements(db: Database.Database) {
  return {
    insert: db.prepare<[string, string, string, number]>('INSERT INTO offline_messages (host, username, stanza, stored_at) VALUES (?, ?, ?, ?)'),
    // LIMIT -1 is SQLite's "no limit"; the (host, username, id) index makes `id > ?` a range scan.
    list: db.prepare<[string, string, number, number], OfflineRow>('SELECT id, stanza, stored_at FROM offline_messages WHERE host = ? AND username = ? AND id > ? ORDER BY id LIMIT ?'),
    listAt: db.prepare<[string, string, number, number, number], OfflineRow>('SELECT id, stanza, stored_at FROM offline_messages WHERE host = ? AND username = ? AND id > ? AND stored_at = ? ORDER BY id LIMIT ?'),
    remove: db.prepare<[string, string, number]>('DELETE FROM offline_messages WHERE host = ? AND username = ? AND id = ?'),
    usage: db.prepare<[string, string], OfflineUsage>('SELECT messages, bytes FROM offline_counters WHERE host = ? AND username = ?'),
  };
}

export function createSqliteOfflineStore(db: Database.Database, now: Clock): OfflineStore {
  const st = prepareStatements(db);
  const usageOf = (host: string, username: string): OfflineUsage => st.usage.get(host, username) ?? NO_USAGE;
  // The check and the insert are one transaction: a push cannot take a
  // place another push has taken meanwhile, nor leave half a message behind.
  const pushChecked = db.transaction((host: string, username: string, stanza: string, quota: OfflineQuota): boolean => {
    if (!fits(usageOf(host, username), stanzaBytes(stanza), quota)) return false;
    st.insert.run(host, username, stanza, now());
    return true;
  });
  const removeAll = db.transaction((host: string, username: string, ids: readonly number[]) => {
    for (const id of ids) st.remove.run(host, username, id);
  });

  return {
    async push(host, username, stanza, quota) {
      // IMMEDIATE: the write lock is taken before the read, so a CLI or a
      // second server process on the same file cannot check in between.
      return pushChecked.immediate(host, username, stanza, toQuota(quota));
    },
    async list(host, username, page = {}): Promise<OfflineMessage[]> {
      const rows = page.storedAt === undefined ? st.list.all(host, username, page.afterId ?? 0, page.limit ?? -1)
        : st.listAt.all(host, username, page.afterId ?? 0, page.storedAt, page.limit ?? -1);
      return rows.map((r) => ({ id: r.id, stanza: r.stanza, storedAt: r.stored_at }));
    },
    async remove(host, username, ids) {
      if (ids.length > 0) removeAll(host, username, ids);
    },
    async count(host, username) {
      return usageOf(host, username).messages;
    },
    async usage(host, username) {
      return usageOf(host, username);
    },
  };
}

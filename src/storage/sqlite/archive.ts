/** ArchiveStore (XEP-0313) over one better-sqlite3 connection; statements are prepared once. */
import type Database from 'better-sqlite3';
import { countSql, END_SEQ, pageSql, resolveBounds, SEQ_OF, START_SEQ, type ArchiveRow } from '../archive-sql.js';
import type { ThreadedAppend } from './archive-writes.js';
import { COUNT_CAP, DEFAULT_PREFS, type ArchivedMessage, type ArchiveEntry, type ArchiveStore } from '../ports/archive.js';

const toMessage = (r: ArchiveRow): ArchivedMessage => ({ id: r.id, with: r.with_jid, at: Number(r.at), stanza: r.stanza });

function prepareStatements(db: Database.Database) {
  return {
    // INSERT … SELECT: an entry for an account that does not exist inserts nothing (no foreign key failure).
    insert: db.prepare<[string, string, number, string, string, string]>(`INSERT INTO archive (host, username, id, with_jid, at, stanza)
      SELECT host, username, ?, ?, ?, ? FROM users WHERE host = ? AND username = ?`),
    seqOf: db.prepare<[string, string, string], { seq: number }>(SEQ_OF),
    startSeq: db.prepare<[string, string, number], { seq: number }>(START_SEQ),
    endSeq: db.prepare<[string, string, number], { seq: number }>(END_SEQ),
    first: db.prepare<[string, string], ArchiveRow>('SELECT id, with_jid, at, \'\' AS stanza FROM archive WHERE host = ? AND username = ? ORDER BY seq ASC LIMIT 1'),
    last: db.prepare<[string, string], ArchiveRow>('SELECT id, with_jid, at, \'\' AS stanza FROM archive WHERE host = ? AND username = ? ORDER BY seq DESC LIMIT 1'),
    getPrefs: db.prepare<[string, string], { prefs: string }>('SELECT prefs FROM archive_prefs WHERE host = ? AND username = ?'),
    setPrefs: db.prepare<[string, string, string]>(`INSERT INTO archive_prefs (host, username, prefs) SELECT host, username, ? FROM users WHERE host = ? AND username = ?
      ON CONFLICT (host, username) DO UPDATE SET prefs = excluded.prefs`),
    // The oldest `limit` rows by seq (the primary key: no scan), those of them stamped before the cut.
    expire: db.prepare<[number, number]>('DELETE FROM archive WHERE seq IN (SELECT seq FROM (SELECT seq, at FROM archive ORDER BY seq LIMIT ?) WHERE at < ?)'),
    // The seq of the newest message not kept (OFFSET walks `keep` index entries: bounded by the setting).
    cut: db.prepare<[string, string, number], { seq: number }>('SELECT seq FROM archive WHERE host = ? AND username = ? ORDER BY seq DESC LIMIT 1 OFFSET ?'),
    trim: db.prepare<[string, string, number, number]>('DELETE FROM archive WHERE seq IN (SELECT seq FROM archive WHERE host = ? AND username = ? AND seq <= ? ORDER BY seq LIMIT ?)'),
  };
}

/**
 * `thread`: appends go to the writer thread (archive-writes.ts), off the
 * event loop; without it they are committed here, synchronously.
 */
export function createSqliteArchiveStore(db: Database.Database, thread?: ThreadedAppend): ArchiveStore {
  const st = prepareStatements(db);
  const appendAll = db.transaction((entries: readonly ArchiveEntry[]) => {
    for (const e of entries) st.insert.run(e.id, e.with, e.at, e.stanza, e.host, e.username);
  });
  const edge = (row: ArchiveRow | undefined) => (row ? { id: row.id, with: row.with_jid, at: Number(row.at) } : undefined);
  return {
    async append(entries) {
      if (entries.length === 0) return;
      if (thread) await thread.append(entries); else appendAll(entries);
    },
    async query(host, username, q) {
      const bounds = await resolveBounds(q, {
        seqOf: async (id) => st.seqOf.get(host, username, id)?.seq,
        startSeq: async (start) => st.startSeq.get(host, username, start)?.seq,
        endSeq: async (end) => st.endSeq.get(host, username, end)?.seq,
      });
      if (bounds === 'item-not-found') return bounds;
      const page = pageSql(host, username, q, bounds);
      const rows = db.prepare<unknown[], ArchiveRow>(page.sql).all(...page.params);
      const count = countSql(host, username, q, bounds);
      const n = db.prepare<unknown[], { n: number }>(count.sql).get(...count.params)?.n ?? 0;
      const messages = rows.slice(0, q.limit).map(toMessage);
      if (q.direction === 'backward') messages.reverse();
      return { messages, complete: rows.length <= q.limit, count: n <= COUNT_CAP ? n : undefined };
    },
    async bounds(host, username) {
      return { first: edge(st.first.get(host, username)), last: edge(st.last.get(host, username)) };
    },
    async getPrefs(host, username) {
      const row = st.getPrefs.get(host, username);
      return row ? JSON.parse(row.prefs) : DEFAULT_PREFS;
    },
    async setPrefs(host, username, prefs) {
      st.setPrefs.run(JSON.stringify(prefs), host, username);
    },
    async expire(before, limit) {
      return st.expire.run(limit, before).changes;
    },
    async trim(host, username, keep, limit) {
      const cut = st.cut.get(host, username, keep);
      return cut ? st.trim.run(host, username, cut.seq, limit).changes : 0;
    },
  };
}

/** ArchiveStore (XEP-0313) over one better-sqlite3 connection; statements are prepared once. */
import type Database from 'better-sqlite3';
import { countSql, pageSql, resolveBounds, type ArchiveRow } from '../archive-sql.js';
import { firstSeqAt, keyOfArchiveId, lastSeqAt } from '../ports/archive-ids.js';
import type { ThreadedAppend } from './archive-writes.js';
import { COUNT_CAP, DEFAULT_PREFS, type ArchivedMessage, type ArchiveEntry, type ArchiveStore } from '../ports/archive.js';

/** Rows whose id is not of the seq-carrying form (archive-ids.ts), the partial indexes' condition. */
const LEGACY = "instr(id, '.') = 0";

/**
 * INSERT … SELECT: an entry for an account that does not exist inserts nothing (no foreign key
 * failure). `seq` is the entry's own (archive-ids.ts); NULL numbers the row after all others.
 */
export const INSERT = `INSERT INTO archive (seq, host, username, id, with_jid, at, stanza)
  SELECT ?, host, username, ?, ?, ?, ? FROM users WHERE host = ? AND username = ?`;

export const insertParams = (e: ArchiveEntry): [number | null, string, string, number, string, string, string] =>
  [e.seq ?? null, e.id, e.with, e.at, e.stanza, e.host, e.username];

const toMessage = (r: ArchiveRow): ArchivedMessage => ({ id: r.id, with: r.with_jid, at: Number(r.at), stanza: r.stanza });

function prepareStatements(db: Database.Database) {
  return {
    insert: db.prepare<[number | null, string, string, number, string, string, string]>(INSERT),
    // An id with a dot names its seq (archive-ids.ts): 2 × key, or + 1 for the sender's copy.
    seqOfKey: db.prepare<[string, string, number, number, string], { seq: number }>(
      'SELECT seq FROM archive WHERE host = ? AND username = ? AND seq IN (?, ?) AND id = ?'),
    // Older ids (random, no dot) and their times are on partial indexes (migration 10); the
    // `instr` term is what lets SQLite use them.
    legacySeqOf: db.prepare<[string, string, string], { seq: number }>(
      `SELECT seq FROM archive WHERE host = ? AND username = ? AND id = ? AND ${LEGACY}`),
    legacyStart: db.prepare<[string, string, number], { seq: number }>(
      `SELECT seq FROM archive WHERE host = ? AND username = ? AND at >= ? AND ${LEGACY} ORDER BY at ASC, seq ASC LIMIT 1`),
    legacyEnd: db.prepare<[string, string, number], { seq: number }>(
      `SELECT seq FROM archive WHERE host = ? AND username = ? AND at <= ? AND ${LEGACY} ORDER BY at DESC, seq DESC LIMIT 1`),
    newest: db.prepare<[], { at: number }>('SELECT at FROM archive ORDER BY seq DESC LIMIT 1'),
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
    for (const e of entries) st.insert.run(...insertParams(e));
  });
  const edge = (row: ArchiveRow | undefined) => (row ? { id: row.id, with: row.with_jid, at: Number(row.at) } : undefined);
  return {
    async append(entries) {
      if (entries.length === 0) return;
      if (thread) await thread.append(entries); else appendAll(entries);
    },
    async query(host, username, q) {
      const bounds = await resolveBounds(q, {
        seqOf: async (id) => {
          const key = keyOfArchiveId(id);
          if (key === undefined) return st.legacySeqOf.get(host, username, id)?.seq;
          return st.seqOfKey.get(host, username, 2 * key, 2 * key + 1, id)?.seq;
        },
        // The older rows' bound from their index, today's by arithmetic: whichever is wider.
        startSeq: async (start) => Math.min(st.legacyStart.get(host, username, start)?.seq ?? Infinity, firstSeqAt(start)),
        endSeq: async (end) => Math.max(st.legacyEnd.get(host, username, end)?.seq ?? 0, lastSeqAt(end)),
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
    async newestAt() {
      return st.newest.get()?.at;
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

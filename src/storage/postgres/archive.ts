/** ArchiveStore (XEP-0313) over a node-postgres pool; the page query is archive-sql.ts's, numbered. */
import type { Pool } from 'pg';
import { countSql, END_SEQ, numbered, pageSql, resolveBounds, SEQ_OF, START_SEQ, type ArchiveRow } from '../archive-sql.js';
import { COUNT_CAP, DEFAULT_PREFS, type ArchivedMessage, type ArchivePrefs, type ArchiveStore } from '../ports/archive.js';
import { inTransaction, toNumber } from './tx.js';

const toMessage = (r: ArchiveRow): ArchivedMessage => ({ id: r.id, with: r.with_jid, at: toNumber(r.at), stanza: r.stanza });
/**
 * pg_advisory_xact_lock key of archive appends: 'xwgarch' as bytes. seq is an identity, taken
 * when a row is inserted, not when it commits: two processes appending at once could commit
 * seq N + 1 while N is still open, and a client that paged past N + 1 (XEP-0313 §5.1 catching
 * up after the last id it has) would never see N. Appends take this lock first, so their seqs
 * commit in order, as SQLite's one writer does; queries and deletions do not wait on it.
 */
export const ARCHIVE_APPEND_LOCK_KEY = 0x7877676172636800n;
const EDGE = 'SELECT id, with_jid, at FROM archive WHERE host = $1 AND username = $2 ORDER BY seq';

/** `maintenance`: the pool of the retention sweeps (expire, trim), whose statements the statement bound does not cut (index.ts). */
export function createPgArchiveStore(pool: Pool, maintenance: Pool = pool): ArchiveStore {
  const one = async (sql: string, params: unknown[], on: Pool = pool): Promise<number | undefined> => {
    const { rows } = await on.query<{ seq: string }>(numbered(sql), params);
    return rows[0] === undefined ? undefined : toNumber(rows[0].seq);
  };
  const edge = async (host: string, username: string, order: string) => {
    const row = (await pool.query<ArchiveRow>(`${EDGE} ${order} LIMIT 1`, [host, username])).rows[0];
    return row ? { id: row.id, with: row.with_jid, at: toNumber(row.at) } : undefined;
  };
  return {
    async append(entries) {
      if (entries.length === 0) return;
      // One statement for the batch; rows for accounts that do not exist are left out by the join.
      // A retry of a batch that was committed after all (the answer lost with the connection)
      // finds its rows there: left as they are (the port's contract).
      await inTransaction(pool, async (c) => {
        await c.query('SELECT pg_advisory_xact_lock($1)', [ARCHIVE_APPEND_LOCK_KEY.toString()]);
        await c.query(`INSERT INTO archive (host, username, id, with_jid, at, stanza)
          SELECT u.host, u.username, e.id, e.with_jid, e.at, e.stanza
          FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[]) WITH ORDINALITY AS e(host, username, id, with_jid, at, stanza, n)
          JOIN users u ON u.host = e.host AND u.username = e.username ORDER BY e.n
          ON CONFLICT (host, username, id) DO NOTHING`,
        [entries.map((e) => e.host), entries.map((e) => e.username), entries.map((e) => e.id), entries.map((e) => e.with), entries.map((e) => e.at), entries.map((e) => e.stanza)]);
      });
    },
    async remove(host, username, ids) {
      if (ids.length === 0) return 0;
      const res = await pool.query('DELETE FROM archive WHERE host = $1 AND username = $2 AND id = ANY($3::text[])', [host, username, [...ids]]);
      return res.rowCount ?? 0;
    },
    async query(host, username, q) {
      const bounds = await resolveBounds(q, {
        seqOf: (id) => one(SEQ_OF, [host, username, id]),
        startSeq: (start) => one(START_SEQ, [host, username, start]),
        endSeq: (end) => one(END_SEQ, [host, username, end]),
      });
      if (bounds === 'item-not-found') return bounds;
      const page = pageSql(host, username, q, bounds);
      const count = countSql(host, username, q, bounds);
      const [rows, counted] = await Promise.all([
        pool.query<ArchiveRow>(numbered(page.sql), page.params),
        pool.query<{ n: string }>(numbered(count.sql), count.params),
      ]);
      const messages = rows.rows.slice(0, q.limit).map(toMessage);
      if (q.direction === 'backward') messages.reverse();
      const n = toNumber(counted.rows[0]?.n ?? 0);
      return { messages, complete: rows.rows.length <= q.limit, count: n <= COUNT_CAP ? n : undefined };
    },
    // The newest row's stamp (the identity's order is insertion order, read on the primary key): the
    // server numbers after it, so stamps never go back across a restart with the clock set back, and
    // start/end keep finding their rows by stamp order (START_SEQ, archive-sql.ts).
    async newestAt() {
      const row = (await pool.query<{ at: string }>('SELECT at FROM archive ORDER BY seq DESC LIMIT 1')).rows[0];
      return row === undefined ? undefined : toNumber(row.at);
    },
    async bounds(host, username) {
      return { first: await edge(host, username, 'ASC'), last: await edge(host, username, 'DESC') };
    },
    async getPrefs(host, username) {
      const { rows } = await pool.query<{ prefs: ArchivePrefs }>('SELECT prefs FROM archive_prefs WHERE host = $1 AND username = $2', [host, username]);
      return rows[0]?.prefs ?? DEFAULT_PREFS;
    },
    async setPrefs(host, username, prefs) {
      await pool.query(`INSERT INTO archive_prefs (host, username, prefs) SELECT host, username, $1 FROM users WHERE host = $2 AND username = $3
        ON CONFLICT (host, username) DO UPDATE SET prefs = excluded.prefs`, [JSON.stringify(prefs), host, username]);
    },
    async expire(before, limit) {
      // The oldest `limit` rows by seq (the primary key: no scan), those of them stamped before the cut.
      const r = await maintenance.query('DELETE FROM archive WHERE seq IN (SELECT seq FROM (SELECT seq, at FROM archive ORDER BY seq LIMIT $2) AS oldest WHERE at < $1)', [before, limit]);
      return r.rowCount ?? 0;
    },
    async trim(host, username, keep, limit) {
      const cut = await one('SELECT seq FROM archive WHERE host = ? AND username = ? ORDER BY seq DESC LIMIT 1 OFFSET ?', [host, username, keep], maintenance);
      if (cut === undefined) return 0;
      const r = await maintenance.query(`DELETE FROM archive WHERE seq IN (SELECT seq FROM archive WHERE host = $1 AND username = $2 AND seq <= $3 ORDER BY seq LIMIT $4)`, [host, username, cut, limit]);
      return r.rowCount ?? 0;
    },
  };
}

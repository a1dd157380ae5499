/**
 * What the SQL archive stores share: the page query of XEP-0313 over the
 * archive table, built once from an ArchiveQuery with `?` placeholders
 * (PostgreSQL numbers them). Ids are resolved to the table's `seq` first,
 * so every bound is a range on an index that starts (host, username, …):
 * a page costs the same in an archive of a thousand messages or a million.
 */
import { COUNT_CAP, type ArchiveQuery } from './ports/archive.js';

/** Archive ids of a query resolved to seq (undefined: no such bound). */
export interface SeqBounds {
  readonly lo: number;
  readonly hi: number;
  readonly pageLo: number;
  readonly pageHi: number;
  /** The seqs of the query's `ids`, when it has some: matched by seq, on the account's index, not by id. */
  readonly ids?: readonly number[];
}

export interface SqlText {
  readonly sql: string;
  readonly params: unknown[];
}

/**
 * The filters of the result set (XEP-0313 §4.1.1) within one seq range.
 * One range only: given two lower bounds, SQLite starts the index scan at
 * either, and the wrong one walks half the archive.
 */
function filters(host: string, username: string, q: ArchiveQuery, lo: number, hi: number, ids: readonly number[] | undefined): SqlText {
  const where = ['host = ?', 'username = ?', 'seq > ?', 'seq < ?'];
  const params: unknown[] = [host, username, lo, hi];
  if (q.with !== undefined) { where.push('with_jid = ?'); params.push(q.with); }
  if (q.start !== undefined) { where.push('at >= ?'); params.push(q.start); }
  if (q.end !== undefined) { where.push('at <= ?'); params.push(q.end); }
  if (ids !== undefined) { where.push(`seq IN (${ids.map(() => '?').join(', ') || 'NULL'})`); params.push(...ids); }
  return { sql: where.join(' AND '), params };
}

/** One more than the page, from the direction's end: the extra row tells whether the page is complete. */
export function pageSql(host: string, username: string, q: ArchiveQuery, b: SeqBounds): SqlText {
  const f = filters(host, username, q, Math.max(b.lo, b.pageLo), Math.min(b.hi, b.pageHi), b.ids);
  const order = q.direction === 'forward' ? 'ASC' : 'DESC';
  return { sql: `SELECT seq, id, with_jid, at, stanza FROM archive WHERE ${f.sql} ORDER BY seq ${order} LIMIT ?`, params: [...f.params, q.limit + 1] };
}

/** Counts the result set up to COUNT_CAP + 1: bounded work whatever the archive's size. */
export function countSql(host: string, username: string, q: ArchiveQuery, b: SeqBounds): SqlText {
  const f = filters(host, username, q, b.lo, b.hi, b.ids);
  return { sql: `SELECT COUNT(*) AS n FROM (SELECT 1 FROM archive WHERE ${f.sql} LIMIT ${COUNT_CAP + 1}) AS matches`, params: f.params };
}

/**
 * XEP-0313 §4.1.1 start/end as seq bounds, found on the (host, username, at)
 * index: the server stamps `at` in archive order (never going back, see
 * the archive writer), so the first message at or after `start` bounds
 * the seq range and the page scan never walks older rows.
 */
export const START_SEQ = 'SELECT seq FROM archive WHERE host = ? AND username = ? AND at >= ? ORDER BY at ASC, seq ASC LIMIT 1';
export const END_SEQ = 'SELECT seq FROM archive WHERE host = ? AND username = ? AND at <= ? ORDER BY at DESC, seq DESC LIMIT 1';
export const SEQ_OF = 'SELECT seq FROM archive WHERE host = ? AND username = ? AND id = ?';

/** A row as both SQL stores read it. */
export interface ArchiveRow {
  /** The row's place in the account's archive (PostgreSQL's bigint comes as a string). */
  seq?: number | string;
  id: string;
  with_jid: string;
  at: number | string;
  stanza: string;
}

/** Turns `?` placeholders into PostgreSQL's $1, $2… (the texts above contain no other `?`). */
export function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

export const NO_BOUNDS: SeqBounds = { lo: 0, hi: Number.MAX_SAFE_INTEGER, pageLo: 0, pageHi: Number.MAX_SAFE_INTEGER };

/** How a store looks up the seq of an archive id and of the first/last message in a time range. */
export interface SeqLookups {
  seqOf(id: string): Promise<number | undefined>;
  startSeq(start: number): Promise<number | undefined>;
  endSeq(end: number): Promise<number | undefined>;
}

/** The query's ids and times as seq bounds; 'item-not-found' for an id not in the archive. */
export async function resolveBounds(q: ArchiveQuery, look: SeqLookups): Promise<SeqBounds | 'item-not-found'> {
  const MAX = NO_BOUNDS.hi;
  const ids = [q.afterId, q.beforeId, q.page?.after, q.page?.before];
  const seqs = await Promise.all(ids.map((id) => (id === undefined ? undefined : look.seqOf(id))));
  if (ids.some((id, i) => id !== undefined && seqs[i] === undefined)) return 'item-not-found';
  // XEP-0313 §4.1.1: an id asked for with the ids field that is not in the archive is item-not-found too.
  let idSeqs: number[] | undefined;
  if (q.ids !== undefined) {
    idSeqs = [];
    for (const id of q.ids) {
      const seq = await look.seqOf(id);
      if (seq === undefined) return 'item-not-found';
      idSeqs.push(seq);
    }
  }
  let lo = seqs[0] ?? 0;
  let hi = seqs[1] ?? MAX;
  if (q.start !== undefined) lo = Math.max(lo, ((await look.startSeq(q.start)) ?? MAX) - 1);
  if (q.end !== undefined) hi = Math.min(hi, ((await look.endSeq(q.end)) ?? 0) + 1);
  return { lo, hi, pageLo: seqs[2] ?? 0, pageHi: seqs[3] ?? MAX, ids: idSeqs };
}

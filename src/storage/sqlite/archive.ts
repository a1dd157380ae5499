/**
 * ArchiveStore (XEP-0313) over one better-sqlite3 connection; statements are prepared once.
 * Since migration 11 a message is one `archive_messages` row (archive-rows.ts writes it); rows of
 * the older `archive` table (one per account and message) stay and are read alongside: every
 * page, count and bound below is taken from both and merged by seq.
 */
import type Database from 'better-sqlite3';
import { countSql, pageSql, resolveBounds, type ArchiveRow, type SeqBounds } from '../archive-sql.js';
import { firstSeqAt, keyOfArchiveId, lastSeqAt } from '../ports/archive-ids.js';
import type { ThreadedAppend } from './archive-writes.js';
import { archiveAppender } from './archive-rows.js';
import { unpack } from '../ports/archive-pack.js';
import { COUNT_CAP, DEFAULT_PREFS, type ArchivedMessage, type ArchiveQuery, type ArchiveStore } from '../ports/archive.js';

/** Rows whose id is not of the seq-carrying form (archive-ids.ts), the partial indexes' condition. */
const LEGACY = "instr(id, '.') = 0";

interface SeqRow extends ArchiveRow { seq: number; key?: number }

/** Query shapes whose statements are kept prepared at most (a query's shape: its filters, direction and number of ids). */
const MAX_STATEMENTS = 256;

/**
 * One account's entries in `archive_messages` (@me: its archive_jids id), each arm in key order
 * on its partial index: what it received (seq 2 × key), what it sent (2 × key + 1). `where` is
 * added to both arms, with `{seq}` standing for the arm's seq. A compound ORDER BY key merges the
 * two index scans: a page reads a page's worth of rows in an archive of any size.
 */
function accountArms(where = '', columns = 'm.id AS id, j.jid AS with_jid, m.at AS at, m.stanza AS stanza'): string {
  // The correspondent's JID only when a column asks for it.
  const join = columns.includes('j.') ? (other: string) => ` JOIN archive_jids AS j ON j.id = m.${other}` : () => '';
  const arm = (side: 0 | 1, party: string, other: string, bit: number) => {
    const seq = side === 0 ? '2 * m.key' : '2 * m.key + 1';
    return `SELECT ${seq} AS seq, m.key AS key, ${columns} FROM archive_messages AS m${join(other)}
      WHERE m.${party} = @me AND m.sides & ${bit}${where.replaceAll('{seq}', seq)}`;
  };
  return `${arm(0, 'receiver', 'sender', 1)} UNION ALL ${arm(1, 'sender', 'receiver', 2)}`;
}

/**
 * The account's conversation with @with (the pair @lo, @hi of their archive_jids ids), on the pair's
 * index. Which copy a row is reads only `sender` and `sides`, both in that index, so counting reads
 * no table row: @me sent it (its copy, 2 × key + 1, if sides & 2) or received it (2 × key, if
 * sides & 1); a note to itself (@lo = @hi) is only ever the recipient's copy.
 */
function conversation(where = '', columns = 'm.id AS id, @with AS with_jid, m.at AS at, m.stanza AS stanza'): string {
  const sent = 'm.sender = @me AND @lo <> @hi';
  const seq = `CASE WHEN ${sent} THEN 2 * m.key + 1 ELSE 2 * m.key END`;
  return `SELECT ${seq} AS seq, m.key AS key, ${columns} FROM archive_messages AS m
    WHERE min(m.sender, m.receiver) = @lo AND max(m.sender, m.receiver) = @hi
      AND CASE WHEN ${sent} THEN m.sides & 2 ELSE m.sides & 1 END${where.replaceAll('{seq}', `(${seq})`)}`;
}

/** The filters of a query (XEP-0313 §4.1.1) on `archive_messages`, within (lo, hi) of seq; {seq} is the row's seq. */
function newFilters(q: ArchiveQuery, lo: number, hi: number, ids: readonly number[] | undefined): { where: string; params: Record<string, unknown> } {
  let where = ' AND m.key >= @klo AND m.key <= @khi AND {seq} > @lo_seq AND {seq} < @hi_seq';
  // start/end as key bounds, exact for these rows: a row's key is its stamp × KEYS_PER_MS + a counter
  // (archive-ids.ts). A term on `at` would read each row of the range from the table.
  let klo = Math.floor(lo / 2);
  let khi = Math.floor(Math.min(hi, Number.MAX_SAFE_INTEGER) / 2);
  if (q.start !== undefined) klo = Math.max(klo, firstSeqAt(q.start) / 2);
  if (q.end !== undefined) khi = Math.min(khi, Math.floor(lastSeqAt(q.end) / 2));
  const params: Record<string, unknown> = {};
  if (ids !== undefined) {
    // The keys bound the range (an index walk over the account's whole archive otherwise: the
    // {seq} expression is no index key) and name the rows (m.key is the rowid); {seq} checks the side.
    const keys = ids.map((seq) => Math.floor(seq / 2));
    if (keys.length > 0) {
      klo = Math.max(klo, Math.min(...keys));
      khi = Math.min(khi, Math.max(...keys));
    }
    where += ` AND m.key IN (${keys.map((_, i) => `@key${i}`).join(', ') || 'NULL'}) AND {seq} IN (${ids.map((_, i) => `@id${i}`).join(', ') || 'NULL'})`;
    keys.forEach((key, i) => { params[`key${i}`] = key; });
    ids.forEach((seq, i) => { params[`id${i}`] = seq; });
  }
  Object.assign(params, { klo, khi, lo_seq: lo, hi_seq: hi });
  return { where, params };
}

const toMessage = (r: ArchiveRow): ArchivedMessage => ({ id: r.id, with: r.with_jid, at: Number(r.at), stanza: r.stanza });

function prepareStatements(db: Database.Database) {
  const edgeColumns = "m.id AS id, j.jid AS with_jid, m.at AS at, '' AS stanza";
  return {
    jid: db.prepare<[string], number>('SELECT id FROM archive_jids WHERE jid = ?').pluck(),
    // An id with a dot names its key (archive-ids.ts): the row is found by key, then checked to be the account's.
    newSeqOf: db.prepare<[{ me: number; key: number; id: string }], { seq: number | null }>(
      `SELECT CASE WHEN receiver = @me AND sides & 1 THEN 2 * key WHEN sender = @me AND sides & 2 THEN 2 * key + 1 END AS seq
       FROM archive_messages WHERE key = @key AND id = @id`),
    newFirst: db.prepare<[{ me: number }], SeqRow>(`${accountArms('', edgeColumns)} ORDER BY key ASC LIMIT 1`),
    newLast: db.prepare<[{ me: number }], SeqRow>(`${accountArms('', edgeColumns)} ORDER BY key DESC LIMIT 1`),
    newNewest: db.prepare<[], { at: number }>('SELECT at FROM archive_messages ORDER BY key DESC LIMIT 1'),
    // The account's entry `keep` places from its newest; how many it has (up to a cap); its oldest up to a seq.
    newCut: db.prepare<[{ me: number; keep: number }], { seq: number }>(`${accountArms('', "'' AS id")} ORDER BY key DESC LIMIT 1 OFFSET @keep`),
    newCount: db.prepare<[{ me: number; cap: number }], { n: number }>(`SELECT COUNT(*) AS n FROM (SELECT 1 FROM (${accountArms('', "'' AS id")}) LIMIT @cap)`),
    newOldest: db.prepare<[{ me: number; cut: number; limit: number }], { seq: number; key: number }>(
      `${accountArms(' AND {seq} <= @cut', "'' AS id")} ORDER BY key ASC LIMIT @limit`),
    leaveReceived: db.prepare<[number]>('UPDATE archive_messages SET sides = sides & ~1 WHERE key = ?'),
    leaveSent: db.prepare<[number]>('UPDATE archive_messages SET sides = sides & ~2 WHERE key = ?'),
    dropEmpty: db.prepare<[number]>('DELETE FROM archive_messages WHERE key = ? AND sides = 0'),
    // The oldest `limit` messages by key (the rowid: no scan), those of them stamped before the cut.
    newExpire: db.prepare<[number, number]>('DELETE FROM archive_messages WHERE key IN (SELECT key FROM (SELECT key, at FROM archive_messages ORDER BY key LIMIT ?) WHERE at < ?)'),
    // The older table (migrations 9 and 10). An id with a dot names its seq: 2 × key, or + 1 for the sender's copy.
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
    first: db.prepare<[string, string], SeqRow>('SELECT seq, id, with_jid, at, \'\' AS stanza FROM archive WHERE host = ? AND username = ? ORDER BY seq ASC LIMIT 1'),
    last: db.prepare<[string, string], SeqRow>('SELECT seq, id, with_jid, at, \'\' AS stanza FROM archive WHERE host = ? AND username = ? ORDER BY seq DESC LIMIT 1'),
    getPrefs: db.prepare<[string, string], { prefs: string }>('SELECT prefs FROM archive_prefs WHERE host = ? AND username = ?'),
    setPrefs: db.prepare<[string, string, string]>(`INSERT INTO archive_prefs (host, username, prefs) SELECT host, username, ? FROM users WHERE host = ? AND username = ?
      ON CONFLICT (host, username) DO UPDATE SET prefs = excluded.prefs`),
    // The oldest `limit` rows by seq (the primary key: no scan), those of them stamped before the cut.
    expire: db.prepare<[number, number]>('DELETE FROM archive WHERE seq IN (SELECT seq FROM (SELECT seq, at FROM archive ORDER BY seq LIMIT ?) WHERE at < ?)'),
    // The seq of the newest message not kept (OFFSET walks `keep` index entries: bounded by the setting).
    cut: db.prepare<[string, string, number], { seq: number }>('SELECT seq FROM archive WHERE host = ? AND username = ? ORDER BY seq DESC LIMIT 1 OFFSET ?'),
    trim: db.prepare<[string, string, number, number]>('DELETE FROM archive WHERE seq IN (SELECT seq FROM archive WHERE host = ? AND username = ? AND seq <= ? ORDER BY seq LIMIT ?)'),
    removeOlder: db.prepare<[number]>('DELETE FROM archive WHERE seq = ?'),
  };
}

/** Of two rows (either may be missing), the one further in `dir` by seq. */
function edge(a: SeqRow | undefined, b: SeqRow | undefined, dir: 1 | -1): SeqRow | undefined {
  if (!a || !b) return a ?? b;
  return (a.seq - b.seq) * dir > 0 ? a : b;
}

/**
 * `thread`: appends go to the writer thread (archive-writes.ts), off the
 * event loop; without it they are committed here, synchronously.
 */
export function createSqliteArchiveStore(db: Database.Database, thread?: ThreadedAppend): ArchiveStore {
  const st = prepareStatements(db);
  const appendHere = thread ? undefined : archiveAppender(db);
  const jidId = (jid: string): number | undefined => st.jid.get(jid);
  const toEdge = (row: SeqRow | undefined) => (row ? { id: row.id, with: row.with_jid, at: Number(row.at) } : undefined);

  /** The statement over the account's entries in archive_messages for a query within (lo, hi); undefined: none can match. */
  // Statements of the query shapes met so far (filters, direction, number of ids), prepared once each.
  const statements = new Map<string, Database.Statement>();
  const prepared = (sql: string): Database.Statement => {
    let st = statements.get(sql);
    if (st === undefined) {
      if (statements.size >= MAX_STATEMENTS) statements.clear();
      st = db.prepare(sql);
      statements.set(sql, st);
    }
    return st;
  };
  const newSelect = (me: number, q: ArchiveQuery, lo: number, hi: number, ids: readonly number[] | undefined, count = false) => {
    const f = newFilters(q, lo, hi, ids);
    if (q.with === undefined) return { sql: count ? accountArms(f.where, "'' AS id") : accountArms(f.where), params: { ...f.params, me } };
    const w = jidId(q.with);
    if (w === undefined) return undefined;
    return { sql: count ? conversation(f.where, "'' AS id") : conversation(f.where), params: { ...f.params, me, with: q.with, lo: Math.min(me, w), hi: Math.max(me, w) } };
  };
  const newPage = (me: number, q: ArchiveQuery, b: SeqBounds): SeqRow[] => {
    const s = newSelect(me, q, Math.max(b.lo, b.pageLo), Math.min(b.hi, b.pageHi), b.ids);
    if (!s) return [];
    const order = q.direction === 'forward' ? 'ASC' : 'DESC';
    return prepared(`${s.sql} ORDER BY key ${order} LIMIT @limit`).all({ ...s.params, limit: q.limit + 1 }) as SeqRow[];
  };
  const newCount = (me: number, q: ArchiveQuery, b: SeqBounds): number => {
    const s = newSelect(me, q, b.lo, b.hi, b.ids, true);
    if (!s) return 0;
    return (prepared(`SELECT COUNT(*) AS n FROM (SELECT 1 FROM (${s.sql}) LIMIT ${COUNT_CAP + 1})`).get(s.params) as { n: number } | undefined)?.n ?? 0;
  };
  /**
   * The account's copies of these messages: its side of an archive_messages row (the row goes with
   * the last side), or its row of the older table. Found by reading first: ids the account does not
   * have cost no write transaction (a write on this connection waits for the writer thread's lock).
   */
  const removeIds = (host: string, username: string, me: number | undefined, ids: readonly string[]): number => {
    const sides: Array<{ key: number; seq: number }> = [];
    const older: number[] = [];
    for (const id of ids) {
      const key = keyOfArchiveId(id);
      const seq = key === undefined || me === undefined ? undefined : st.newSeqOf.get({ me, key, id })?.seq;
      if (seq !== undefined && seq !== null) { sides.push({ key: key!, seq }); continue; }
      // The older table: by the seq an id carries (its primary key), or an old random id on its partial index.
      const old = key === undefined ? st.legacySeqOf.get(host, username, id)?.seq : st.seqOfKey.get(host, username, 2 * key, 2 * key + 1, id)?.seq;
      if (old !== undefined) older.push(old);
    }
    if (sides.length === 0 && older.length === 0) return 0;
    return db.transaction((): number => {
      let n = 0;
      for (const { key, seq } of sides) {
        n += (seq % 2 === 0 ? st.leaveReceived : st.leaveSent).run(key).changes;
        st.dropEmpty.run(key);
      }
      for (const seq of older) n += st.removeOlder.run(seq).changes;
      return n;
    }).immediate();
  };
  // Reads, then writes: IMMEDIATE (below), or the write would fail at once with SQLITE_BUSY when
  // the writer thread holds the lock or committed since the read began (no busy handler then).
  const trimNew = db.transaction((me: number, cut: number, limit: number): number => {
    const rows = st.newOldest.all({ me, cut, limit });
    for (const r of rows) {
      (r.seq % 2 === 0 ? st.leaveReceived : st.leaveSent).run(r.key);
      st.dropEmpty.run(r.key);
    }
    return rows.length;
  });

  return {
    async append(entries) {
      if (entries.length === 0) return;
      if (thread) await thread.append(entries); else appendHere!.entries(entries);
    },
    async appendPacked(views) {
      if (thread) await thread.appendPacked(views); else appendHere!.records(unpack(views));
    },
    async query(host, username, q) {
      const me = jidId(`${username}@${host}`);
      const bounds = await resolveBounds(q, {
        seqOf: async (id) => {
          const key = keyOfArchiveId(id);
          if (key === undefined) return st.legacySeqOf.get(host, username, id)?.seq;
          const seq = me === undefined ? undefined : st.newSeqOf.get({ me, key, id })?.seq;
          return seq ?? st.seqOfKey.get(host, username, 2 * key, 2 * key + 1, id)?.seq;
        },
        // The older rows' bound from their index, today's by arithmetic: whichever is wider.
        startSeq: async (start) => Math.min(st.legacyStart.get(host, username, start)?.seq ?? Infinity, firstSeqAt(start)),
        endSeq: async (end) => Math.max(st.legacyEnd.get(host, username, end)?.seq ?? 0, lastSeqAt(end)),
      });
      if (bounds === 'item-not-found') return bounds;
      const page = pageSql(host, username, q, bounds);
      const older = prepared(page.sql).all(...page.params) as SeqRow[];
      const newer = me === undefined ? [] : newPage(me, q, bounds);
      // Each in the page's direction; merged, the first limit + 1 are the page and the sign of more.
      const dir = q.direction === 'forward' ? 1 : -1;
      const rows = older.length === 0 ? newer : newer.length === 0 ? older
        : [...older, ...newer].sort((a, b) => (a.seq - b.seq) * dir).slice(0, q.limit + 1);
      const count = countSql(host, username, q, bounds);
      const n = ((prepared(count.sql).get(...count.params) as { n: number } | undefined)?.n ?? 0) + (me === undefined ? 0 : newCount(me, q, bounds));
      const messages = rows.slice(0, q.limit).map(toMessage);
      if (q.direction === 'backward') messages.reverse();
      return { messages, complete: rows.length <= q.limit, count: n <= COUNT_CAP ? n : undefined };
    },
    async bounds(host, username) {
      const me = jidId(`${username}@${host}`);
      return {
        first: toEdge(edge(st.first.get(host, username), me === undefined ? undefined : st.newFirst.get({ me }), -1)),
        last: toEdge(edge(st.last.get(host, username), me === undefined ? undefined : st.newLast.get({ me }), 1)),
      };
    },
    async newestAt() {
      const ats = [st.newNewest.get()?.at, st.newest.get()?.at].filter((at) => at !== undefined);
      return ats.length === 0 ? undefined : Math.max(...ats);
    },
    async getPrefs(host, username) {
      const row = st.getPrefs.get(host, username);
      return row ? JSON.parse(row.prefs) : DEFAULT_PREFS;
    },
    async setPrefs(host, username, prefs) {
      st.setPrefs.run(JSON.stringify(prefs), host, username);
    },
    async expire(before, limit) {
      // The older table's rows are the older: they go first. New rows count once per message.
      const n = st.expire.run(limit, before).changes;
      return n >= limit ? n : n + st.newExpire.run(limit - n, before).changes;
    },
    async remove(host, username, ids) {
      if (ids.length === 0) return 0;
      return removeIds(host, username, jidId(`${username}@${host}`), ids);
    },
    async trim(host, username, keep, limit) {
      const me = jidId(`${username}@${host}`);
      const newCut = me === undefined ? undefined : st.newCut.get({ me, keep });
      if (newCut === undefined) {
        // The `keep` newest include every entry in archive_messages: the cut is in the older table.
        const inNew = me === undefined ? 0 : st.newCount.get({ me, cap: keep })?.n ?? 0;
        const cut = st.cut.get(host, username, keep - inNew);
        return cut ? st.trim.run(host, username, cut.seq, limit).changes : 0;
      }
      const n = st.trim.run(host, username, newCut.seq, limit).changes;
      return n >= limit ? n : n + trimNew.immediate(me!, newCut.seq, limit - n);
    },
  };
}

/**
 * ArchiveStore (XEP-0313) over one better-sqlite3 connection; statements are prepared once.
 * Since migration 11 a message is one `archive_messages` row (archive-rows.ts writes it), and
 * since migration 17 an account's archive is its runs (archive-runs.ts): the seqs of its copies,
 * whole or with one correspondent, in order. Rows of the older `archive` table (one per account
 * and message) stay and are read alongside: every page, count and bound below is taken from both
 * and merged by seq.
 */
import type Database from 'better-sqlite3';
import { countSql, pageSql, resolveBounds, type ArchiveRow, type SeqBounds } from '../archive-sql.js';
import { firstSeqAt, keyOfArchiveId, lastSeqAt } from '../ports/archive-ids.js';
import type { ThreadedAppend } from './archive-writes.js';
import { archiveAppender } from './archive-rows.js';
import { archiveRuns } from './archive-runs.js';
import { unpack } from '../ports/archive-pack.js';
import { COUNT_CAP, DEFAULT_PREFS, type ArchivedMessage, type ArchiveQuery, type ArchiveStore } from '../ports/archive.js';

/** Rows whose id is not of the seq-carrying form (archive-ids.ts), the partial indexes' condition. */
const LEGACY = "instr(id, '.') = 0";

interface SeqRow extends ArchiveRow { seq: number; key?: number }

/** Query shapes whose statements are kept prepared at most (a query's shape: its filters, direction and number of ids). */
const MAX_STATEMENTS = 256;

/** The highest seq there can be (an exclusive upper bound above all). */
const TOP = Number.MAX_SAFE_INTEGER;

/** At most `n` of the generator's values; the generator is closed after (the connection is free again). */
function take(gen: Generator<number>, n: number): number[] {
  const out: number[] = [];
  if (n <= 0) return out;
  for (const v of gen) {
    out.push(v);
    if (out.length >= n) break;
  }
  return out;
}

/** The seqs strictly between lo and hi that a query's start and end leave (a seq carries its stamp: archive-ids.ts). */
function seqRange(q: ArchiveQuery, lo: number, hi: number): [number, number] {
  return [
    q.start === undefined ? lo : Math.max(lo, firstSeqAt(q.start) - 1),
    q.end === undefined ? hi : Math.min(hi, lastSeqAt(q.end) + 1),
  ];
}

const toMessage = (r: ArchiveRow): ArchivedMessage => ({ id: r.id, with: r.with_jid, at: Number(r.at), stanza: r.stanza });

function prepareStatements(db: Database.Database) {
  return {
    jid: db.prepare<[string], number>('SELECT id FROM archive_jids WHERE jid = ?').pluck(),
    // An id with a dot names its key (archive-ids.ts): the row is found by key, then checked to be the account's.
    newSeqOf: db.prepare<[{ me: number; key: number; id: string }], { seq: number | null }>(
      `SELECT CASE WHEN receiver = @me AND sides & 1 THEN 2 * key WHEN sender = @me AND sides & 2 THEN 2 * key + 1 END AS seq
       FROM archive_messages WHERE key = @key AND id = @id`),
    row: db.prepare<[number], { id: string; at: number; sender: number; receiver: number; sides: number; stanza: string }>(
      'SELECT id, at, sender, receiver, sides, stanza FROM archive_messages WHERE key = ?'),
    jidOf: db.prepare<[number], string>('SELECT jid FROM archive_jids WHERE id = ?').pluck(),
    newNewest: db.prepare<[], { at: number }>('SELECT at FROM archive_messages ORDER BY key DESC LIMIT 1'),
    leaveReceived: db.prepare<[number]>('UPDATE archive_messages SET sides = sides & ~1 WHERE key = ?'),
    leaveSent: db.prepare<[number]>('UPDATE archive_messages SET sides = sides & ~2 WHERE key = ?'),
    dropEmpty: db.prepare<[number]>('DELETE FROM archive_messages WHERE key = ? AND sides = 0'),
    // The oldest `limit` messages by key (the rowid: no scan), those of them stamped before the cut.
    newExpiring: db.prepare<[number, number], number>('SELECT key FROM (SELECT key, at FROM archive_messages ORDER BY key LIMIT ?) WHERE at < ?').pluck(),
    dropKey: db.prepare<[number]>('DELETE FROM archive_messages WHERE key = ?'),
    // The runs that can hold a seq up to the cut (any account's), for an expiry.
    runsFrom: db.prepare<[number], { owner: number; peer: number; last: number; first: number; seqs: string }>(
      'SELECT owner, peer, last, first, seqs FROM archive_runs WHERE first <= ?'),
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
  const runs = archiveRuns(db);
  /** The row of the account's copy at `seq` and its correspondent's id; undefined when the row does not hold that copy. */
  const copyRow = (me: number, seq: number) => {
    const key = Math.floor(seq / 2);
    const row = st.row.get(key);
    if (row === undefined) return undefined;
    const received = seq === 2 * key;
    if (received ? row.receiver !== me || !(row.sides & 1) : row.sender !== me || !(row.sides & 2)) return undefined;
    return { key, row, other: received ? row.sender : row.receiver };
  };
  /** The account's copy at `seq` as a page row, if it is with `peer` (any, 0). JIDs by id, cached for the call. */
  const copyAt = (me: number, seq: number, peer: number, jids: Map<number, string>): SeqRow | undefined => {
    const c = copyRow(me, seq);
    if (c === undefined || (peer !== 0 && c.other !== peer)) return undefined;
    let jid = jids.get(c.other);
    if (jid === undefined) jids.set(c.other, jid = st.jidOf.get(c.other) ?? '');
    return { seq, key: c.key, id: c.row.id, with_jid: jid, at: c.row.at, stanza: c.row.stanza };
  };
  /** The runs a query reads: the account's whole archive (0) or its conversation with `with`; undefined when there is none. */
  const peerOf = (q: ArchiveQuery): number | undefined => (q.with === undefined ? 0 : jidId(q.with));
  /** The query's `ids` (as seqs) within (lo, hi), in its direction: checked row by row, no run read. */
  const idSeqs = (ids: readonly number[], lo: number, hi: number, direction: ArchiveQuery['direction']): number[] =>
    [...new Set(ids)].filter((s) => s > lo && s < hi).sort((a, b) => (direction === 'forward' ? a - b : b - a));
  const newPage = (me: number, q: ArchiveQuery, b: SeqBounds): SeqRow[] => {
    const peer = peerOf(q);
    if (peer === undefined) return [];
    const [lo, hi] = seqRange(q, Math.max(b.lo, b.pageLo), Math.min(b.hi, b.pageHi));
    const jids = new Map<number, string>();
    const out: SeqRow[] = [];
    // The runs hold only the account's copies (with that peer): each seq is a row of the page.
    const seqs = b.ids === undefined ? take(runs.seqs(me, peer, lo, hi, q.direction), q.limit + 1) : idSeqs(b.ids, lo, hi, q.direction);
    for (const seq of seqs) {
      const row = copyAt(me, seq, peer, jids);
      if (row !== undefined) out.push(row);
      if (out.length > q.limit) break;
    }
    return out;
  };
  const newCount = (me: number, q: ArchiveQuery, b: SeqBounds): number => {
    const peer = peerOf(q);
    if (peer === undefined) return 0;
    const [lo, hi] = seqRange(q, b.lo, b.hi);
    if (b.ids !== undefined) {
      const jids = new Map<number, string>();
      return idSeqs(b.ids, lo, hi, 'forward').filter((seq) => copyAt(me, seq, peer, jids) !== undefined).length;
    }
    return take(runs.seqs(me, peer, lo, hi, 'forward'), COUNT_CAP + 1).length;
  };
  /** The account's oldest (1) or newest (-1) copy. */
  const newEdge = (me: number, dir: 1 | -1): SeqRow | undefined => {
    const [seq] = take(runs.seqs(me, 0, -1, TOP, dir === 1 ? 'forward' : 'backward'), 1);
    return seq === undefined ? undefined : copyAt(me, seq, 0, new Map());
  };
  /** Takes the account's side out of these rows (each row goes with its last side), and the copies out of its runs. */
  const leave = (me: number, copies: ReadonlyArray<{ readonly seq: number; readonly peer: number }>): number => {
    let n = 0;
    const byPeer = new Map<number, number[]>();
    for (const { seq, peer } of copies) {
      const key = Math.floor(seq / 2);
      n += (seq === 2 * key ? st.leaveReceived : st.leaveSent).run(key).changes;
      st.dropEmpty.run(key);
      const list = byPeer.get(peer);
      if (list === undefined) byPeer.set(peer, [seq]); else list.push(seq);
    }
    runs.remove(me, 0, copies.map((c) => c.seq));
    for (const [peer, seqs] of byPeer) runs.remove(me, peer, seqs);
    return n;
  };
  /** The account's copy at seq and its correspondent, if the row holds it. */
  const copyOf = (me: number, seq: number): { seq: number; peer: number } | undefined => {
    const c = copyRow(me, seq);
    return c === undefined ? undefined : { seq, peer: c.other };
  };
  /**
   * The account's copies of these messages: its side of an archive_messages row (the row goes with
   * the last side), or its row of the older table. Found by reading first: ids the account does not
   * have cost no write transaction (a write on this connection waits for the writer thread's lock).
   */
  const removeIds = (host: string, username: string, me: number | undefined, ids: readonly string[]): number => {
    const copies: Array<{ seq: number; peer: number }> = [];
    const older: number[] = [];
    for (const id of ids) {
      const key = keyOfArchiveId(id);
      const seq = key === undefined || me === undefined ? undefined : st.newSeqOf.get({ me, key, id })?.seq;
      const copy = seq === undefined || seq === null ? undefined : copyOf(me!, seq);
      if (copy !== undefined) { copies.push(copy); continue; }
      // The older table: by the seq an id carries (its primary key), or an old random id on its partial index.
      const old = key === undefined ? st.legacySeqOf.get(host, username, id)?.seq : st.seqOfKey.get(host, username, 2 * key, 2 * key + 1, id)?.seq;
      if (old !== undefined) older.push(old);
    }
    if (copies.length === 0 && older.length === 0) return 0;
    return db.transaction((): number => {
      let n = copies.length === 0 ? 0 : leave(me!, copies);
      for (const seq of older) n += st.removeOlder.run(seq).changes;
      return n;
    }).immediate();
  };
  // Reads, then writes: IMMEDIATE (below), or the write would fail at once with SQLITE_BUSY when
  // the writer thread holds the lock or committed since the read began (no busy handler then).
  const trimNew = db.transaction((me: number, cut: number, limit: number): number => {
    const copies = take(runs.seqs(me, 0, -1, cut + 1, 'forward'), limit).map((seq) => copyOf(me, seq)).filter((c) => c !== undefined);
    return copies.length === 0 ? 0 : leave(me, copies);
  });
  /** The oldest `limit` messages stamped before `before`: their rows, and their copies in every account's runs. */
  const expireNew = db.transaction((before: number, limit: number): number => {
    const keys = st.newExpiring.all(limit, before);
    if (keys.length === 0) return 0;
    for (const key of keys) st.dropKey.run(key);
    const gone = new Set(keys);
    let top = 0;
    for (const key of keys) top = Math.max(top, 2 * key + 1);
    for (const run of st.runsFrom.all(top)) {
      const seqs = JSON.parse(run.seqs) as number[];
      const dead = seqs.map((d) => run.first + d).filter((seq) => gone.has(Math.floor(seq / 2)));
      if (dead.length > 0) runs.remove(run.owner, run.peer, dead);
    }
    return keys.length;
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
        first: toEdge(edge(st.first.get(host, username), me === undefined ? undefined : newEdge(me, 1), -1)),
        last: toEdge(edge(st.last.get(host, username), me === undefined ? undefined : newEdge(me, -1), 1)),
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
      return n >= limit ? n : n + expireNew.immediate(before, limit - n);
    },
    async remove(host, username, ids) {
      if (ids.length === 0) return 0;
      return removeIds(host, username, jidId(`${username}@${host}`), ids);
    },
    async trim(host, username, keep, limit) {
      const me = jidId(`${username}@${host}`);
      // The seq of the newest copy not kept: `keep` places from the newest, in the runs.
      const newer = me === undefined ? [] : take(runs.seqs(me, 0, -1, TOP, 'backward'), keep + 1);
      const newCut = newer.length > keep ? newer[keep] : undefined;
      if (newCut === undefined) {
        // The `keep` newest include every entry in archive_messages: the cut is in the older table.
        const cut = st.cut.get(host, username, keep - newer.length);
        return cut ? st.trim.run(host, username, cut.seq, limit).changes : 0;
      }
      const n = st.trim.run(host, username, newCut, limit).changes;
      return n >= limit ? n : n + trimNew.immediate(me!, newCut, limit - n);
    },
  };
}

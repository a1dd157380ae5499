/**
 * The SQLite archive's index (migration 17): which messages each account's archive holds, as runs.
 * A run is one row of `archive_runs`: an account (`owner`), a correspondent (`peer`; 0 for the
 * account's whole archive), and the seqs of its copies (2 × key for what it received, 2 × key + 1
 * for what it sent) that one commit added, in order, as a JSON array of their distance from the
 * run's `first` (so the account deletion's trigger reads them with json_each). Each copy is in two
 * runs: (owner, 0) and (owner, peer). An account's runs with one peer never overlap: each holds
 * seqs above the one before it (add() merges when they would), so the runs in `last` order are
 * the archive in seq order.
 *
 * Why runs and not an index entry per copy (migration 11's three indexes): every commit rewrote a
 * B-tree leaf of each index for each account it touched, one entry per copy, three quarters of
 * the writer thread's CPU; with runs, a commit writes one row per account and correspondent it
 * touches, however many messages they exchanged in it (bench/RESULTS.md, "Message archive",
 * session 35). Hand-written because SQLite has no index over such groups.
 */
import type Database from 'better-sqlite3';

/** Seqs one run holds at most: a row stays within a B-tree page (about 1,000 bytes of a WITHOUT ROWID row stay local). */
export const RUN_MAX = 100;

/** (Account, correspondent) pairs whose newest seqs a writer keeps in memory at most (then it forgets them all and reads them again). */
const NEWEST_CACHED = 100_000;

/** A run as stored. */
export interface RunRow { readonly last: number; readonly first: number; readonly seqs: string }

export const encodeSeqs = (seqs: readonly number[]): string => {
  const first = seqs[0]!;
  let out = '[';
  for (let i = 0; i < seqs.length; i++) out += (i === 0 ? '' : ',') + (seqs[i]! - first);
  return `${out}]`;
};

export function decodeRun(run: RunRow): number[] {
  const seqs = JSON.parse(run.seqs) as number[];
  for (let i = 0; i < seqs.length; i++) seqs[i]! += run.first;
  return seqs;
}

/** A run's seqs between lo and hi, from the top; false once one is at or below lo (nothing further down is wanted). */
function* downwards(run: RunRow, lo: number, hi: number): Generator<number, boolean> {
  const seqs = decodeRun(run);
  for (let i = seqs.length - 1; i >= 0; i--) {
    const s = seqs[i]!;
    if (s <= lo) return false;
    if (s < hi) yield s;
  }
  return true;
}

/** The runs' statements over one connection. */
export function archiveRuns(db: Database.Database) {
  const st = {
    lastOf: db.prepare<[number, number], number>('SELECT last FROM archive_runs WHERE owner = ? AND peer = ? ORDER BY last DESC LIMIT 1').pluck(),
    insert: db.prepare<[number, number, number, number, string]>('INSERT INTO archive_runs (owner, peer, last, first, seqs) VALUES (?, ?, ?, ?, ?)'),
    from: db.prepare<[number, number, number], RunRow>('SELECT last, first, seqs FROM archive_runs WHERE owner = ? AND peer = ? AND last >= ? ORDER BY last ASC'),
    deleteFrom: db.prepare<[number, number, number]>('DELETE FROM archive_runs WHERE owner = ? AND peer = ? AND last >= ?'),
    deleteOne: db.prepare<[number, number, number]>('DELETE FROM archive_runs WHERE owner = ? AND peer = ? AND last = ?'),
    // Pages: forward from the run holding the lower bound; backward from the run holding the upper bound.
    up: db.prepare<[number, number, number], RunRow>('SELECT last, first, seqs FROM archive_runs WHERE owner = ? AND peer = ? AND last > ? ORDER BY last ASC'),
    down: db.prepare<[number, number, number], RunRow>('SELECT last, first, seqs FROM archive_runs WHERE owner = ? AND peer = ? AND last < ? ORDER BY last DESC'),
    holding: db.prepare<[number, number, number], RunRow>('SELECT last, first, seqs FROM archive_runs WHERE owner = ? AND peer = ? AND last >= ? ORDER BY last ASC LIMIT 1'),
  };

  // The newest seq of each (owner, peer) this connection added or found, so that a commit does not
  // look it up for every run it writes. Safe when it is above the truth (a removal on this
  // connection, a rolled-back transaction: add() then merges with nothing, the same result);
  // below it only after another connection appended, which PRAGMA data_version tells (begin()).
  const newest = new Map<number, Map<number, number>>();
  const dataVersion = db.prepare<[], number>('PRAGMA data_version').pluck();
  let version: number | undefined;
  const lastOf = (owner: number, peer: number): number | undefined => {
    const known = newest.get(owner)?.get(peer);
    return known ?? st.lastOf.get(owner, peer);
  };
  // Counted in (owner, peer) entries, not owners: one account writing to a million JIDs is a million.
  let remembered = 0;
  const remember = (owner: number, peer: number, last: number): void => {
    if (remembered >= NEWEST_CACHED) { newest.clear(); remembered = 0; }
    let byPeer = newest.get(owner);
    if (byPeer === undefined) newest.set(owner, byPeer = new Map());
    const size = byPeer.size;
    byPeer.set(peer, last);
    remembered += byPeer.size - size;
  };

  const write = (owner: number, peer: number, seqs: readonly number[]): void => {
    for (let i = 0; i < seqs.length; i += RUN_MAX) {
      const part = seqs.slice(i, i + RUN_MAX);
      st.insert.run(owner, peer, part[part.length - 1]!, part[0]!, encodeSeqs(part));
    }
  };

  return {
    /** Before the adds of a transaction: forgets the newest seqs known if another connection has committed since. */
    begin(): void {
      const v = dataVersion.get();
      if (v !== version) { newest.clear(); remembered = 0; }
      version = v;
    },

    /**
     * Adds seqs (ascending, none already held) to (owner, peer). Above everything the runs hold (a
     * commit of the server's: keys only grow), a run of their own; else merged with the runs from
     * the first they would overlap (entries appended out of order, by a tool).
     */
    add(owner: number, peer: number, seqs: readonly number[]): void {
      if (seqs.length === 0) return;
      const last = lastOf(owner, peer);
      const top = seqs[seqs.length - 1]!;
      if (last === undefined || seqs[0]! > last) {
        write(owner, peer, seqs);
        remember(owner, peer, top);
        return;
      }
      const merged = new Set<number>(seqs);
      for (const run of st.from.all(owner, peer, seqs[0]!)) for (const s of decodeRun(run)) merged.add(s);
      st.deleteFrom.run(owner, peer, seqs[0]!);
      const all = [...merged].sort((a, b) => a - b);
      write(owner, peer, all);
      remember(owner, peer, all[all.length - 1]!);
    },

    /** Takes these seqs out of (owner, peer)'s runs (those it holds). */
    remove(owner: number, peer: number, seqs: readonly number[]): void {
      const sorted = [...seqs].sort((a, b) => a - b);
      for (let i = 0; i < sorted.length;) {
        const run = st.holding.get(owner, peer, sorted[i]!);
        if (run === undefined) return;
        const gone = new Set<number>();
        while (i < sorted.length && sorted[i]! <= run.last) gone.add(sorted[i++]!);
        const all = decodeRun(run);
        const kept = all.filter((s) => !gone.has(s));
        if (kept.length === all.length) continue;
        st.deleteOne.run(owner, peer, run.last);
        if (kept.length > 0) write(owner, peer, kept);
      }
    },

    /**
     * The seqs of (owner, peer) strictly between lo and hi, in `direction`, run by run as far as
     * the caller takes them. The connection is busy until the generator is done or closed
     * (better-sqlite3's iterate): take what is needed, then read the rows.
     */
    * seqs(owner: number, peer: number, lo: number, hi: number, direction: 'forward' | 'backward'): Generator<number> {
      if (direction === 'forward') {
        for (const run of st.up.iterate(owner, peer, lo)) {
          if (run.first >= hi) return;
          for (const s of decodeRun(run)) {
            if (s >= hi) return;
            if (s > lo) yield s;
          }
        }
        return;
      }
      // The run holding hi (its seqs below hi), then the runs wholly below it.
      const top = st.holding.get(owner, peer, hi);
      if (top !== undefined && top.first < hi && !(yield* downwards(top, lo, hi))) return;
      for (const run of st.down.iterate(owner, peer, hi)) {
        if (run.last <= lo || !(yield* downwards(run, lo, hi))) return;
      }
    },
  };
}

export type ArchiveRuns = ReturnType<typeof archiveRuns>;

/**
 * Writing the SQLite archive (migrations 11 and 17): one `archive_messages`
 * row per message, with `sides` for the accounts that exist among those whose
 * archives keep it, and per transaction one run per account and
 * correspondent it adds copies to (archive-runs.ts). Records come packed from the server's writer
 * (storage/ports/archive-pack.ts); entries (ArchiveStore.append: tests,
 * tools) are paired into records first: a message's two entries side by
 * side (the recipient's at seq 2 × key, then the sender's at 2 × key + 1,
 * one id, one stanza). Used by the writer thread (archive-worker.ts) and,
 * without a thread, by the store.
 */
import type Database from 'better-sqlite3';
import { LRUCache } from 'lru-cache';
import type { ArchiveEntry } from '../ports/archive.js';
import { RECIPIENT, SENDER, type ArchiveRecord } from '../ports/archive-pack.js';
import { archiveRuns } from './archive-runs.js';

/** Interned bare JIDs a writer keeps in memory at most (the rest are looked up). */
export const JID_CACHE_SIZE = 100_000;

/** The key of the message an entry's seq belongs to (seq − 2 × key: 0 the recipient's copy, 1 the sender's). */
export const keyOfSeq = (seq: number): number => Math.floor(seq / 2);

export interface ArchiveAppender {
  /** Records in one transaction, in order. */
  records(records: Iterable<ArchiveRecord>): void;
  /** Entries in one transaction, in order (ArchiveStore.append). */
  entries(entries: readonly ArchiveEntry[]): void;
}

/**
 * Entries as records: a message's entries side by side make one. Entries without a seq (not
 * numbered by the server) are returned apart, for the older table.
 */
export function recordsOf(entries: readonly ArchiveEntry[]): { records: ArchiveRecord[]; unnumbered: ArchiveEntry[] } {
  const records: ArchiveRecord[] = [];
  const unnumbered: ArchiveEntry[] = [];
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.seq === undefined) { unnumbered.push(e); continue; }
    const key = keyOfSeq(e.seq);
    const own = `${e.username}@${e.host}`;
    const recipientCopy = e.seq === 2 * key;
    let sides = recipientCopy ? RECIPIENT : SENDER;
    const next = entries[i + 1];
    if (next?.seq !== undefined && next.seq !== e.seq && keyOfSeq(next.seq) === key) {
      sides = RECIPIENT | SENDER;
      i++;
    }
    records.push({ key, id: e.id, at: e.at, sender: recipientCopy ? e.with : own, receiver: recipientCopy ? own : e.with, sides, stanza: e.stanza });
  }
  return { records, unnumbered };
}

export function archiveAppender(db: Database.Database): ArchiveAppender {
  const ids = new LRUCache<string, number>({ max: JID_CACHE_SIZE });
  const findJid = db.prepare<[string], number>('SELECT id FROM archive_jids WHERE jid = ?').pluck();
  const addJid = db.prepare<[string]>('INSERT INTO archive_jids (jid) VALUES (?)');
  const account = db.prepare<[string, string], number>('SELECT 1 FROM users WHERE host = ? AND username = ?').pluck();
  // A message's sides arrive in one record; a later one (never from the server) adds its side to the row.
  const insertRow = db.prepare<[number, string, number, number, number, number, string]>(
    'INSERT INTO archive_messages (key, id, at, sender, receiver, sides, stanza) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING');
  const sidesOf = db.prepare<[number], number>('SELECT sides FROM archive_messages WHERE key = ?').pluck();
  const addSides = db.prepare<[number, number]>('UPDATE archive_messages SET sides = sides | ? WHERE key = ?');
  const runs = archiveRuns(db);
  // Entries without a seq go to the older table, after its rows; INSERT … SELECT inserts nothing
  // for an account that does not exist, nor for an id the account has (a batch appended again).
  const legacy = db.prepare<[string, string, number, string, string, string]>(
    `INSERT INTO archive (host, username, id, with_jid, at, stanza)
     SELECT host, username, ?, ?, ?, ? FROM users WHERE host = ? AND username = ?
     ON CONFLICT DO NOTHING`);

  const jidId = (jid: string): number => {
    let id = ids.get(jid);
    if (id === undefined) {
      id = findJid.get(jid) ?? Number(addJid.run(jid).lastInsertRowid);
      ids.set(jid, id);
    }
    return id;
  };
  const insert = (records: Iterable<ArchiveRecord>, unnumbered: readonly ArchiveEntry[]): void => {
    // Accounts checked once per transaction: one deleted since is not written to.
    const exists = new Map<string, boolean>();
    const known = (bare: string): boolean => {
      let ok = exists.get(bare);
      if (ok === undefined) {
        const at = bare.indexOf('@');
        ok = at > 0 && account.get(bare.slice(at + 1), bare.slice(0, at)) !== undefined;
        exists.set(bare, ok);
      }
      return ok;
    };
    for (const e of unnumbered) legacy.run(e.id, e.with, e.at, e.stanza, e.host, e.username);
    runs.begin();
    // The copies this transaction adds, by account and correspondent (0: the account's whole archive): one run each.
    const added = new Map<number, Map<number, number[]>>();
    const push = (byPeer: Map<number, number[]>, peer: number, seq: number): void => {
      const seqs = byPeer.get(peer);
      if (seqs === undefined) byPeer.set(peer, [seq]); else seqs.push(seq);
    };
    const copy = (owner: number, peer: number, seq: number): void => {
      let byPeer = added.get(owner);
      if (byPeer === undefined) added.set(owner, byPeer = new Map());
      push(byPeer, 0, seq);
      push(byPeer, peer, seq);
    };
    for (const r of records) {
      let sides = r.sides;
      if (sides & RECIPIENT && !known(r.receiver)) sides &= ~RECIPIENT;
      if (sides & SENDER && !known(r.sender)) sides &= ~SENDER;
      if (sides === 0) continue;
      const sender = jidId(r.sender);
      const receiver = jidId(r.receiver);
      if (insertRow.run(r.key, r.id, r.at, sender, receiver, sides, r.stanza).changes === 0) {
        // The message is there already (an append tried again): only the sides it lacks are new.
        sides &= ~(sidesOf.get(r.key) ?? 0);
        if (sides === 0) continue;
        addSides.run(sides, r.key);
      }
      if (sides & RECIPIENT) copy(receiver, sender, 2 * r.key);
      if (sides & SENDER) copy(sender, receiver, 2 * r.key + 1);
    }
    for (const [owner, byPeer] of added) {
      for (const [peer, seqs] of byPeer) {
        // In key order as the server appends; entries (tools, tests) may come in any order.
        if (seqs.some((s, i) => i > 0 && s <= seqs[i - 1]!)) seqs.sort((a, b) => a - b);
        runs.add(owner, peer, seqs);
      }
    }
  };
  const tx = db.transaction(insert);
  const run = (records: Iterable<ArchiveRecord>, unnumbered: readonly ArchiveEntry[]): void => {
    try {
      tx.immediate(records, unnumbered);
    } catch (err) {
      // JIDs interned by the rolled-back transaction are not in the file: forget every cached id.
      ids.clear();
      throw err;
    }
  };
  return {
    records: (records) => run(records, []),
    entries: (entries) => {
      const { records, unnumbered } = recordsOf(entries);
      run(records, unnumbered);
    },
  };
}

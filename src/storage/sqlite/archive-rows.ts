/**
 * Writing the SQLite archive (migration 11): one `archive_messages` row per
 * message, whichever of its two accounts keep it. The server hands the store
 * a message's entries side by side (mam/index.ts: the recipient's at
 * seq 2 × key, then the sender's at 2 × key + 1, one id, one stanza); they
 * become one row with `sides` set for each account that exists. Used by the
 * writer thread (archive-worker.ts) and, without a thread, by the store.
 */
import type Database from 'better-sqlite3';
import { LRUCache } from 'lru-cache';
import type { ArchiveEntry } from '../ports/archive.js';

/** Interned bare JIDs a writer keeps in memory at most (the rest are looked up). */
export const JID_CACHE_SIZE = 100_000;

/** The key of the message an entry's seq belongs to (seq − 2 × key: 0 the recipient's copy, 1 the sender's). */
export const keyOfSeq = (seq: number): number => Math.floor(seq / 2);

/** A transaction appending entries (in one call, in order), as ArchiveStore.append describes. */
export function archiveAppender(db: Database.Database): (entries: readonly ArchiveEntry[]) => void {
  const ids = new LRUCache<string, number>({ max: JID_CACHE_SIZE });
  const findJid = db.prepare<[string], number>('SELECT id FROM archive_jids WHERE jid = ?').pluck();
  const addJid = db.prepare<[string]>('INSERT INTO archive_jids (jid) VALUES (?)');
  const account = db.prepare<[string, string], number>('SELECT 1 FROM users WHERE host = ? AND username = ?').pluck();
  // A message's sides arrive in one append; a later one (never from the server) adds its side to the row.
  const upsert = db.prepare<[number, string, number, number, number, number, string]>(
    `INSERT INTO archive_messages (key, id, at, sender, receiver, sides, stanza) VALUES (?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (key) DO UPDATE SET sides = sides | excluded.sides`);
  // Entries without a seq (not numbered by the server: tests, older callers) go to the older table,
  // after its rows; INSERT … SELECT inserts nothing for an account that does not exist.
  const legacy = db.prepare<[string, string, number, string, string, string]>(
    `INSERT INTO archive (host, username, id, with_jid, at, stanza)
     SELECT host, username, ?, ?, ?, ? FROM users WHERE host = ? AND username = ?`);

  const jidId = (jid: string): number => {
    let id = ids.get(jid);
    if (id === undefined) {
      id = findJid.get(jid) ?? Number(addJid.run(jid).lastInsertRowid);
      ids.set(jid, id);
    }
    return id;
  };
  const append = db.transaction((entries: readonly ArchiveEntry[]) => {
    // Accounts checked once per transaction: one deleted since is not written to.
    const exists = new Map<string, boolean>();
    const known = (e: ArchiveEntry): boolean => {
      const bare = `${e.username}@${e.host}`;
      let ok = exists.get(bare);
      if (ok === undefined) {
        ok = account.get(e.host, e.username) !== undefined;
        exists.set(bare, ok);
      }
      return ok;
    };
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.seq === undefined) {
        legacy.run(e.id, e.with, e.at, e.stanza, e.host, e.username);
        continue;
      }
      const key = keyOfSeq(e.seq);
      let sides = known(e) ? 1 << (e.seq - 2 * key) : 0;
      const next = entries[i + 1];
      if (next?.seq !== undefined && next.seq !== e.seq && keyOfSeq(next.seq) === key) {
        if (known(next)) sides |= 1 << (next.seq - 2 * key);
        i++;
      }
      if (sides === 0) continue;
      const own = `${e.username}@${e.host}`;
      const recipientCopy = e.seq === 2 * key;
      upsert.run(key, e.id, e.at, jidId(recipientCopy ? e.with : own), jidId(recipientCopy ? own : e.with), sides, e.stanza);
    }
  });
  return (entries) => {
    try {
      append.immediate(entries);
    } catch (err) {
      // JIDs interned by the rolled-back transaction are not in the file: forget every cached id.
      ids.clear();
      throw err;
    }
  };
}

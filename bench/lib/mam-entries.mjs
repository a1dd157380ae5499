// Archive entries as the server writes them (issue 16), for the SQLite writer benchmarks (mam-append.mjs,
// mam-commit.mjs): `n` entries, two per message (the recipient's at seq 2 × key, the sender's at + 1), message m
// from account u(m+1) to u(m) over `users` accounts, eight messages per millisecond. `stanzaOf(m, to, from, at)` is
// the stored text.
import { archiveIdFor, KEYS_PER_MS } from '../../dist/storage/ports/archive-ids.js';

export function archiveEntries(n, users, stanzaOf, pairs = 0) {
  const out = [];
  const t0 = Date.now();
  for (let m = 0; out.length < n; m++) {
    const at = t0 + Math.floor(m / 8);
    const key = at * KEYS_PER_MS + (m % 8);
    const id = archiveIdFor(key);
    // pairs > 0: `pairs` fixed conversations taking turns (as the throughput benchmark's), each way in turn.
    const p = m % pairs, flip = Math.floor(m / pairs) % 2;
    const [to, from] = pairs > 0 ? [`u${2 * p + flip}`, `u${2 * p + 1 - flip}`] : [`u${m % users}`, `u${(m + 1) % users}`];
    const stanza = stanzaOf(m, to, from, at);
    out.push({ host: 'localhost', username: to, id, seq: 2 * key, with: `${from}@localhost`, at, stanza });
    out.push({ host: 'localhost', username: from, id, seq: 2 * key + 1, with: `${to}@localhost`, at, stanza });
  }
  return out;
}

/**
 * How the writer stored an entry before migration 11 (kept for the comparisons): one row of `archive` per
 * entry, INSERT … SELECT so that an entry for an account that does not exist inserts nothing.
 */
export const ROW_PER_ENTRY_INSERT = `INSERT INTO archive (seq, host, username, id, with_jid, at, stanza)
  SELECT ?, host, username, ?, ?, ?, ? FROM users WHERE host = ? AND username = ?`;
export const rowPerEntryParams = (e) => [e.seq ?? null, e.id, e.with, e.at, e.stanza, e.host, e.username];

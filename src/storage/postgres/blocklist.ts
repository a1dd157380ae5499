/** BlocklistStore (XEP-0191) over a node-postgres pool: each change is one statement, so all or none. */
import type { Pool } from 'pg';
import type { BlocklistStore } from '../ports/blocklist.js';
import type { AccountReader } from './account-read.js';

export function createPgBlocklistStore(pool: Pool, reader: AccountReader): BlocklistStore {
  return {
    // Every login loads it, in one statement with the roster (account-read.ts).
    list: (host, username) => reader.blocklist(host, username),
    async add(host, username, jids) {
      // DO NOTHING also absorbs a JID given twice in one command.
      await pool.query('INSERT INTO blocklist (host, username, jid) SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING', [host, username, jids]);
    },
    async remove(host, username, jids) {
      await pool.query('DELETE FROM blocklist WHERE host = $1 AND username = $2 AND jid = ANY($3::text[])', [host, username, jids]);
    },
    async clear(host, username) {
      await pool.query('DELETE FROM blocklist WHERE host = $1 AND username = $2', [host, username]);
    },
  };
}

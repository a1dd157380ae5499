/** BlocklistStore (XEP-0191) over a node-postgres pool: each change is one statement, so all or none. */
import type { Pool } from 'pg';
import type { BlocklistStore } from '../ports/blocklist.js';

export function createPgBlocklistStore(pool: Pool): BlocklistStore {
  return {
    async list(host, username) {
      // Named (prepared once per connection): every login loads the blocklist.
      const { rows } = await pool.query<{ jid: string }>({ name: 'blocklist-list', text: 'SELECT jid FROM blocklist WHERE host = $1 AND username = $2 ORDER BY jid', values: [host, username] });
      return rows.map((r) => r.jid);
    },
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

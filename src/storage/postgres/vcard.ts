/** VcardStore (XEP-0054) over a node-postgres pool. */
import type { Pool } from 'pg';
import type { VcardStore } from '../ports/vcard.js';
import type { Clock } from '../types.js';

export function createPgVcardStore(pool: Pool, now: Clock): VcardStore {
  return {
    async get(host, username) {
      const { rows } = await pool.query<{ vcard: string }>('SELECT vcard FROM vcards WHERE host = $1 AND username = $2', [host, username]);
      return rows[0]?.vcard;
    },
    async set(host, username, vcard) {
      await pool.query(`INSERT INTO vcards (host, username, vcard, updated_at) VALUES ($1, $2, $3, $4)
        ON CONFLICT (host, username) DO UPDATE SET vcard = excluded.vcard, updated_at = excluded.updated_at`, [host, username, vcard, now()]);
    },
    async delete(host, username) {
      await pool.query('DELETE FROM vcards WHERE host = $1 AND username = $2', [host, username]);
    },
  };
}

/** SmStateStore (XEP-0198 stale h) over a node-postgres pool. */
import type { Pool } from 'pg';
import type { SmStateStore } from '../ports/sm-state.js';
import { toNumber } from './tx.js';

export function createPgSmStateStore(pool: Pool): SmStateStore {
  return {
    async setStaleH(smid, h, storedAt) {
      await pool.query('INSERT INTO stale_h (smid, h, stored_at) VALUES ($1, $2, $3) ON CONFLICT (smid) DO UPDATE SET h = excluded.h, stored_at = excluded.stored_at',
        [smid, h, storedAt]);
    },
    async getStaleH(smid) {
      const { rows } = await pool.query<{ h: string }>('SELECT h FROM stale_h WHERE smid = $1', [smid]);
      return rows[0] && toNumber(rows[0].h);
    },
    async collectStaleH(cutoff) {
      // The stored_at index makes this a range delete, however many records are young.
      return (await pool.query('DELETE FROM stale_h WHERE stored_at <= $1', [cutoff])).rowCount ?? 0;
    },
  };
}

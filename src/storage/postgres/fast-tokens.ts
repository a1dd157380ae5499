/** FastTokenStore (XEP-0484) over a node-postgres pool, as the SQLite one. */
import type { Pool } from 'pg';
import type { FastSlot, FastToken, FastTokenStore } from '../ports/fast-tokens.js';
import { inTransaction, lockAccount, toNumber } from './tx.js';

interface Row {
  host: string; username: string; agent: string; slot: FastSlot; mechanism: string; stored_key: string; server_key: string; expires_at: string;
}

const fromRow = (r: Row): FastToken => ({
  host: r.host, username: r.username, agent: r.agent, slot: r.slot, mechanism: r.mechanism, storedKey: r.stored_key, serverKey: r.server_key, expiresAt: toNumber(r.expires_at),
});

const FIND = 'SELECT * FROM fast_tokens WHERE host = $1 AND username = $2 AND stored_key = $3';

// Each multi-statement step locks the account first (lockAccount; issue more strongly): the account's deletion cascades into these rows.
export function createPgFastTokenStore(pool: Pool): FastTokenStore {
  return {
    issue: (t, maxAgents) => inTransaction(pool, async (client) => {
      // The account's row locked against other issues (not against readers, nor the foreign key checks
      // of other writers): two processes issuing at once would each drop the agents past maxAgents
      // seeing only its own new row, and keep more agents than the bound between them.
      await client.query('SELECT 1 FROM users WHERE host = $1 AND username = $2 FOR NO KEY UPDATE', [t.host, t.username]);
      await client.query(`INSERT INTO fast_tokens (host, username, agent, slot, mechanism, stored_key, server_key, expires_at)
        VALUES ($1, $2, $3, 'new', $4, $5, $6, $7)
        ON CONFLICT (host, username, agent, slot) DO UPDATE SET mechanism = excluded.mechanism, stored_key = excluded.stored_key,
          server_key = excluded.server_key, expires_at = excluded.expires_at`,
      [t.host, t.username, t.agent, t.mechanism, t.storedKey, t.serverKey, t.expiresAt]);
      // The agents past maxAgents, those whose latest expiry comes first; on a tie the agent just issued to
      // stays, then by agent id (COLLATE "C": code point order), so every backend drops the same.
      await client.query(`DELETE FROM fast_tokens WHERE host = $1 AND username = $2 AND agent IN (
        SELECT agent FROM fast_tokens WHERE host = $1 AND username = $2 GROUP BY agent
        ORDER BY MAX(expires_at) DESC, agent = $4 DESC, agent OFFSET $3)`,
      [t.host, t.username, maxAgents, t.agent]);
    }),
    async find(host, username, storedKey) {
      const { rows } = await pool.query<Row>(FIND, [host, username, storedKey]);
      return rows[0] && fromRow(rows[0]);
    },
    used: (host, username, agent, storedKey) => inTransaction(pool, async (client) => {
      await lockAccount(client, host, username);
      const { rows } = await client.query<Row>(`${FIND} FOR UPDATE`, [host, username, storedKey]);
      if (rows[0]?.slot !== 'new' || rows[0].agent !== agent) return;
      const args = [host, username, agent];
      await client.query("DELETE FROM fast_tokens WHERE host = $1 AND username = $2 AND agent = $3 AND slot = 'retired'", args);
      await client.query("UPDATE fast_tokens SET slot = 'retired' WHERE host = $1 AND username = $2 AND agent = $3 AND slot = 'current'", args);
      await client.query("UPDATE fast_tokens SET slot = 'current' WHERE host = $1 AND username = $2 AND agent = $3 AND slot = 'new'", args);
    }),
    retire: (host, username, storedKey) => inTransaction(pool, async (client) => {
      await lockAccount(client, host, username);
      const { rows } = await client.query<Row>(`${FIND} FOR UPDATE`, [host, username, storedKey]);
      if (!rows[0]) return;
      // One 'retired' slot per agent: an older retired token of the same agent makes room.
      await client.query("DELETE FROM fast_tokens WHERE host = $1 AND username = $2 AND agent = $3 AND slot = 'retired' AND stored_key <> $4",
        [host, username, rows[0].agent, storedKey]);
      await client.query("UPDATE fast_tokens SET slot = 'retired' WHERE host = $1 AND username = $2 AND stored_key = $3", [host, username, storedKey]);
    }),
    async revoke(host, username) {
      await pool.query('DELETE FROM fast_tokens WHERE host = $1 AND username = $2', [host, username]);
    },
    async expire(now) {
      const { rowCount } = await pool.query('DELETE FROM fast_tokens WHERE expires_at <= $1', [now]);
      return rowCount ?? 0;
    },
  };
}

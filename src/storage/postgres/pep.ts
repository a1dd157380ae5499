/** PepStore (XEP-0163) over a node-postgres pool. */
import type { Pool } from 'pg';
import type { PepItem, PepNodeConfig, PepStore } from '../ports/pep.js';
import { inTransaction } from './tx.js';

const KEY = 'host = $1 AND username = $2 AND node = $3';
// The newest $4 stay: seq grows with every insert.
const TRIM = `DELETE FROM pep_items WHERE ${KEY} AND seq NOT IN (SELECT seq FROM pep_items WHERE ${KEY} ORDER BY seq DESC LIMIT $4)`;

export function createPgPepStore(pool: Pool): PepStore {
  const toItem = (r: { item_id: string; payload: string }): PepItem => ({ id: r.item_id, payload: r.payload });
  return {
    async nodes(host, username) {
      const { rows } = await pool.query<{ node: string; config: PepNodeConfig }>(
        'SELECT node, config FROM pep_nodes WHERE host = $1 AND username = $2 ORDER BY node', [host, username]);
      return rows.map((r) => ({ node: r.node, config: r.config }));
    },
    async node(host, username, node) {
      const { rows } = await pool.query<{ config: PepNodeConfig }>(`SELECT config FROM pep_nodes WHERE ${KEY}`, [host, username, node]);
      return rows[0]?.config;
    },
    async configure(host, username, node, config) {
      await inTransaction(pool, async (c) => {
        await c.query(`INSERT INTO pep_nodes (host, username, node, config) VALUES ($1, $2, $3, $4)
          ON CONFLICT (host, username, node) DO UPDATE SET config = excluded.config`, [host, username, node, JSON.stringify(config)]);
        await c.query(TRIM, [host, username, node, config.maxItems]);
      });
    },
    async deleteNode(host, username, node) {
      return ((await pool.query(`DELETE FROM pep_nodes WHERE ${KEY}`, [host, username, node])).rowCount ?? 0) > 0;
    },
    async publish(host, username, node, item, maxItems) {
      await inTransaction(pool, async (c) => {
        // The node's row is locked, so concurrent publishes to it trim in turn.
        const { rowCount } = await c.query(`SELECT 1 FROM pep_nodes WHERE ${KEY} FOR UPDATE`, [host, username, node]);
        if (!rowCount) return;
        await c.query(`DELETE FROM pep_items WHERE ${KEY} AND item_id = $4`, [host, username, node, item.id]);
        await c.query('INSERT INTO pep_items (host, username, node, item_id, payload) VALUES ($1, $2, $3, $4, $5)',
          [host, username, node, item.id, item.payload]);
        await c.query(TRIM, [host, username, node, maxItems]);
      });
    },
    async items(host, username, node, query = {}) {
      // The ids select (XEP-0060 §6.5.8), then max keeps the newest of them (§6.5.7).
      const params: unknown[] = [host, username, node];
      let where = KEY;
      if (query.ids) where += ` AND item_id = ANY($${params.push([...query.ids])})`;
      const { rows } = query.max === undefined
        ? await pool.query<{ item_id: string; payload: string }>(`SELECT item_id, payload FROM pep_items WHERE ${where} ORDER BY seq`, params)
        : await pool.query<{ item_id: string; payload: string }>(`SELECT item_id, payload FROM (SELECT seq, item_id, payload FROM pep_items
            WHERE ${where} ORDER BY seq DESC LIMIT $${params.push(query.max)}) newest ORDER BY seq`, params);
      return rows.map(toItem);
    },
    async retract(host, username, node, id) {
      return ((await pool.query(`DELETE FROM pep_items WHERE ${KEY} AND item_id = $4`, [host, username, node, id])).rowCount ?? 0) > 0;
    },
    async purgeNode(host, username, node) {
      await pool.query(`DELETE FROM pep_items WHERE ${KEY}`, [host, username, node]);
    },
  };
}

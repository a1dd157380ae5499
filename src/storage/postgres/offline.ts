/**
 * OfflineStore over a node-postgres pool. Each account's usage lives in
 * offline_counters, kept by triggers on offline_messages (migration 3), so
 * any INSERT or DELETE, the account's cascade included, keeps it right.
 */
import type { Pool, PoolClient } from 'pg';
import { fits, NO_USAGE, stanzaBytes, toQuota } from '../offline-quota.js';
import type { OfflineMessage, OfflineQuota, OfflineStore, OfflineUsage } from '../ports/offline.js';
import type { Clock } from '../types.js';
import { inTransaction, lockAccount, toNumber } from './tx.js';

interface OfflineRow {
  id: string;
  stanza: string;
  stored_at: string;
}

type UsageRow = { messages: string; bytes: string };

const asUsage = (row: UsageRow | undefined): OfflineUsage =>
  row ? { messages: toNumber(row.messages), bytes: toNumber(row.bytes) } : NO_USAGE;

/**
 * The check and the insert in one transaction, with the account's counter
 * row locked first (created at zero if missing; the no-op DO UPDATE takes
 * the row lock and returns it), so concurrent pushes from any number of
 * processes queue on that row and none can take a place another has taken.
 * Before it, the account's users row is share-locked (lockAccount), which
 * the message's foreign key check would do after the counter was locked.
 */
async function pushChecked(client: PoolClient, host: string, username: string, stanza: string, quota: OfflineQuota, at: number): Promise<boolean> {
  await lockAccount(client, host, username);
  const { rows } = await client.query<UsageRow>(`INSERT INTO offline_counters (host, username, messages, bytes) VALUES ($1, $2, 0, 0)
    ON CONFLICT (host, username) DO UPDATE SET messages = offline_counters.messages RETURNING messages, bytes`, [host, username]);
  if (!fits(asUsage(rows[0]), stanzaBytes(stanza), quota)) return false;
  await client.query('INSERT INTO offline_messages (host, username, stanza, stored_at) VALUES ($1, $2, $3, $4)', [host, username, stanza, at]);
  return true;
}

export function createPgOfflineStore(pool: Pool, now: Clock): OfflineStore {
  const usageOf = async (host: string, username: string): Promise<OfflineUsage> =>
    asUsage((await pool.query<UsageRow>('SELECT messages, bytes FROM offline_counters WHERE host = $1 AND username = $2', [host, username])).rows[0]);

  return {
    push: (host, username, stanza, quota) => inTransaction(pool, (c) => pushChecked(c, host, username, stanza, toQuota(quota), now())),
    async list(host, username, page = {}): Promise<OfflineMessage[]> {
      // LIMIT NULL is no limit; the (host, username, id) index makes `id > $3` a range scan.
      const { rows } = await pool.query<OfflineRow>('SELECT id, stanza, stored_at FROM offline_messages WHERE host = $1 AND username = $2 AND id > $3 AND ($5::bigint IS NULL OR stored_at = $5) ORDER BY id LIMIT $4',
        [host, username, page.afterId ?? 0, page.limit ?? null, page.storedAt ?? null]);
      return rows.map((r) => ({ id: toNumber(r.id), stanza: r.stanza, storedAt: toNumber(r.stored_at) }));
    },
    async remove(host, username, ids) {
      if (ids.length > 0) await pool.query('DELETE FROM offline_messages WHERE host = $1 AND username = $2 AND id = ANY($3::bigint[])', [host, username, ids]);
    },
    count: async (host, username) => (await usageOf(host, username)).messages,
    usage: usageOf,
  };
}

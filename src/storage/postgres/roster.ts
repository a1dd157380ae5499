/** RosterStore over a node-postgres pool. */
import type { Pool, PoolClient } from 'pg';
import type { RosterItem, RosterStore, RosterSubscription } from '../ports/roster.js';
import { inTransaction, lockAccount } from './tx.js';
import type { AccountReader, ItemRow } from './account-read.js';

const SUBSCRIPTIONS: ReadonlySet<string> = new Set<RosterSubscription>(['none', 'to', 'from', 'both']);

export function decodeRosterItem(row: ItemRow): RosterItem {
  if (!SUBSCRIPTIONS.has(row.subscription)) throw new Error(`stored subscription of roster item '${row.jid}' is malformed`);
  const groups = row.groups;
  if (!Array.isArray(groups) || !groups.every((g) => typeof g === 'string')) {
    throw new Error(`stored groups of roster item '${row.jid}' are malformed`);
  }
  return { jid: row.jid, name: row.name ?? undefined, subscription: row.subscription as RosterSubscription, ask: row.ask, approved: row.approved, groups };
}

async function setVersion(client: PoolClient, host: string, username: string, version: number): Promise<void> {
  await client.query(
    'INSERT INTO roster_versions (host, username, version) VALUES ($1, $2, $3) ON CONFLICT (host, username) DO UPDATE SET version = excluded.version',
    [host, username, version]);
}

const PUT_ITEM = `
  INSERT INTO roster_items (host, username, jid, name, subscription, ask, approved, groups) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
  ON CONFLICT (host, username, jid) DO UPDATE SET
    name = excluded.name, subscription = excluded.subscription, ask = excluded.ask, approved = excluded.approved, groups = excluded.groups`;

/**
 * The whole roster is read in one statement with the blocklist
 * (account-read.ts): a login loads both, and on PostgreSQL each statement
 * is a network round trip (BEGIN, three SELECTs and COMMIT were five per
 * login). One statement reads one snapshot even in READ COMMITTED, so the
 * version still always matches the items read with it.
 */
export function createPgRosterStore(pool: Pool, reader: AccountReader): RosterStore {
  return {
    load: (host, username) => reader.roster(host, username),
    // The item and the roster version change together or not at all; the account first (lockAccount).
    putItem: (host, username, item: RosterItem, version) => inTransaction(pool, async (c) => {
      await lockAccount(c, host, username);
      await c.query(PUT_ITEM, [host, username, item.jid, item.name ?? null, item.subscription, item.ask, item.approved, JSON.stringify(item.groups)]);
      await setVersion(c, host, username, version);
    }),
    removeItem: (host, username, jid, version) => inTransaction(pool, async (c) => {
      await lockAccount(c, host, username);
      await c.query('DELETE FROM roster_items WHERE host = $1 AND username = $2 AND jid = $3', [host, username, jid]);
      await setVersion(c, host, username, version);
    }),
    async putPending(host, username, pending) {
      await pool.query(
        'INSERT INTO roster_pending (host, username, jid, stanza) VALUES ($1, $2, $3, $4) ON CONFLICT (host, username, jid) DO UPDATE SET stanza = excluded.stanza',
        [host, username, pending.jid, pending.stanza]);
    },
    async removePending(host, username, jid) {
      await pool.query('DELETE FROM roster_pending WHERE host = $1 AND username = $2 AND jid = $3', [host, username, jid]);
    },
  };
}

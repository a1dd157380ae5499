/** UserStore and its change log over a node-postgres pool. */
import type { Pool } from 'pg';
import { userRecord } from '../credentials.js';
import {
  UserExistsError, UserNotFoundError,
  type AccountChange, type NewUser, type StoredCredentials, type UserKey, type UserRecord, type UserStore,
} from '../ports/accounts.js';
import type { Clock } from '../types.js';
import { inTransaction, toNumber } from './tx.js';

interface UserRow {
  host: string;
  username: string;
  credentials: unknown;
  created_at: string;
  credentials_changed_at: string;
}

// JSONB comes back parsed.
const decode = (row: UserRow): UserRecord =>
  userRecord(row.host, row.username, row.credentials, toNumber(row.created_at), toNumber(row.credentials_changed_at));

const encode = (c: StoredCredentials): string => JSON.stringify(c);

// The log is only for live watchers: an hour is ample, and keeps it small.
const CHANGE_LOG_MS = 3_600_000;
const PAGE = 1000;

// ON CONFLICT DO NOTHING + rowCount 0 tells "exists" apart without parsing error codes.
async function insertAll(client: Pick<Pool, 'query'>, batch: readonly NewUser[], createdAt: number): Promise<void> {
  for (const u of batch) {
    const { rowCount } = await client.query(
      'INSERT INTO users (host, username, credentials, created_at, credentials_changed_at) VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING',
      [u.host, u.username, encode(u.credentials), createdAt]);
    if (rowCount === 0) throw new UserExistsError(u.host, u.username);
  }
}

async function changesSince(pool: Pool, now: Clock, cursor: number | undefined): Promise<{ cursor: number; changes: AccountChange[] }> {
  if (cursor === undefined) {
    await pool.query('DELETE FROM account_changes WHERE at < $1', [now() - CHANGE_LOG_MS]);
    const { rows } = await pool.query<{ id: string | null }>('SELECT MAX(id) AS id FROM account_changes');
    return { cursor: toNumber(rows[0]?.id ?? 0), changes: [] };
  }
  const { rows } = await pool.query<AccountChange & { id: string }>(
    'SELECT id, host, username, change FROM account_changes WHERE id > $1 ORDER BY id LIMIT $2', [cursor, PAGE]);
  const last = rows.at(-1);
  return { cursor: last ? toNumber(last.id) : cursor, changes: rows.map(({ host, username, change }) => ({ host, username, change })) };
}

export function createPgUserStore(pool: Pool, now: Clock): UserStore {
  return {
    async get(host, username) {
      // Named (prepared once per connection): every login reads its credentials.
      const { rows } = await pool.query<UserRow>({ name: 'users-get', text: 'SELECT host, username, credentials, created_at, credentials_changed_at FROM users WHERE host = $1 AND username = $2', values: [host, username] });
      return rows[0] && decode(rows[0]);
    },
    async create(host, username, credentials) {
      await insertAll(pool, [{ host, username, credentials }], now());
    },
    async setCredentials(host, username, credentials) {
      const { rowCount } = await pool.query('UPDATE users SET credentials = $1, credentials_changed_at = $2 WHERE host = $3 AND username = $4', [encode(credentials), now(), host, username]);
      if (rowCount === 0) throw new UserNotFoundError(host, username);
    },
    async delete(host, username) {
      const { rowCount } = await pool.query('DELETE FROM users WHERE host = $1 AND username = $2', [host, username]);
      if (rowCount === 0) throw new UserNotFoundError(host, username);
    },
    async list(host?: string): Promise<UserKey[]> {
      const { rows } = host === undefined
        ? await pool.query<UserKey>('SELECT host, username FROM users ORDER BY host, username')
        : await pool.query<UserKey>('SELECT host, username FROM users WHERE host = $1 ORDER BY username', [host]);
      return rows;
    },
    async createMany(batch) {
      // Throwing inside the transaction rolls the whole batch back.
      if (batch.length > 0) await inTransaction(pool, (client) => insertAll(client, batch, now()));
    },
    changesSince: (cursor) => changesSince(pool, now, cursor),
  };
}

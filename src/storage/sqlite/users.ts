/** UserStore over one better-sqlite3 connection; statements are prepared once. */
import type Database from 'better-sqlite3';
import { userRecord } from '../credentials.js';
import {
  UserExistsError, UserNotFoundError,
  type AccountChange, type NewUser, type StoredCredentials, type UserKey, type UserRecord, type UserStore,
} from '../ports/accounts.js';
import type { Clock } from '../types.js';

interface UserRow {
  host: string;
  username: string;
  credentials: string;
  created_at: number;
  credentials_changed_at: number;
}

const decode = (row: UserRow): UserRecord =>
  userRecord(row.host, row.username, JSON.parse(row.credentials), row.created_at, row.credentials_changed_at);

const encode = (c: StoredCredentials): string => JSON.stringify(c);

const CHANGE_LOG_MS = 3_600_000;

function prepareStatements(db: Database.Database) {
  return {
    get: db.prepare<[string, string], UserRow>('SELECT host, username, credentials, created_at, credentials_changed_at FROM users WHERE host = ? AND username = ?'),
    // ON CONFLICT DO NOTHING + changes === 0 tells "exists" apart without parsing error codes.
    insert: db.prepare<[string, string, string, number, number]>('INSERT INTO users (host, username, credentials, created_at, credentials_changed_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING'),
    update: db.prepare<[string, number, string, string]>('UPDATE users SET credentials = ?, credentials_changed_at = ? WHERE host = ? AND username = ?'),
    remove: db.prepare<[string, string]>('DELETE FROM users WHERE host = ? AND username = ?'),
    listAll: db.prepare<[], UserKey>('SELECT host, username FROM users ORDER BY host, username'),
    listHost: db.prepare<[string], UserKey>('SELECT host, username FROM users WHERE host = ? ORDER BY username'),
    lastChange: db.prepare<[], { id: number | null }>('SELECT MAX(id) AS id FROM account_changes'),
    changes: db.prepare<[number], AccountChange & { id: number }>('SELECT id, host, username, change FROM account_changes WHERE id > ? ORDER BY id LIMIT 1000'),
    // The log is only for live watchers: an hour is ample, and keeps it small.
    prune: db.prepare<[number]>('DELETE FROM account_changes WHERE at < ?'),
  };
}

export function createSqliteUserStore(db: Database.Database, now: Clock): UserStore {
  const st = prepareStatements(db);

  // Throwing inside db.transaction rolls the whole batch back.
  const insertAll = db.transaction((batch: readonly NewUser[], createdAt: number) => {
    for (const u of batch) {
      if (st.insert.run(u.host, u.username, encode(u.credentials), createdAt, createdAt).changes === 0) {
        throw new UserExistsError(u.host, u.username);
      }
    }
  });

  return {
    async get(host, username) {
      const row = st.get.get(host, username);
      return row && decode(row);
    },
    async create(host, username, credentials) {
      insertAll([{ host, username, credentials }], now());
    },
    async setCredentials(host, username, credentials) {
      if (st.update.run(encode(credentials), now(), host, username).changes === 0) throw new UserNotFoundError(host, username);
    },
    async delete(host, username) {
      if (st.remove.run(host, username).changes === 0) throw new UserNotFoundError(host, username);
    },
    async list(host?: string) {
      return host === undefined ? st.listAll.all() : st.listHost.all(host);
    },
    async createMany(batch) {
      insertAll(batch, now());
    },
    async changesSince(cursor) {
      if (cursor === undefined) {
        st.prune.run(now() - CHANGE_LOG_MS);
        return { cursor: st.lastChange.get()?.id ?? 0, changes: [] };
      }
      const rows = st.changes.all(cursor);
      return { cursor: rows.at(-1)?.id ?? cursor, changes: rows.map(({ host, username, change }) => ({ host, username, change })) };
    },
  };
}

/** In-memory UserStore with the same observable behaviour as the SQLite one. */
import { copyCredentials } from '../credentials.js';
import { compareUserKeys } from '../order.js';
import {
  UserExistsError, UserNotFoundError,
  type AccountChange, type NewUser, type UserKey, type UserRecord, type UserStore,
} from '../ports/accounts.js';
import type { Clock } from '../types.js';
import { keyOf } from './key.js';

function copyRecord(r: UserRecord): UserRecord {
  return { ...r, credentials: copyCredentials(r.credentials) };
}

export function createMemoryUserStore(
  now: Clock,
  onDelete: (host: string, username: string) => void = () => {},
  onCredentials: (host: string, username: string) => void = () => {},
  onCreate: (host: string, username: string) => void = () => {},
): UserStore {
  const users = new Map<string, UserRecord>();

  // The last changes, for watchers in this process (the SQLite store keeps an hour of them).
  const changeLog = { entries: [] as AccountChange[], next: 0 };
  const record = (change: AccountChange): void => {
    changeLog.entries.push(change);
    changeLog.next++;
    if (changeLog.entries.length > 1000) changeLog.entries.shift();
  };
  const requireExisting = (host: string, username: string): UserRecord => {
    const record = users.get(keyOf(host, username));
    if (!record) throw new UserNotFoundError(host, username);
    return record;
  };

  // Everything is checked before the map is touched: that makes it all-or-nothing.
  const createMany = async (batch: readonly NewUser[]): Promise<void> => {
    const seen = new Set<string>();
    for (const u of batch) {
      const key = keyOf(u.host, u.username);
      if (users.has(key) || seen.has(key)) throw new UserExistsError(u.host, u.username);
      seen.add(key);
    }
    const createdAt = now();
    for (const u of batch) {
      users.set(keyOf(u.host, u.username), {
        host: u.host, username: u.username, credentials: copyCredentials(u.credentials), createdAt, credentialsChangedAt: createdAt,
      });
      onCreate(u.host, u.username);
    }
  };

  return {
    async get(host, username) {
      const record = users.get(keyOf(host, username));
      return record && copyRecord(record);
    },
    async create(host, username, credentials) {
      await createMany([{ host, username, credentials }]);
    },
    async setCredentials(host, username, credentials) {
      const user = requireExisting(host, username);
      user.credentials = copyCredentials(credentials);
      user.credentialsChangedAt = now();
      onCredentials(host, username);
      record({ host, username, change: 'credentials' });
    },
    async delete(host, username) {
      requireExisting(host, username);
      users.delete(keyOf(host, username));
      onDelete(host, username);
      record({ host, username, change: 'deleted' });
    },
    async changesSince(cursor) {
      if (cursor === undefined) return { cursor: changeLog.next, changes: [] };
      const first = changeLog.next - changeLog.entries.length;
      return { cursor: changeLog.next, changes: changeLog.entries.slice(Math.max(0, cursor - first)) };
    },
    async list(host?: string): Promise<UserKey[]> {
      return [...users.values()]
        .filter((r) => host === undefined || r.host === host)
        .map((r) => ({ host: r.host, username: r.username }))
        .sort(compareUserKeys);
    },
    createMany,
  };
}

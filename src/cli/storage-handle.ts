/**
 * Opens the storage on first use and closes it once at the end, so a command
 * that fails validation never creates the data directory or database file,
 * nor connects to PostgreSQL.
 */
import type { Storage, UserStore } from '../storage/index.js';

export interface StorageHandle {
  users(): Promise<UserStore>;
  close(): Promise<void>;
}

export function lazyStorage(open: () => Storage | Promise<Storage>): StorageHandle {
  let storage: Promise<Storage> | undefined;
  return {
    async users() {
      storage ??= Promise.resolve(open());
      return (await storage).users;
    },
    async close() {
      const opened = storage;
      storage = undefined;
      // One that failed to open has nothing to close; its error was reported by users().
      await opened?.then((s) => s.close(), () => undefined);
    },
  };
}

/**
 * Opens the storage on first use and closes it once at the end, so a command
 * that fails validation never creates the data directory or database file.
 */
import type { Storage, UserStore } from '../storage/index.js';

export interface StorageHandle {
  users(): UserStore;
  close(): Promise<void>;
}

export function lazyStorage(open: () => Storage): StorageHandle {
  let storage: Storage | undefined;
  return {
    users() {
      storage ??= open();
      return storage.users;
    },
    async close() {
      await storage?.close();
      storage = undefined;
    },
  };
}

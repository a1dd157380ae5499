/** In-memory BlocklistStore (XEP-0191) with the same observable behaviour as the SQLite one. */
import { compareCodePoints } from '../order.js';
import type { BlocklistStore } from '../ports/blocklist.js';
import { keyOf, type Purgeable } from './key.js';

export function createMemoryBlocklistStore(): BlocklistStore & Purgeable {
  const lists = new Map<string, Set<string>>();
  return {
    async list(host, username) {
      return [...(lists.get(keyOf(host, username)) ?? [])].sort(compareCodePoints);
    },
    async add(host, username, jids) {
      const key = keyOf(host, username);
      const set = lists.get(key) ?? new Set<string>();
      for (const j of jids) set.add(j);
      lists.set(key, set);
    },
    async remove(host, username, jids) {
      const set = lists.get(keyOf(host, username));
      if (!set) return;
      for (const j of jids) set.delete(j);
      if (set.size === 0) lists.delete(keyOf(host, username));
    },
    async clear(host, username) {
      lists.delete(keyOf(host, username));
    },
    purge(host, username) {
      lists.delete(keyOf(host, username));
    },
  };
}

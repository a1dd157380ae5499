/**
 * In-memory OfflineStore and VcardStore, with the same observable behaviour
 * as the SQLite ones (memory.ts wires `purge` to UserStore.delete, which is
 * SQLite's ON DELETE CASCADE).
 */
import type { Clock, OfflineMessage, OfflineStore, VcardStore } from './types.js';

// NUL cannot occur in a JID, so it cannot make two different keys collide.
const keyOf = (host: string, username: string): string => `${host}\0${username}`;

/** Forgets everything held for an account (its deletion). */
export interface Purgeable {
  purge(host: string, username: string): void;
}

/** Index of the first message with an id above `afterId` (ids ascend, so a binary search). */
function firstAfter(queue: readonly OfflineMessage[], afterId: number): number {
  let lo = 0;
  let hi = queue.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (queue[mid]!.id <= afterId) lo = mid + 1; else hi = mid;
  }
  return lo;
}

export function createMemoryOfflineStore(now: Clock): OfflineStore & Purgeable {
  const queues = new Map<string, OfflineMessage[]>();
  let lastId = 0;
  return {
    async push(host, username, stanza, max) {
      const key = keyOf(host, username);
      const queue = queues.get(key) ?? [];
      if (queue.length >= max) return false;
      queue.push({ id: ++lastId, stanza, storedAt: now() });
      queues.set(key, queue);
      return true;
    },
    async list(host, username, page = {}) {
      const queue = queues.get(keyOf(host, username)) ?? [];
      const from = firstAfter(queue, page.afterId ?? 0);
      return queue.slice(from, page.limit === undefined ? undefined : from + page.limit);
    },
    async remove(host, username, ids) {
      const key = keyOf(host, username);
      const gone = new Set(ids);
      const left = (queues.get(key) ?? []).filter((m) => !gone.has(m.id));
      if (left.length === 0) queues.delete(key); else queues.set(key, left);
    },
    async count(host, username) {
      return queues.get(keyOf(host, username))?.length ?? 0;
    },
    purge(host, username) {
      queues.delete(keyOf(host, username));
    },
  };
}

export function createMemoryVcardStore(): VcardStore & Purgeable {
  const vcards = new Map<string, string>();
  return {
    async get(host, username) {
      return vcards.get(keyOf(host, username));
    },
    async set(host, username, vcard) {
      vcards.set(keyOf(host, username), vcard);
    },
    async delete(host, username) {
      vcards.delete(keyOf(host, username));
    },
    purge(host, username) {
      vcards.delete(keyOf(host, username));
    },
  };
}

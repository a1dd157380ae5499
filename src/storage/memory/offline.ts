/**
 * In-memory OfflineStore with the same observable behaviour as the SQLite
 * one (its `purge` is UserStore.delete's cascade, wired in index.ts).
 */
import { fits, NO_USAGE, stanzaBytes, toQuota } from '../offline-quota.js';
import type { OfflineMessage, OfflineStore, OfflineUsage } from '../ports/offline.js';
import type { Clock } from '../types.js';
import { keyOf, type Purgeable } from './key.js';

/**
 * One account's messages with their running usage. Every change goes
 * through here, so the usage cannot drift from the messages whatever
 * removes them (SQLite's triggers do the same job).
 */
class AccountQueue {
  readonly messages: OfflineMessage[] = [];
  bytes = 0;

  get usage(): OfflineUsage { return { messages: this.messages.length, bytes: this.bytes }; }

  append(message: OfflineMessage): void {
    this.messages.push(message);
    this.bytes += stanzaBytes(message.stanza);
  }

  removeIds(ids: ReadonlySet<number>): void {
    let kept = 0;
    for (const m of this.messages) {
      if (ids.has(m.id)) this.bytes -= stanzaBytes(m.stanza);
      else this.messages[kept++] = m;
    }
    this.messages.length = kept;
  }
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
  const queues = new Map<string, AccountQueue>();
  let lastId = 0;
  return {
    async push(host, username, stanza, quota) {
      const key = keyOf(host, username);
      const queue = queues.get(key) ?? new AccountQueue();
      if (!fits(queue.usage, stanzaBytes(stanza), toQuota(quota))) return false;
      queue.append({ id: ++lastId, stanza, storedAt: now() });
      queues.set(key, queue);
      return true;
    },
    async list(host, username, page = {}) {
      const queue = queues.get(keyOf(host, username))?.messages ?? [];
      const from = firstAfter(queue, page.afterId ?? 0);
      const at = page.storedAt;
      const after = at === undefined ? queue.slice(from) : queue.slice(from).filter((m) => m.storedAt === at);
      return page.limit === undefined ? after : after.slice(0, page.limit);
    },
    async remove(host, username, ids) {
      const key = keyOf(host, username);
      const queue = queues.get(key);
      if (!queue) return;
      queue.removeIds(new Set(ids));
      if (queue.messages.length === 0) queues.delete(key);
    },
    async count(host, username) {
      return queues.get(keyOf(host, username))?.messages.length ?? 0;
    },
    async usage(host, username) {
      return queues.get(keyOf(host, username))?.usage ?? NO_USAGE;
    },
    purge(host, username) {
      queues.delete(keyOf(host, username));
    },
  };
}

/**
 * In-memory RosterStore and BlocklistStore with the same observable
 * behaviour as the SQLite ones. `purge` is what UserStore.delete triggers
 * (SQLite: ON DELETE CASCADE). The server also uses one pair of these for
 * SASL ANONYMOUS accounts, whose rosters must not outlive their sessions.
 */
import { compareCodePoints } from './order.js';
import type { BlocklistStore, RosterItem, RosterPending, RosterStore, StoredRoster } from './types.js';

// NUL cannot occur in a JID, so it cannot make two different keys collide.
const keyOf = (host: string, username: string): string => `${host}\0${username}`;

/** Forgets everything held for an account (its deletion). */
export interface PurgeableStore {
  purge(host: string, username: string): void;
}

interface MemoryRoster {
  version: number;
  items: Map<string, RosterItem>;
  pending: Map<string, RosterPending>;
}

const copyItem = (i: RosterItem): RosterItem => ({ ...i, groups: [...i.groups] });
/** JID order, as SQLite's BINARY collation sorts them. */
const byJid = (a: { jid: string }, b: { jid: string }): number => compareCodePoints(a.jid, b.jid);

export function createMemoryRosterStore(): RosterStore & PurgeableStore {
  const rosters = new Map<string, MemoryRoster>();
  const rosterOf = (host: string, username: string): MemoryRoster => {
    const key = keyOf(host, username);
    let r = rosters.get(key);
    if (!r) rosters.set(key, (r = { version: 0, items: new Map(), pending: new Map() }));
    return r;
  };
  return {
    async load(host, username): Promise<StoredRoster> {
      const r = rosters.get(keyOf(host, username));
      if (!r) return { version: 0, items: [], pending: [] };
      return {
        version: r.version,
        items: [...r.items.values()].map(copyItem).sort(byJid),
        pending: [...r.pending.values()].map((p) => ({ ...p })).sort(byJid),
      };
    },
    async putItem(host, username, item, version) {
      const r = rosterOf(host, username);
      r.items.set(item.jid, copyItem(item));
      r.version = version;
    },
    async removeItem(host, username, jid, version) {
      const r = rosterOf(host, username);
      r.items.delete(jid);
      r.version = version;
    },
    async putPending(host, username, pending) {
      rosterOf(host, username).pending.set(pending.jid, { ...pending });
    },
    async removePending(host, username, jid) {
      rosters.get(keyOf(host, username))?.pending.delete(jid);
    },
    purge(host, username) {
      rosters.delete(keyOf(host, username));
    },
  };
}

export function createMemoryBlocklistStore(): BlocklistStore & PurgeableStore {
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

/**
 * A roster store and a blocklist store that only live in memory, with one
 * purge for both: where SASL ANONYMOUS accounts keep theirs.
 */
export function createVolatileAccountStores(): { rosters: RosterStore; blocklists: BlocklistStore; purge(host: string, username: string): void } {
  const rosters = createMemoryRosterStore();
  const blocklists = createMemoryBlocklistStore();
  return {
    rosters, blocklists,
    purge(host, username) {
      rosters.purge(host, username);
      blocklists.purge(host, username);
    },
  };
}

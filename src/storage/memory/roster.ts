/**
 * In-memory RosterStore with the same observable behaviour as the SQLite
 * one. The server also uses one for SASL ANONYMOUS accounts
 * (createVolatileAccountStores), whose rosters must not outlive their sessions.
 */
import { compareCodePoints } from '../order.js';
import type { RosterItem, RosterPending, RosterStore, StoredRoster } from '../ports/roster.js';
import { keyOf, type ContactForgetting, type Purgeable } from './key.js';

interface MemoryRoster {
  version: number;
  items: Map<string, RosterItem>;
  pending: Map<string, RosterPending>;
}

const copyItem = (i: RosterItem): RosterItem => ({ ...i, groups: [...i.groups] });
/** JID order, as SQLite's BINARY collation sorts them. */
const byJid = (a: { jid: string }, b: { jid: string }): number => compareCodePoints(a.jid, b.jid);

export function createMemoryRosterStore(): RosterStore & Purgeable & ContactForgetting {
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
    // As if the deleted account had sent unsubscribe and unsubscribed (RFC 6121 §3.2, §3.3).
    forgetContact(jid) {
      for (const r of rosters.values()) {
        r.pending.delete(jid);
        const item = r.items.get(jid);
        if (!item || (item.subscription === 'none' && !item.ask && !item.approved)) continue;
        r.items.set(jid, { ...item, subscription: 'none', ask: false, approved: false });
        r.version++;
      }
    },
  };
}

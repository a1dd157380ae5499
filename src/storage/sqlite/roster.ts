/** RosterStore over one better-sqlite3 connection; statements are prepared once. */
import type Database from 'better-sqlite3';
import type { RosterItem, RosterPending, RosterStore, RosterSubscription, StoredRoster } from '../ports/roster.js';

interface ItemRow {
  jid: string;
  name: string | null;
  subscription: string;
  ask: number;
  approved: number;
  groups: string;
}

const SUBSCRIPTIONS: ReadonlySet<string> = new Set<RosterSubscription>(['none', 'to', 'from', 'both']);

function decodeGroups(row: ItemRow): string[] {
  const groups: unknown = JSON.parse(row.groups);
  if (!Array.isArray(groups) || !groups.every((g) => typeof g === 'string')) {
    throw new Error(`stored groups of roster item '${row.jid}' are malformed`);
  }
  return groups as string[];
}

function decode(row: ItemRow): RosterItem {
  if (!SUBSCRIPTIONS.has(row.subscription)) throw new Error(`stored subscription of roster item '${row.jid}' is malformed`);
  return {
    jid: row.jid,
    name: row.name ?? undefined,
    subscription: row.subscription as RosterSubscription,
    ask: row.ask === 1,
    approved: row.approved === 1,
    groups: decodeGroups(row),
  };
}

function prepareStatements(db: Database.Database) {
  return {
    version: db.prepare<[string, string], { version: number }>('SELECT version FROM roster_versions WHERE host = ? AND username = ?'),
    items: db.prepare<[string, string], ItemRow>('SELECT jid, name, subscription, ask, approved, groups FROM roster_items WHERE host = ? AND username = ? ORDER BY jid'),
    pending: db.prepare<[string, string], RosterPending>('SELECT jid, stanza FROM roster_pending WHERE host = ? AND username = ? ORDER BY jid'),
    setVersion: db.prepare<[string, string, number]>(
      'INSERT INTO roster_versions (host, username, version) VALUES (?, ?, ?) ON CONFLICT (host, username) DO UPDATE SET version = excluded.version'),
    putItem: db.prepare<[string, string, string, string | null, string, number, number, string]>(`
      INSERT INTO roster_items (host, username, jid, name, subscription, ask, approved, groups) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT (host, username, jid) DO UPDATE SET
        name = excluded.name, subscription = excluded.subscription, ask = excluded.ask, approved = excluded.approved, groups = excluded.groups`),
    removeItem: db.prepare<[string, string, string]>('DELETE FROM roster_items WHERE host = ? AND username = ? AND jid = ?'),
    putPending: db.prepare<[string, string, string, string]>(
      'INSERT INTO roster_pending (host, username, jid, stanza) VALUES (?, ?, ?, ?) ON CONFLICT (host, username, jid) DO UPDATE SET stanza = excluded.stanza'),
    removePending: db.prepare<[string, string, string]>('DELETE FROM roster_pending WHERE host = ? AND username = ? AND jid = ?'),
  };
}

export function createSqliteRosterStore(db: Database.Database): RosterStore {
  const st = prepareStatements(db);
  // The item and the roster version change together or not at all.
  const put = db.transaction((host: string, username: string, item: RosterItem, version: number) => {
    st.putItem.run(host, username, item.jid, item.name ?? null, item.subscription, item.ask ? 1 : 0, item.approved ? 1 : 0, JSON.stringify(item.groups));
    st.setVersion.run(host, username, version);
  });
  const remove = db.transaction((host: string, username: string, jid: string, version: number) => {
    st.removeItem.run(host, username, jid);
    st.setVersion.run(host, username, version);
  });
  // One read transaction, so the version always matches the items read with it.
  const load = db.transaction((host: string, username: string): StoredRoster => ({
    version: st.version.get(host, username)?.version ?? 0,
    items: st.items.all(host, username).map(decode),
    pending: st.pending.all(host, username),
  }));

  return {
    async load(host, username) {
      return load(host, username);
    },
    async putItem(host, username, item, version) {
      put(host, username, item, version);
    },
    async removeItem(host, username, jid, version) {
      remove(host, username, jid, version);
    },
    async putPending(host, username, pending) {
      st.putPending.run(host, username, pending.jid, pending.stanza);
    },
    async removePending(host, username, jid) {
      st.removePending.run(host, username, jid);
    },
  };
}

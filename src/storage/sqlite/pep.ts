/** PepStore over one better-sqlite3 connection; statements are prepared once. */
import type Database from 'better-sqlite3';
import type { PepItem, PepNodeConfig, PepStore } from '../ports/pep.js';

type Key = [string, string, string];

export function createSqlitePepStore(db: Database.Database): PepStore {
  const st = {
    nodes: db.prepare<[string, string], { node: string; config: string }>('SELECT node, config FROM pep_nodes WHERE host = ? AND username = ? ORDER BY node'),
    node: db.prepare<Key, { config: string }>('SELECT config FROM pep_nodes WHERE host = ? AND username = ? AND node = ?'),
    configure: db.prepare<[...Key, string]>(`INSERT INTO pep_nodes (host, username, node, config) VALUES (?, ?, ?, ?)
      ON CONFLICT (host, username, node) DO UPDATE SET config = excluded.config`),
    deleteNode: db.prepare<Key>('DELETE FROM pep_nodes WHERE host = ? AND username = ? AND node = ?'),
    remove: db.prepare<[...Key, string]>('DELETE FROM pep_items WHERE host = ? AND username = ? AND node = ? AND item_id = ?'),
    insert: db.prepare<[...Key, string, string]>('INSERT INTO pep_items (host, username, node, item_id, payload) VALUES (?, ?, ?, ?, ?)'),
    // The newest `max` stay: seq grows with every insert (AUTOINCREMENT never reuses one).
    trim: db.prepare<[...Key, ...Key, number]>(`DELETE FROM pep_items WHERE host = ? AND username = ? AND node = ? AND seq NOT IN
      (SELECT seq FROM pep_items WHERE host = ? AND username = ? AND node = ? ORDER BY seq DESC LIMIT ?)`),
    all: db.prepare<Key, { item_id: string; payload: string }>('SELECT item_id, payload FROM pep_items WHERE host = ? AND username = ? AND node = ? ORDER BY seq'),
    newest: db.prepare<[...Key, number], { item_id: string; payload: string }>(`SELECT * FROM (SELECT seq, item_id, payload FROM pep_items
      WHERE host = ? AND username = ? AND node = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq`),
    purge: db.prepare<Key>('DELETE FROM pep_items WHERE host = ? AND username = ? AND node = ?'),
  };
  const trim = (key: Key, max: number): void => { st.trim.run(...key, ...key, max); };
  const configure = db.transaction((key: Key, config: PepNodeConfig) => {
    st.configure.run(...key, JSON.stringify(config));
    trim(key, config.maxItems);
  });
  // Reads (the node), then writes: run IMMEDIATE, or with another connection holding the write
  // lock (the archive thread's commit, a CLI command) the first write fails at once with
  // SQLITE_BUSY: a read transaction's upgrade never waits in the busy handler.
  const publish = db.transaction((key: Key, item: PepItem, max: number) => {
    if (st.node.get(...key) === undefined) return;
    st.remove.run(...key, item.id);
    st.insert.run(...key, item.id, item.payload);
    trim(key, max);
  });
  const toItem = (r: { item_id: string; payload: string }): PepItem => ({ id: r.item_id, payload: r.payload });
  return {
    async nodes(host, username) {
      return st.nodes.all(host, username).map((r) => ({ node: r.node, config: JSON.parse(r.config) as PepNodeConfig }));
    },
    async node(host, username, node) {
      const row = st.node.get(host, username, node);
      return row === undefined ? undefined : JSON.parse(row.config) as PepNodeConfig;
    },
    async configure(host, username, node, config) { configure([host, username, node], config); },
    async deleteNode(host, username, node) { return st.deleteNode.run(host, username, node).changes > 0; },
    async publish(host, username, node, item, maxItems) { publish.immediate([host, username, node], item, maxItems); },
    async items(host, username, node, query = {}) {
      if (!query.ids) return (query.max === undefined ? st.all.all(host, username, node) : st.newest.all(host, username, node, query.max)).map(toItem);
      // The ids select (XEP-0060 §6.5.8), then max keeps the newest of them (§6.5.7): a node holds at most max_items.
      const chosen = st.all.all(host, username, node).map(toItem).filter((i) => query.ids!.includes(i.id));
      return query.max === undefined ? chosen : chosen.slice(Math.max(0, chosen.length - query.max));
    },
    async retract(host, username, node, id) { return st.remove.run(host, username, node, id).changes > 0; },
    async purgeNode(host, username, node) { st.purge.run(host, username, node); },
  };
}

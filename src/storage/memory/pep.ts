/** In-memory PepStore with the same observable behaviour as the SQLite one. */
import type { PepItem, PepNodeConfig, PepStore } from '../ports/pep.js';
import { compareCodePoints } from '../order.js';
import { keyOf, type ContactForgetting, type Purgeable } from './key.js';

interface Node {
  config: PepNodeConfig;
  /** Insertion order is publication order: a re-published id is deleted and set again. */
  readonly items: Map<string, string>;
}

export function createMemoryPepStore(): PepStore & Purgeable & ContactForgetting {
  const accounts = new Map<string, Map<string, Node>>();
  const nodeOf = (host: string, username: string, node: string): Node | undefined => accounts.get(keyOf(host, username))?.get(node);
  const trim = (n: Node, max: number): void => {
    for (const id of n.items.keys()) {
      if (n.items.size <= max) break;
      n.items.delete(id);
    }
  };
  return {
    async nodes(host, username) {
      const nodes = accounts.get(keyOf(host, username));
      if (!nodes) return [];
      return [...nodes].sort(([a], [b]) => compareCodePoints(a, b)).map(([node, n]) => ({ node, config: n.config }));
    },
    async node(host, username, node) {
      return nodeOf(host, username, node)?.config;
    },
    async configure(host, username, node, config) {
      const key = keyOf(host, username);
      let nodes = accounts.get(key);
      if (!nodes) accounts.set(key, (nodes = new Map()));
      const n = nodes.get(node);
      if (n) n.config = config; else nodes.set(node, { config, items: new Map() });
      trim(nodes.get(node)!, config.maxItems);
    },
    async deleteNode(host, username, node) {
      return accounts.get(keyOf(host, username))?.delete(node) ?? false;
    },
    async publish(host, username, node, item, maxItems) {
      const n = nodeOf(host, username, node);
      if (!n) return;
      n.items.delete(item.id);
      n.items.set(item.id, item.payload);
      trim(n, maxItems);
    },
    async items(host, username, node, query = {}) {
      const n = nodeOf(host, username, node);
      if (!n) return [];
      let all: PepItem[] = [...n.items].map(([id, payload]) => ({ id, payload }));
      if (query.ids) all = all.filter((i) => query.ids!.includes(i.id));
      return query.max === undefined ? all : all.slice(Math.max(0, all.length - query.max));
    },
    async retract(host, username, node, id) {
      return nodeOf(host, username, node)?.items.delete(id) ?? false;
    },
    async purgeNode(host, username, node) {
      nodeOf(host, username, node)?.items.clear();
    },
    purge(host, username) {
      accounts.delete(keyOf(host, username));
    },
    // Its member and outcast affiliations go with a deleted account.
    forgetContact(jid) {
      for (const nodes of accounts.values()) {
        for (const n of nodes.values()) {
          if (n.config.affiliations?.[jid] === undefined) continue;
          const { [jid]: _gone, ...affiliations } = n.config.affiliations;
          n.config = { ...n.config, affiliations };
        }
      }
    },
  };
}

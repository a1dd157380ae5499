/** The PEP port (XEP-0163 over XEP-0060): each account's nodes, their configuration and items. Types only. */

/** XEP-0060 §4.5 access models; PEP (XEP-0163 §4.2) defaults to presence. Others are refused before storage. */
export type PepAccessModel = 'presence' | 'open' | 'whitelist' | 'roster';

/** What an account's node keeps of its pubsub#node_config (XEP-0060 §16.4.4). */
export interface PepNodeConfig {
  readonly accessModel: PepAccessModel;
  /** pubsub#persist_items: false keeps no item, publishing only notifies. */
  readonly persistItems: boolean;
  /** pubsub#max_items, already resolved ('max' is the server's limit). */
  readonly maxItems: number;
  /** pubsub#roster_groups_allowed, for the roster access model. */
  readonly rosterGroupsAllowed: readonly string[];
  /**
   * XEP-0060 §4.1 affiliations other than the owner's, by bare JID: members
   * (whom the whitelist model admits) and outcasts (whom no model admits).
   * Absent in documents written before they existed: none. Their key order is not kept
   * (PostgreSQL's JSONB reorders keys): whoever lists them sorts.
   */
  readonly affiliations?: Readonly<Record<string, PepAffiliation>>;
}

export type PepAffiliation = 'member' | 'outcast';

export interface PepNode {
  readonly node: string;
  readonly config: PepNodeConfig;
}

/** One published item: its id and its payload as serialized XML. */
export interface PepItem {
  readonly id: string;
  readonly payload: string;
}

export interface PepItemQuery {
  /** The newest `max` items only (XEP-0060 §6.5.7), of those `ids` selects when both are given. */
  readonly max?: number;
  /** Only these ids (XEP-0060 §6.5.8). */
  readonly ids?: readonly string[];
}

/** The account's PEP nodes, gone with the account; a deleted account's affiliations go from every other account's nodes. */
export interface PepStore {
  /** Every node of the account, by name. */
  nodes(host: string, username: string): Promise<PepNode[]>;
  node(host: string, username: string, node: string): Promise<PepNodeConfig | undefined>;
  /** Creates the node or replaces its configuration, keeping only its newest `config.maxItems` items. */
  configure(host: string, username: string, node: string, config: PepNodeConfig): Promise<void>;
  /** False when there was no such node. Its items go with it. */
  deleteNode(host: string, username: string, node: string): Promise<boolean>;
  /**
   * Stores `item` in an existing node as its newest item (one with the same
   * id is replaced: XEP-0060 §7.1.2), then keeps only the newest `maxItems`.
   */
  publish(host: string, username: string, node: string, item: PepItem, maxItems: number): Promise<void>;
  /** Items oldest first: all, or those with `ids`; of them, the newest `max` when it is given. */
  items(host: string, username: string, node: string, query?: PepItemQuery): Promise<PepItem[]>;
  /** False when the node had no such item. */
  retract(host: string, username: string, node: string, id: string): Promise<boolean>;
  /** Removes every item of the node (XEP-0060 §8.5). */
  purgeNode(host: string, username: string, node: string): Promise<void>;
}

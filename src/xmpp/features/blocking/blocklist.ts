import type { Jid } from '../../../jid/index.js';
import type { BlocklistStore } from '../../../storage/ports/blocklist.js';
import type { Account, AccountPart } from '../accounts/index.js';

/** Where blocklists live: the store, and the volatile one of SASL ANONYMOUS accounts. */
export interface BlocklistStores {
  readonly blocklists: BlocklistStore;
  /** Memory that the accounts service purges after the account's last session (with its roster). */
  readonly anonymous: BlocklistStore;
}

/**
 * XEP-0191 blocklists in memory: loaded with each account as a part of it
 * (the accounts service loads, shares and drops it with the roster, and
 * waits for its writes), changed here and written through in call order.
 * Entries are JIDs as written in the block command (§JID Matching).
 */
export class Blocklists implements AccountPart<Set<string>> {
  constructor(private readonly stores: BlocklistStores) {}

  async load(host: string, username: string, anonymous: boolean): Promise<Set<string>> {
    return new Set(await this.#store(anonymous).list(host, username));
  }

  /** The account's blocklist (read only: change it with block/unblock). */
  of(account: Account): ReadonlySet<string> {
    return account.part(this);
  }

  block(account: Account, jids: readonly string[]): Promise<void> {
    const list = account.part(this);
    for (const j of jids) list.add(j);
    return account.track(this.#store(account.anonymous).add(account.host, account.username, jids));
  }

  unblock(account: Account, jids: readonly string[]): Promise<void> {
    const list = account.part(this);
    for (const j of jids) list.delete(j);
    return account.track(this.#store(account.anonymous).remove(account.host, account.username, jids));
  }

  unblockAll(account: Account): Promise<void> {
    account.part(this).clear();
    return account.track(this.#store(account.anonymous).clear(account.host, account.username));
  }

  /** Whether `account` blocks `jid`: what presence and subscriptions ask (given to them through the accounts service). */
  readonly isBlocked = (account: Account, jid: Jid): boolean => blocks(account, this.of(account), jid);

  #store(anonymous: boolean): BlocklistStore {
    return anonymous ? this.stores.anonymous : this.stores.blocklists;
  }
}

/**
 * XEP-0191 §JID Matching: a blocklist entry matches `jid` when it is its
 * full JID, its bare JID, its domain/resource, or its domain; the four
 * forms of the sender's JID are compared, as XEP-0016 and ejabberd do.
 */
export function blocks(owner: Pick<Account, 'username' | 'host'>, list: ReadonlySet<string>, jid: Jid): boolean {
  if (list.size === 0) return false;
  // A user's own resources are never blocked from each other (XEP-0191 §Relationship to Privacy Lists).
  if (jid.local === owner.username && jid.domain === owner.host) return false;
  if (list.has(jid.full) || list.has(jid.bare) || list.has(jid.domain)) return true;
  return jid.resource !== '' && list.has(`${jid.domain}/${jid.resource}`);
}

import { randomInt } from 'node:crypto';
import { makeJid, parseJid, type Jid } from '../../../jid/index.js';
import type { RosterItem, RosterPending, RosterStore, StoredRoster } from '../../../storage/ports/roster.js';
import type { Log } from '../../log.js';
import { itemBytes, pendingBytes } from './quota.js';
import { NONE, type SubState } from './subscription.js';

/**
 * What another feature keeps per account in memory, loaded with the roster
 * and dropped with it (blocking's blocklist): the accounts service loads
 * it without knowing what it is. The part object itself is the key.
 */
export interface AccountPart<T> {
  /** Loads the part of one account; `anonymous` accounts keep theirs in volatile stores. */
  load(host: string, username: string, anonymous: boolean): Promise<T>;
}

/** The loaded parts of one account, by part. */
export type AccountParts = ReadonlyMap<AccountPart<unknown>, unknown>;

/**
 * One account's roster (RFC 6121 §2) in memory, with the parts other
 * features load with it (AccountPart), shared by all of the account's
 * sessions (the seed's `session.roster`). Every change is applied here
 * synchronously, so all readers see it at once, and written through to
 * the store in call order (track()).
 */
export class Account {
  readonly jid: Jid;
  /** Bumped on every change a roster push announces (XEP-0237 §3: the `ver`). */
  version: number;
  readonly items: Map<string, RosterItem>;
  /** Unanswered inbound requests by bare JID: Pending In, off the roster (RFC 6121 §3.1.3). */
  readonly pending: Map<string, RosterPending>;
  #writes = new Set<Promise<void>>();
  /** Writes issued so far: a reload whose read overlapped one reads again (Accounts.reload). */
  #issued = 0;
  /** UTF-8 bytes of the items and pending requests (quota.ts), kept as they change. */
  #bytes = 0;
  /** Parsed item JIDs: presence fan-out needs them as Jid, and PRECIS is not free. */
  readonly #jids = new Map<string, Jid>();
  /**
   * Told after an item or pending request of `jid` changed (undefined: all of
   * them, a reload): a cluster's index of the local rosters (remote.ts).
   */
  watch: ((account: Account, jid: string | undefined) => void) | undefined;

  constructor(
    readonly host: string, readonly username: string, readonly anonymous: boolean,
    stored: StoredRoster, private readonly rosters: RosterStore, private readonly log: Log,
    private readonly parts: Map<AccountPart<unknown>, unknown> = new Map(),
    /** Told after each write settled (a cluster publishes it); undefined in a single process: no work at all. */
    private readonly written?: (account: Account) => void,
  ) {
    this.jid = makeJid(username, host);
    this.version = 0;
    this.items = new Map();
    this.pending = new Map();
    this.#fill(stored);
  }

  /**
   * Replaces the state in memory with what was read again from the stores
   * (another cluster node changed them): every holder keeps this object.
   */
  reload(stored: StoredRoster, parts: ReadonlyMap<AccountPart<unknown>, unknown>): void {
    this.items.clear();
    this.pending.clear();
    this.#bytes = 0;
    this.#fill(stored);
    for (const [part, value] of parts) this.parts.set(part, value);
    this.watch?.(this, undefined);
  }

  #fill(stored: StoredRoster): void {
    this.version = stored.version;
    for (const i of stored.items) this.items.set(i.jid, i);
    for (const p of stored.pending) this.pending.set(p.jid, p);
    for (const i of this.items.values()) this.#bytes += itemBytes(i);
    for (const p of this.pending.values()) this.#bytes += pendingBytes(p);
  }

  /** What the roster weighs now (MAX_ROSTER_BYTES): items and pending requests. */
  get bytes(): number { return this.#bytes; }

  get bare(): string { return this.jid.bare; }

  /** A roster JID (already normalised when stored) as a Jid. */
  contact(jid: string): Jid {
    let parsed = this.#jids.get(jid);
    if (!parsed) {
      parsed = parseJid(jid);
      if (this.#jids.size >= 4 * Math.max(64, this.items.size)) this.#jids.clear();
      this.#jids.set(jid, parsed);
    }
    return parsed;
  }

  /** The Appendix A state of `jid` on this roster. */
  state(jid: string): SubState {
    const item = this.items.get(jid);
    const pendingIn = this.pending.has(jid);
    if (!item) return pendingIn ? { ...NONE, pendingIn } : NONE;
    return { subscription: item.subscription, ask: item.ask, approved: item.approved, pendingIn };
  }

  /** Creates or replaces an item under a new version; resolves once stored. */
  saveItem(item: RosterItem): Promise<void> {
    this.#nextVersion();
    this.#bytes += itemBytes(item) - this.#itemBytes(item.jid);
    this.items.set(item.jid, item);
    this.watch?.(this, item.jid);
    return this.track(this.rosters.putItem(this.host, this.username, item, this.version));
  }

  /** Removes an item under a new version; resolves once stored. */
  deleteItem(jid: string): Promise<void> {
    this.#nextVersion();
    this.#bytes -= this.#itemBytes(jid);
    this.items.delete(jid);
    this.watch?.(this, jid);
    return this.track(this.rosters.removeItem(this.host, this.username, jid, this.version));
  }

  addPending(pending: RosterPending): Promise<void> {
    const replaced = this.pending.get(pending.jid);
    this.#bytes += pendingBytes(pending) - (replaced ? pendingBytes(replaced) : 0);
    this.pending.set(pending.jid, pending);
    this.watch?.(this, pending.jid);
    return this.track(this.rosters.putPending(this.host, this.username, pending));
  }

  dropPending(jid: string): Promise<void> {
    const dropped = this.pending.get(jid);
    if (!dropped) return Promise.resolve();
    this.pending.delete(jid);
    this.#bytes -= pendingBytes(dropped);
    this.watch?.(this, jid);
    return this.track(this.rosters.removePending(this.host, this.username, jid));
  }

  /** A part loaded with this account (AccountPart). */
  part<T>(part: AccountPart<T>): T {
    const value = this.parts.get(part);
    if (value === undefined && !this.parts.has(part)) throw new Error('account part not loaded: register it with the accounts service');
    return value as T;
  }

  #itemBytes(jid: string): number {
    const item = this.items.get(jid);
    return item ? itemBytes(item) : 0;
  }

  /**
   * A roster's first change starts its version at a random number rather
   * than 1: a client that cached version N of a deleted account's roster
   * must not find "its" N again in a new account of the same name.
   */
  #nextVersion(): void {
    this.version = this.version === 0 ? randomInt(1, 2 ** 40) : this.version + 1;
  }

  /** How many writes this account issued: unchanged across a read, the read saw all of them. */
  get issued(): number { return this.#issued; }

  /** Resolves when every write issued so far has finished (failed ones included). */
  async flushed(): Promise<void> {
    await Promise.all([...this.#writes]);
  }

  /**
   * Tracks a write of this account's state (its roster, or a part's): the
   * account leaves memory only once it finished (Accounts.release). The
   * in-memory state already changed; a failed write is logged here, and the
   * caller that awaits it (a roster set, a block) answers with an error, so
   * the client learns the change may not have been kept.
   */
  track(p: Promise<void>): Promise<void> {
    this.#issued++;
    const tracked = p.catch((err: unknown) => {
      this.log.error({ err, account: this.bare }, 'an account write (roster, blocklist) failed');
      throw err;
    });
    const settled = tracked.then(() => undefined, () => undefined);
    this.#writes.add(settled);
    const written = this.written;
    void settled.then(() => {
      this.#writes.delete(settled);
      written?.(this);
    });
    return tracked;
  }
}

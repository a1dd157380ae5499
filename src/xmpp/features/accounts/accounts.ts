import type { Jid } from '../../../jid/index.js';
import type { UserStore } from '../../../storage/ports/accounts.js';
import type { RosterStore, StoredRoster } from '../../../storage/ports/roster.js';
import type { SessionManager } from '../../session-manager.js';
import type { Log } from '../../log.js';
import { Account, type AccountPart } from './account.js';

/** The stores the accounts service reads and writes. */
export interface AccountsStores {
  readonly users: Pick<UserStore, 'get'>;
  readonly rosters: RosterStore;
}

/** Where SASL ANONYMOUS accounts keep their state: memory, purged (with the parts' state) after their last session. */
export interface VolatileStores {
  readonly rosters: RosterStore;
  purge(host: string, username: string): void;
}

interface Entry {
  readonly loading: Promise<Account>;
  account: Account | undefined;
  refs: number;
}

const keyOf = (host: string, username: string): string => `${host}\0${username}`;

/**
 * The accounts whose roster (and parts, AccountPart) are in memory: each connected
 * account (one reference per session, the seed's "loaded as soon as the
 * resource is bound"), and, for a moment, an offline account that a stanza
 * is addressed to. All holders share one Account; the last release drops
 * it. Created per server in register(), never module-level.
 */
export class Accounts {
  readonly #entries = new Map<string, Entry>();
  /** Writes of released accounts still in flight: a new load waits for them. */
  readonly #flushing = new Map<string, Promise<void>>();
  /** Reloads in progress, chained per account. */
  readonly #reloads = new Map<string, Promise<void>>();

  constructor(
    private readonly stores: AccountsStores,
    /** SASL ANONYMOUS accounts are never persisted: their rosters live here and go with their last session. */
    private readonly volatile: VolatileStores,
    private readonly sessions: SessionManager,
    private readonly log: Log,
    /** What other features load with every account (blocking's blocklist). */
    private readonly parts: readonly AccountPart<unknown>[] = [],
    /** What each new Account tells after a write (see Account.written): undefined unless a cluster listens. */
    private readonly written: () => ((account: Account) => void) | undefined = () => undefined,
  ) {}

  /** The loaded account, if any holder has it in memory right now. */
  peek(host: string, username: string): Account | undefined {
    return this.#entries.get(keyOf(host, username))?.account;
  }

  /** Takes a reference, loading the account first if nobody holds it. */
  acquire(host: string, username: string, anonymous: boolean): Promise<Account> {
    const key = keyOf(host, username);
    let entry = this.#entries.get(key);
    if (!entry) {
      const created: Entry = { loading: this.#load(key, host, username, anonymous), account: undefined, refs: 0 };
      created.loading.then((a) => { created.account = a; }, () => {
        if (this.#entries.get(key) === created) this.#entries.delete(key);
      });
      this.#entries.set(key, (entry = created));
    }
    entry.refs++;
    return entry.loading;
  }

  /** Gives a reference back; the last one drops the account from memory. */
  release(account: Account): void {
    const key = keyOf(account.host, account.username);
    const entry = this.#entries.get(key);
    if (!entry || entry.account !== account || --entry.refs > 0) return;
    this.#entries.delete(key);
    const flushed = account.flushed().then(() => {
      if (account.anonymous) this.volatile.purge(account.host, account.username);
    });
    this.#flushing.set(key, flushed);
    void flushed.then(() => { if (this.#flushing.get(key) === flushed) this.#flushing.delete(key); });
  }

  /**
   * Runs `fn` with the account of `jid` in memory, loading and releasing it
   * around the call if needed. Not on the account's work queue
   * (ctx.queues.accounts): a subscription's step at account B runs inside
   * A's and may answer back at A (RFC 6121 §3.4 pre-approval, §3.1.3
   * auto-reply), so with A and B doing that to each other at once each job
   * would wait for the other's queue for ever. Changes to an account are
   * applied synchronously in memory (account.ts), so concurrent users see
   * each other's changes at once and the writes go out in call order.
   */
  async use<T>(jid: Jid, fn: (account: Account) => T | Promise<T>): Promise<T> {
    const account = await this.acquire(jid.domain, jid.local, this.#isAnonymous(jid.domain, jid.local));
    try {
      return await fn(account);
    } finally {
      this.release(account);
    }
  }

  /**
   * Whether a local account exists: registered, or an ANONYMOUS one with a
   * session. RFC 6121 §8.5.1 lets the server ignore what is addressed to
   * accounts that do not exist.
   */
  async exists(jid: Jid): Promise<boolean> {
    if (jid.local === '' || jid.resource !== '') return false;
    if (this.sessions.countResources(jid.domain, jid.local) > 0) return true;
    return (await this.stores.users.get(jid.domain, jid.local)) !== undefined;
  }

  /** Every account in memory, those still loading once loaded (their read may predate a change in the store). */
  async loaded(): Promise<Account[]> {
    const all = await Promise.all([...this.#entries.values()].map((e) => e.account ?? e.loading.catch(() => undefined)));
    return all.filter((a): a is Account => a !== undefined);
  }

  /** Whether the store has a registered account of `jid` now (not counting sessions, which may be ending). */
  async registered(jid: Jid): Promise<boolean> {
    return (await this.stores.users.get(jid.domain, jid.local)) !== undefined;
  }

  /** Accounts in memory, for leak checks in tests. */
  get size(): number { return this.#entries.size; }

  #isAnonymous(host: string, username: string): boolean {
    for (const s of this.sessions.resources(host, username)) return s.anonymous;
    return false;
  }

  /**
   * Reads an account in memory again from the stores, once its own writes
   * in flight are done (cluster: another node changed it). An account that
   * is not in memory has nothing to refresh; one being loaded is read again
   * after its load (which may have read the store before the change).
   */
  async reload(host: string, username: string): Promise<void> {
    // One still loading may have read the store before the change: read again once it is in.
    const entry = this.#entries.get(keyOf(host, username));
    const account = entry?.account ?? await entry?.loading.catch(() => undefined);
    if (!account || account.anonymous) return;
    // One at a time per account: two reads finishing out of order would leave the older state.
    const key = keyOf(host, username);
    const next = (this.#reloads.get(key) ?? Promise.resolve()).catch(() => undefined).then(() => this.#reread(account));
    this.#reloads.set(key, next);
    try {
      await next;
    } finally {
      if (this.#reloads.get(key) === next) this.#reloads.delete(key);
    }
  }

  /** A read that overlapped a write of this node may predate it: read again (3 tries; the state in memory has the write). */
  async #reread(account: Account): Promise<void> {
    for (let tries = 0; tries < 3; tries++) {
      await account.flushed();
      const issued = account.issued;
      const { roster, parts } = await this.#read(account.host, account.username, false);
      if (account.issued === issued) return account.reload(roster, parts);
    }
  }

  async #load(key: string, host: string, username: string, anonymous: boolean): Promise<Account> {
    await this.#flushing.get(key);
    const { roster, parts } = await this.#read(host, username, anonymous);
    return new Account(host, username, anonymous, roster, this.#rosters(anonymous), this.log, parts, anonymous ? undefined : this.written());
  }

  async #read(host: string, username: string, anonymous: boolean): Promise<{ roster: StoredRoster; parts: Map<AccountPart<unknown>, unknown> }> {
    const [roster, ...loaded] = await Promise.all([this.#rosters(anonymous).load(host, username), ...this.parts.map((p) => p.load(host, username, anonymous))]);
    return { roster, parts: new Map(this.parts.map((p, i) => [p, loaded[i]])) };
  }

  #rosters(anonymous: boolean): RosterStore {
    return anonymous ? this.volatile.rosters : this.stores.rosters;
  }
}

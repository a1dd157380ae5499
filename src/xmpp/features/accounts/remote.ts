import type { Jid } from '../../../jid/index.js';
import type { Log } from '../../log.js';
import type { Session } from '../../session.js';
import type { Account } from './account.js';
import type { Accounts } from './accounts.js';

/**
 * Cluster only: which accounts of other nodes' sessions (remote stubs) this
 * node keeps in memory. Presence, probes and blocking `peek` a contact's
 * account synchronously (presence.ts, relay.ts, blocking), so the account of
 * a stub that a local account lists (roster item or pending request, RFC
 * 6121 §2, §3.1.3) is held while the stub exists; any other stub's account
 * is loaded only when a stanza first needs it (use()), then held likewise.
 * Before, every node loaded the account of every session of the cluster.
 *
 * `#listed` is the reverse index of the local rosters (contact bare JID to
 * the number of local accounts that list it): bounded by their size, kept
 * in step through Account.watch. Holds are bounded by the stubs: one
 * reference per bare JID, given back when its last stub goes.
 */
export class RemoteAccounts {
  readonly #listed = new Map<string, number>();
  /** What each local account put in #listed (its items and pending requests). */
  readonly #contributed = new Map<Account, Set<string>>();
  /** Local sessions per account: its contacts count while one is bound here. */
  readonly #local = new Map<Account, number>();
  /** Remote stubs by bare JID. */
  readonly #stubs = new Map<string, Set<Session>>();
  /** One reference per bare JID with stubs, taken when needed. */
  readonly #held = new Map<string, Promise<Account>>();

  constructor(private readonly accounts: Accounts, private readonly log: Log) {}

  /**
   * A local session bound `account`: its contacts are listed. Resolves when
   * the accounts of those online elsewhere are loaded, so that the
   * session's initial presence (§4.2) finds every one of them.
   */
  addLocal(account: Account): Promise<unknown> {
    const n = this.#local.get(account) ?? 0;
    this.#local.set(account, n + 1);
    if (n > 0) return Promise.resolve();
    account.watch = (a, jid) => { if (jid === undefined) this.#resync(a); else this.#changed(a, jid); };
    return this.#resync(account);
  }

  removeLocal(account: Account): void {
    const n = this.#local.get(account);
    if (n === undefined) return;
    if (n > 1) { this.#local.set(account, n - 1); return; }
    this.#local.delete(account);
    account.watch = undefined;
    for (const jid of this.#contributed.get(account) ?? []) this.#unlist(jid);
    this.#contributed.delete(account);
  }

  addStub(stub: Session): void {
    const bare = stub.jid!.bare;
    let set = this.#stubs.get(bare);
    if (!set) this.#stubs.set(bare, (set = new Set()));
    set.add(stub);
    if (this.#listed.has(bare)) this.#hold(stub).catch(() => undefined);
  }

  removeStub(stub: Session): void {
    const bare = stub.jid!.bare;
    const set = this.#stubs.get(bare);
    if (!set?.delete(stub) || set.size > 0) return;
    this.#stubs.delete(bare);
    const held = this.#held.get(bare);
    this.#held.delete(bare);
    held?.then((a) => this.accounts.release(a), () => undefined);
  }

  /** A stanza needs `jid`'s account: if it is online elsewhere, hold it from now on (one load). */
  want(jid: Jid): void {
    const stub = this.#stubs.get(jid.bare)?.values().next().value;
    if (stub) this.#hold(stub).catch(() => undefined);
  }

  /**
   * The hold of `bare`'s account while one is taken (it has a stub, and a local account lists it or a
   * stanza needed it, want()): loading still, a moment after its stub came, or loaded. Undefined otherwise.
   */
  holding(bare: string): Promise<Account> | undefined { return this.#held.get(bare); }

  /** How many local accounts list `bare` (tests, leak checks). */
  listed(bare: string): number { return this.#listed.get(bare) ?? 0; }

  #resync(account: Account): Promise<unknown> {
    const now = new Set([...account.items.keys(), ...account.pending.keys()]);
    const before = this.#contributed.get(account) ?? new Set<string>();
    this.#contributed.set(account, now);
    for (const jid of before) if (!now.has(jid)) this.#unlist(jid);
    const loads: Promise<unknown>[] = [];
    for (const jid of now) {
      if (before.has(jid)) continue;
      const load = this.#list(jid);
      if (load) loads.push(load.catch(() => undefined));
    }
    return Promise.all(loads);
  }

  #changed(account: Account, jid: string): void {
    const set = this.#contributed.get(account);
    if (!set) return;
    const present = account.items.has(jid) || account.pending.has(jid);
    if (present === set.has(jid)) return;
    if (present) {
      set.add(jid);
      this.#list(jid)?.catch(() => undefined);
    } else {
      set.delete(jid);
      this.#unlist(jid);
    }
  }

  /** Counts one more local account listing `bare`; the first one holds its account if it is online elsewhere. */
  #list(bare: string): Promise<Account> | undefined {
    const n = this.#listed.get(bare) ?? 0;
    this.#listed.set(bare, n + 1);
    const stub = n === 0 ? this.#stubs.get(bare)?.values().next().value : undefined;
    return stub ? this.#hold(stub) : this.#held.get(bare);
  }

  /** The hold stays until the last stub goes: a contact removed and added again costs no second load. */
  #unlist(bare: string): void {
    const n = (this.#listed.get(bare) ?? 0) - 1;
    if (n > 0) this.#listed.set(bare, n); else this.#listed.delete(bare);
  }

  #hold(stub: Session): Promise<Account> {
    const bare = stub.jid!.bare;
    let held = this.#held.get(bare);
    if (held) return held;
    held = this.accounts.acquire(stub.host!, stub.username!, stub.anonymous);
    this.#held.set(bare, held);
    const mine = held;
    held.catch((err: unknown) => {
      if (this.#held.get(bare) === mine) this.#held.delete(bare);
      this.log.warn({ err, jid: bare }, 'loading the account of a remote session failed');
    });
    return held;
  }
}

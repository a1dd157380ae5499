import type { Jid } from '../../../jid/index.js';
import type { ModuleContext } from '../../context.js';
import type { Session } from '../../session.js';
import { StanzaErrorException } from '../../errors.js';
import { PRIORITY } from '../../priorities.js';
import type { Account, AccountPart } from './account.js';
import { Accounts, type AccountsStores, type VolatileStores } from './accounts.js';
import { PresenceRelay, type IsBlocked } from './relay.js';
import { RemoteAccounts } from './remote.js';
import { hasFrom } from './subscription.js';

export type { Account, AccountPart } from './account.js';
export type { Accounts } from './accounts.js';
export type { IsBlocked, PresenceRelay } from './relay.js';

export interface AccountsDeps extends AccountsStores {
  /** Where SASL ANONYMOUS accounts keep their roster (and parts): memory that goes with their last session. */
  readonly volatile: VolatileStores;
  /** XEP-0191 matching, from blocking: the relay sends nothing across a block. */
  readonly isBlocked: IsBlocked;
  /** What other features load with every account (blocking's blocklist). */
  readonly parts?: readonly AccountPart<unknown>[];
}

/**
 * The accounts in memory, shared by roster, presence and blocking: each
 * bound session's Account, loading and releasing accounts (accounts.ts),
 * and presence between local accounts (relay.ts). Made once per server by
 * register() and passed on by app.ts.
 */
export class AccountsService {
  readonly #bound = new WeakMap<Session, Account>();

  constructor(
    readonly accounts: Accounts, readonly relay: PresenceRelay, readonly isBlocked: IsBlocked,
    /** Cluster: the accounts of other nodes' sessions held here (remote.ts); idle in a single process. */
    readonly remote: RemoteAccounts,
  ) {}

  /**
   * Runs `fn` with `jid`'s account in memory (Accounts.use). One of a session
   * on another node stays held from then on (remote.ts): the next stanza
   * for it finds it with `peek`, without reading it again.
   */
  use<T>(jid: Jid, fn: (account: Account) => T | Promise<T>): Promise<T> {
    this.remote.want(jid);
    return this.accounts.use(jid, fn);
  }

  /** The account of a bound session; set by the first job on its queue, so every later job sees it. */
  accountOf(session: Session): Account {
    const account = this.#bound.get(session);
    if (!account) throw new StanzaErrorException('internal-server-error', 'the roster is not loaded');
    return account;
  }

  /** The account of a bound session if it is loaded already (for synchronous hooks). */
  peekAccount(session: Session): Account | undefined {
    return this.#bound.get(session);
  }

  bind(session: Session, account: Account): void { this.#bound.set(session, account); }
  unbind(session: Session): Account | undefined {
    const account = this.#bound.get(session);
    this.#bound.delete(session);
    return account;
  }

  /**
   * Whether `contact` may see `account`'s presence (subscription from or
   * both, and not blocked): what XEP-0030 §8 asks before the server answers
   * disco queries on an account's behalf.
   */
  async isSubscribed(account: Jid, contact: Jid): Promise<boolean> {
    const bare = account.bareJid();
    if (!(await this.accounts.exists(bare))) return false;
    return this.accounts.use(bare, (a) => hasFrom(a.state(contact.bare).subscription) && !this.isBlocked(a, contact));
  }

  /** Whether `account` is a throw-away SASL ANONYMOUS account (no archive, no PEP: disco says so to its contacts too). */
  async isAnonymous(account: Jid): Promise<boolean> {
    const bare = account.bareJid();
    if (!(await this.accounts.exists(bare))) return false;
    return this.accounts.use(bare, (a) => a.anonymous);
  }

  /** Whether `contact`'s bare JID is an item of `account`'s roster, whatever its subscription (XEP-0313 prefs 'roster'). */
  async inRoster(account: Jid, contact: Jid): Promise<boolean> {
    const bare = account.bareJid();
    if (!(await this.accounts.exists(bare))) return false;
    return this.accounts.use(bare, (a) => a.items.has(contact.bare));
  }
}

/**
 * Loads a session's account when its resource is bound and releases it
 * when the session is gone; returns the service that roster, presence and
 * blocking build on.
 */
export function register(ctx: ModuleContext, deps: AccountsDeps): AccountsService {
  // A cluster listens to 'account-written' (registered after this): accounts loaded then tell their writes.
  const written = (a: Account): void => { ctx.hooks.run('account-written', { host: a.host, username: a.username }); };
  const accounts = new Accounts(deps, deps.volatile, ctx.sessions, ctx.log, deps.parts, () => (ctx.hooks.has('account-written') ? written : undefined));
  const remote = new RemoteAccounts(accounts, ctx.log);
  const svc = new AccountsService(accounts, new PresenceRelay(ctx.sessions, accounts, deps.isBlocked), deps.isBlocked, remote);

  // Seed: "roster … Loaded as soon as the resource is bound". The bind result and the
  // session's next stanza wait for it (bind.ts, core.ts), so every later handler sees it.
  ctx.hooks.notify('resource-bound', async ({ session }) => {
    const account = await accounts.acquire(session.host!, session.username!, session.anonymous);
    svc.bind(session, account);
    session.roster = account;
    // Cluster: the contacts online on other nodes are loaded before the bind result (remote.ts).
    if (ctx.hooks.has('account-written')) await remote.addLocal(account);
  }, PRIORITY.lifecycle.default);
  // The last job on the session's queue: everything else the session left behind has run.
  ctx.hooks.notify('session-destroyed', ({ session }) => {
    if (session.full_jid === undefined) return;
    ctx.queues.sessions.after(session, () => {
      const account = svc.unbind(session);
      if (!account) return;
      remote.removeLocal(account);
      accounts.release(account);
    });
  }, PRIORITY.lifecycle.releaseAccount);

  registerRemote(ctx, accounts, remote);
  return svc;
}

/**
 * Cluster only (the events are never run in a single process): remote
 * stubs are counted, their accounts loaded only when needed (remote.ts);
 * and an account another node changed is read again.
 */
function registerRemote(ctx: ModuleContext, accounts: Accounts, remote: RemoteAccounts): void {
  ctx.hooks.notify('remote-session', ({ session, present }) => {
    if (present) remote.addStub(session); else remote.removeStub(session);
  }, PRIORITY.lifecycle.default);
  // Returns the reload: a caller that must see the new state awaits the run (cluster/directory-module.ts).
  ctx.hooks.notify('account-stale', ({ host, username }) =>
    accounts.reload(host, username).catch((err: unknown) => ctx.log.warn({ err, account: `${username}@${host}` }, 'reloading an account failed')),
  PRIORITY.lifecycle.default);
}

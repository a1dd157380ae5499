import { parseJid } from '../../../jid/index.js';
import type { RosterItem } from '../../../storage/types.js';
import type { ModuleContext } from '../../context.js';
import { PRIORITY } from '../../priorities.js';
import type { Account } from '../accounts/account.js';
import type { AccountsService } from '../accounts/index.js';
import { hasFrom } from '../accounts/subscription.js';
import type { RosterService } from './service.js';

/**
 * A deleted account's contacts in memory (RFC 6121 §3.2, §3.3, as Prosody's
 * mod_presence on user-deleted and ejabberd's mod_roster remove_user do: as
 * if it had sent unsubscribe and unsubscribed to each). The store already
 * made the change in the deletion's transaction, for every account, online
 * or not (storage: trigger contacts_of_deleted_account; memory: forgetContact),
 * whichever process deleted; this brings the accounts this process holds up
 * to date and pushes the changed item (subscription none) to their
 * interested resources here. In a cluster every node follows the change log
 * and does this for its own copies and sessions, so nothing is published and
 * nobody is pushed twice. The deleted account's own sessions end
 * (account-changes.ts) and their unavailable presence goes out as at any end.
 */
export function registerDeletedContacts(ctx: ModuleContext, svc: RosterService, accounts: AccountsService): void {
  ctx.hooks.notify('account-deleted', ({ host, username }) =>
    Promise.all([forget(svc, accounts, `${username}@${host}`), renew(ctx, svc, accounts, host, username)]).then(() => undefined, (err: unknown) =>
      ctx.log.warn({ err, account: `${username}@${host}` }, "bringing a deleted account's contacts up to date failed")),
  PRIORITY.lifecycle.default);
}

const sameItem = (a: RosterItem | undefined, b: RosterItem | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && sameState(a, b) && a.name === b.name && a.groups.join('\0') === b.groups.join('\0'));

/**
 * The deleted account's own copy in memory, still held by sessions of an account created again
 * under its name: they logged in before this process read the deletion, and account-changes.ts
 * keeps them (their password was verified against the new account's credentials). One copy is
 * shared by every session of a name (accounts.ts), so they were bound to the one the deleted
 * account's sessions held: served its roster, their presence sent to its contacts, for as long
 * as they lived. The copy is read again from the store (the new account's), each item that
 * changed is pushed to them, and a contact that no longer has a subscription from the account
 * gets unavailable from its resources, as when a subscription is cancelled (RFC 6121 §3.2.2).
 */
async function renew(ctx: ModuleContext, svc: RosterService, accounts: AccountsService, host: string, username: string): Promise<void> {
  const account = accounts.accounts.peek(host, username);
  if (!account || account.anonymous || ![...ctx.sessions.resources(host, username)].some((s) => !s.destroyed)) return;
  const before = new Map(account.items);
  await accounts.accounts.reload(host, username);
  for (const jid of new Set([...before.keys(), ...account.items.keys()])) {
    const was = before.get(jid);
    const now = account.items.get(jid);
    if (sameItem(was, now)) continue;
    await svc.pushLocal(account, jid);
    if (was && hasFrom(was.subscription) && !(now && hasFrom(now.subscription))) accounts.relay.sendUnavailable(account, parseJid(jid));
  }
}

/** Whether `account` still holds anything with `jid` that a deletion ends. */
function holds(account: Account, jid: string): boolean {
  const item = account.items.get(jid);
  return account.pending.has(jid) || (item !== undefined && (item.subscription !== 'none' || item.ask || item.approved));
}

const sameState = (a: RosterItem | undefined, b: RosterItem | undefined): boolean =>
  a?.subscription === b?.subscription && a?.ask === b?.ask && a?.approved === b?.approved;

async function forget(svc: RosterService, accounts: AccountsService, jid: string): Promise<void> {
  const holders = (await accounts.accounts.loaded()).filter((a) => holds(a, jid));
  if (holders.length === 0) return;
  const deleted = parseJid(jid);
  await Promise.all(holders.map(async (account) => {
    const before = account.items.get(jid);
    // Read again: the store has the change already (and a new version). Anonymous accounts are never stored.
    if (!account.anonymous) await accounts.accounts.reload(account.host, account.username);
    // Still there: an anonymous account's roster (memory only), or a write from this copy landed
    // between the deletion and this read. Unless the name belongs to a new account by now, end it here.
    if (holds(account, jid) && (account.anonymous || !(await accounts.accounts.registered(deleted)))) {
      void account.dropPending(jid);
      const item = account.items.get(jid);
      if (item && (item.subscription !== 'none' || item.ask || item.approved)) {
        void account.saveItem({ ...item, subscription: 'none', ask: false, approved: false });
      }
    }
    const after = account.items.get(jid);
    if (!sameState(before, after)) await svc.pushLocal(account, jid);
  }));
}

import type { ModuleContext } from '../context.js';
import type { CloseReason, Session } from '../session.js';
import type { AccountChange, UserRecord, UserStore } from '../../storage/ports/accounts.js';
import { stillStored, type VerifiedCredentials } from './sasl.js';

export interface AccountChangesOptions {
  /** How often the store's change log is read (ms). */
  readonly pollMs: number;
  /**
   * How long after a change its account is checked once more (ms): AUTH_TIMEOUT,
   * the longest a password exchange that read the old credentials can still end in success.
   */
  readonly recheckMs: number;
}

export interface AccountChangesDeps {
  /** The store's log of account changes (by any writer), and the account as it is now. */
  readonly users: Pick<UserStore, 'changesSince' | 'get'>;
  /** The stored credentials that verified a session's password (sasl.ts); undefined for any other login. */
  verifiedWith(session: Session): VerifiedCredentials | undefined;
}

/**
 * Ends the sessions of an account that was deleted or whose password was
 * changed, by whichever writer (the CLI runs in another process and used to
 * leave them running: found in a hostile review). The store records the
 * changes (SQLite: triggers in the writer's transaction); this follows its
 * log every `pollMs`. As Prosody's mod_c2s does: a deleted account gets
 * `not-authorized`, a changed password `reset` (RFC 6120 §4.9.3.16:
 * security-critical state has changed). Hibernating sessions end too, so
 * nobody resumes into them; what they held is handed over as at any end.
 * Their end sends unavailable presence to the contacts as any end does. A
 * deletion also runs 'account-deleted': the store already ended the other
 * accounts' subscriptions with it (in the deletion's transaction), and the
 * roster brings the accounts in memory up to date and pushes the change.
 *
 * Which sessions: the account is read once as it is now, and a session whose
 * password was verified against the credentials still stored stays, so a
 * login with the new password in the moments between the change and this
 * reading of the log is not ended with the sessions from before it (it was,
 * up to `pollMs` after every change). Every other session of the account
 * ends: a token login (FAST, a JWT; the store ended the account's FAST
 * tokens with the change), an anonymous one, one resumed from another node
 * (its login's credentials stayed there), and all of them if the account
 * cannot be read. A SCRAM exchange that read the old credentials before the
 * change can still succeed after this reading (its client's proof comes a
 * round trip later), so the account is read once more `recheckMs` later,
 * when every exchange begun before the change has ended (AUTH_TIMEOUT), and
 * a password login verified against other credentials than those stored
 * then ends too.
 */
export function register(ctx: ModuleContext, opts: AccountChangesOptions, { users, verifiedWith }: AccountChangesDeps): { dispose(): void } {
  let cursor: number | undefined;
  let busy = false;
  const rechecks = new Set<NodeJS.Timeout>();
  const poll = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    try {
      const next = await users.changesSince(cursor);
      cursor = next.cursor;
      const accounts = new Map<string, AccountChange[]>();
      for (const change of next.changes) {
        const key = `${change.username}@${change.host}`;
        const list = accounts.get(key);
        if (list) list.push(change);
        else accounts.set(key, [change]);
      }
      for (const changes of accounts.values()) {
        await endSessions(changes);
        // The contacts' rosters in memory follow what the deletion did in the store (roster/deleted-contact.ts).
        for (const { change, host, username } of changes) {
          if (change === 'deleted') void ctx.hooks.run('account-deleted', { host, username });
        }
      }
    } catch (err) {
      ctx.log.warn({ err }, 'account changes: cannot read the change log');
    } finally {
      busy = false;
    }
  };
  const sessionsOf = (host: string, username: string): Session[] =>
    [...ctx.sessions.all].filter((s) => s.type === 'c2s' && s.host === host && s.username === username);

  /** Ends the sessions one account's changes leave without valid credentials. */
  async function endSessions(changes: AccountChange[]): Promise<void> {
    const { host, username } = changes[0]!;
    const reason = changes.some((c) => c.change === 'deleted')
      ? { condition: 'not-authorized' as const, text: 'the account was deleted' }
      : { condition: 'reset' as const, text: 'the password was changed: log in again' };
    // null: the account could not be read, so no login is known to be valid.
    let now: UserRecord | undefined | null = null;
    if (sessionsOf(host, username).some((s) => verifiedWith(s) !== undefined)) {
      now = await users.get(host, username).catch((err: unknown) => {
        ctx.log.warn({ err }, 'account changes: cannot read the account: ending all its sessions');
        return null;
      });
    }
    // Listed after the read: a login that completed meanwhile is judged by what it was verified with, too.
    for (const session of sessionsOf(host, username)) {
      const v = verifiedWith(session);
      if (v && now !== null && stillStored(v, now)) continue;
      session.close(reason);
    }
    const timer = setTimeout(() => {
      rechecks.delete(timer);
      void recheck(host, username, reason);
    }, opts.recheckMs);
    timer.unref();
    rechecks.add(timer);
  }

  /** Ends the password logins of the account that were verified against credentials no longer stored. */
  async function recheck(host: string, username: string, reason: CloseReason): Promise<void> {
    if (!sessionsOf(host, username).some((s) => verifiedWith(s) !== undefined)) return;
    let now: UserRecord | undefined;
    try {
      now = await users.get(host, username);
    } catch (err) {
      ctx.log.warn({ err }, 'account changes: cannot read the account again');
      return;
    }
    for (const session of sessionsOf(host, username)) {
      const v = verifiedWith(session);
      if (v && !stillStored(v, now)) session.close(reason);
    }
  }
  void poll();
  const timer = setInterval(() => void poll(), opts.pollMs);
  timer.unref();
  return {
    dispose() {
      clearInterval(timer);
      for (const t of rechecks) clearTimeout(t);
      rechecks.clear();
    },
  };
}

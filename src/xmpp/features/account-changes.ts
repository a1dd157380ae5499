import type { ModuleContext } from '../context.js';
import type { AccountChange, UserStore } from '../../storage/ports/accounts.js';

export interface AccountChangesOptions {
  /** How often the store's change log is read (ms). */
  readonly pollMs: number;
}

export interface AccountChangesDeps {
  /** The store's log of account changes (by any writer). */
  readonly users: Pick<UserStore, 'changesSince'>;
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
 */
export function register(ctx: ModuleContext, opts: AccountChangesOptions, { users }: AccountChangesDeps): { dispose(): void } {
  let cursor: number | undefined;
  let busy = false;
  const poll = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    try {
      const next = await users.changesSince(cursor);
      cursor = next.cursor;
      for (const change of next.changes) {
        endSessions(change);
        // The contacts' rosters in memory follow what the deletion did in the store (roster/deleted-contact.ts).
        if (change.change === 'deleted') void ctx.hooks.run('account-deleted', { host: change.host, username: change.username });
      }
    } catch (err) {
      ctx.log.warn({ err }, 'account changes: cannot read the change log');
    } finally {
      busy = false;
    }
  };
  function endSessions({ host, username, change }: AccountChange): void {
    const reason = change === 'deleted'
      ? { condition: 'not-authorized' as const, text: 'the account was deleted' }
      : { condition: 'reset' as const, text: 'the password was changed: log in again' };
    for (const session of [...ctx.sessions.all]) {
      if (session.type === 'c2s' && session.host === host && session.username === username) session.close(reason);
    }
  }
  void poll();
  const timer = setInterval(() => void poll(), opts.pollMs);
  timer.unref();
  return { dispose: () => clearInterval(timer) };
}

import { performance } from 'node:perf_hooks';
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
  /** When a session's login (of any kind) began its checks, on performance.now()'s clock (sasl.ts); undefined: not known. */
  loginBegan(session: Session): number | undefined;
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
 * tokens with the change), an anonymous one, and all of them if the account
 * cannot be read. A session resumed (XEP-0198), here or taken over from
 * another node, is judged by the login of the stream that resumed it. A SCRAM exchange that read the old credentials before the
 * change can still succeed after this reading (its client's proof comes a
 * round trip later), so the account is read once more `recheckMs` later,
 * when every exchange begun before the change has ended (AUTH_TIMEOUT), and
 * a password login verified against other credentials than those stored
 * then ends too. So does a token login whose checks began before the log was
 * read: it may have read its FAST token or the account before the change, and
 * completed after the sessions were listed. One that began after the reading
 * saw the store as the change left it, and stays.
 *
 * Disposed (the server's end), nothing more is done: a reading or recheck
 * under way acts on nothing and sets no timer.
 */
export function register(ctx: ModuleContext, opts: AccountChangesOptions, { users, verifiedWith, loginBegan }: AccountChangesDeps): { dispose(): void } {
  let cursor: number | undefined;
  let busy = false;
  let disposed = false;
  const rechecks = new Set<NodeJS.Timeout>();
  const poll = async (): Promise<void> => {
    if (busy || disposed) return;
    busy = true;
    try {
      const next = await users.changesSince(cursor);
      // A login whose checks began after this saw the store as the changes read left it; one begun before may not have.
      const readAt = performance.now();
      if (disposed) return;
      cursor = next.cursor;
      if (next.changes.length === 0) return;
      const accounts = new Map<string, Changed>();
      for (const change of next.changes) {
        const key = `${change.username}@${change.host}`;
        const known = accounts.get(key);
        if (known) known.changes.push(change);
        else accounts.set(key, { host: change.host, username: change.username, changes: [change] });
      }
      await endSessions(accounts);
      if (disposed) return;
      // The contacts' rosters in memory follow what the deletion did in the store (roster/deleted-contact.ts).
      for (const { changes } of accounts.values()) {
        for (const { change, host, username } of changes) {
          if (change === 'deleted') void ctx.hooks.run('account-deleted', { host, username });
        }
      }
      const timer = setTimeout(() => {
        rechecks.delete(timer);
        void recheck(accounts, readAt);
      }, opts.recheckMs);
      timer.unref();
      rechecks.add(timer);
    } catch (err) {
      if (!disposed) ctx.log.warn({ err }, 'account changes: cannot read the change log');
    } finally {
      busy = false;
    }
  };

  /**
   * The c2s sessions of the changed accounts, authenticated ones not yet bound included, by account: one
   * pass over the process's sessions for a whole reading of the log (a pass per changed account made a bulk
   * deletion cost the number of sessions times the number of accounts).
   */
  const sessionsOf = (accounts: ReadonlyMap<string, Changed>): Map<string, Session[]> => {
    const found = new Map<string, Session[]>();
    for (const s of ctx.sessions.all) {
      if (s.type !== 'c2s' || s.username === undefined || s.host === undefined) continue;
      const key = `${s.username}@${s.host}`;
      if (!accounts.has(key)) continue;
      const list = found.get(key);
      if (list) list.push(s);
      else found.set(key, [s]);
    }
    return found;
  };
  /**
   * Reads, into `now`, the accounts as stored now that `listed` shows a password login of, once each: not
   * those read or failed (`failed`) before. Not read: no login of the account is known to be valid.
   */
  const readAccounts = async (accounts: ReadonlyMap<string, Changed>, listed: ReadonlyMap<string, Session[]>, now: Map<string, UserRecord | undefined>, failed: Set<string>, warning: string): Promise<void> => {
    for (const [key, { host, username }] of accounts) {
      if (disposed) return;
      if (now.has(key) || failed.has(key) || !listed.get(key)?.some((s) => verifiedWith(s) !== undefined)) continue;
      try {
        now.set(key, await users.get(host, username));
      } catch (err) {
        failed.add(key);
        // Disposed meanwhile: the store may be closed, and nothing is done with what was read.
        if (!disposed) ctx.log.warn({ err }, warning);
      }
    }
  };
  /**
   * The accounts read, and their sessions listed after the reads, so that a login that completed meanwhile is
   * judged by what it was verified with too; one that completed during them, of an account not read because
   * it had no password login before, has its account read then, and is judged as listed.
   */
  const readAndList = async (accounts: ReadonlyMap<string, Changed>, warning: string) => {
    const now = new Map<string, UserRecord | undefined>();
    const failed = new Set<string>();
    await readAccounts(accounts, sessionsOf(accounts), now, failed, warning);
    const listed = sessionsOf(accounts);
    await readAccounts(accounts, listed, now, failed, warning);
    return { now, listed };
  };
  const reasonOf = (changes: readonly AccountChange[]): CloseReason => (changes.some((c) => c.change === 'deleted')
    ? { condition: 'not-authorized', text: 'the account was deleted' }
    : { condition: 'reset', text: 'the password was changed: log in again' });

  /**
   * Reads the changed accounts and lists their sessions, then ends each session `ends` picks, given the account's
   * record as read (`undefined` when it could not be read) and whether it was read.
   */
  async function endWhere(
    accounts: ReadonlyMap<string, Changed>,
    warning: string,
    ends: (session: Session, read: boolean, record: UserRecord | undefined) => boolean,
  ): Promise<void> {
    const { now, listed } = await readAndList(accounts, warning);
    if (disposed) return;
    for (const [key, { changes }] of accounts) {
      const reason = reasonOf(changes);
      for (const session of listed.get(key) ?? []) {
        if (ends(session, now.has(key), now.get(key))) session.close(reason);
      }
    }
  }

  /** Ends the sessions the changes leave without valid credentials. */
  function endSessions(accounts: ReadonlyMap<string, Changed>): Promise<void> {
    return endWhere(accounts, 'account changes: cannot read the account: ending all its sessions', (session, read, record) => {
      const v = verifiedWith(session);
      return !(v && read && stillStored(v, record));
    });
  }

  /**
   * Ends the password logins of the accounts that were verified against credentials no longer stored (those of
   * an account that cannot be read stay), and the other logins that began before the changes were read at `readAt`.
   */
  function recheck(accounts: ReadonlyMap<string, Changed>, readAt: number): Promise<void> {
    return endWhere(accounts, 'account changes: cannot read the account again', (session, read, record) => {
      const v = verifiedWith(session);
      if (v) return read && !stillStored(v, record);
      const began = loginBegan(session);
      return began === undefined || began <= readAt;
    });
  }
  void poll();
  const timer = setInterval(() => void poll(), opts.pollMs);
  timer.unref();
  return {
    dispose() {
      disposed = true;
      clearInterval(timer);
      for (const t of rechecks) clearTimeout(t);
      rechecks.clear();
    },
  };
}

/** One account's changes in a reading of the log. */
interface Changed {
  readonly host: string;
  readonly username: string;
  readonly changes: AccountChange[];
}

import { randomBytes } from 'node:crypto';
import type { JwtFailureReason, JwtVerifier } from '../../sasl/jwt.js';
import type { ModuleContext } from '../context.js';
import type { UserStore, StoredCredentials } from '../../storage/ports/accounts.js';
import { UserExistsError } from '../../storage/ports/accounts.js';
import type { Session } from '../session.js';

export interface TokenLoginOptions {
  /** JWT_CREATE_USERS: an account that does not exist yet is created at its first token login. */
  readonly createUsers: boolean;
}

export interface TokenLoginDeps {
  readonly verifier: JwtVerifier;
  readonly users: Pick<UserStore, 'get' | 'create'>;
  /** SCRAM credentials for a password nobody knows (a created token user logs in only with tokens). */
  readonly unusableCredentials: (password: string) => Promise<StoredCredentials>;
}

export type TokenOutcome =
  | { readonly ok: true; readonly username: string }
  | { readonly ok: false; readonly condition: 'not-authorized' | 'temporary-auth-failure'; readonly reason: JwtFailureReason | 'storage' };

/** Token login for one session: SASL PLAIN's password or OAUTHBEARER's bearer token is a JWT (sasl.ts asks). */
export interface TokenLogin {
  login(session: Session, token: string, username?: string): Promise<TokenOutcome>;
}

/**
 * Token login (issue 15 item 5): the JWT is verified (src/sasl/jwt.ts), then
 * its user must exist, or is created when JWT_CREATE_USERS allows. Each
 * outcome is counted by its reason (a closed set); the token itself is never
 * logged or kept.
 */
export function createTokenLogin(ctx: ModuleContext, opts: TokenLoginOptions, deps: TokenLoginDeps): TokenLogin {
  const refuse = (reason: JwtFailureReason | 'storage'): TokenOutcome => {
    ctx.metrics.tokenLogin('failure', reason);
    // The server's trouble (key set or database unreachable) is not the client's fault: it may retry.
    const temporary = reason === 'key-set-unavailable' || reason === 'storage';
    return { ok: false, condition: temporary ? 'temporary-auth-failure' : 'not-authorized', reason };
  };

  async function ensureUser(host: string, username: string): Promise<boolean> {
    if (await deps.users.get(host, username)) return true;
    if (!opts.createUsers) return false;
    try {
      await deps.users.create(host, username, await deps.unusableCredentials(randomBytes(32).toString('base64')));
      ctx.log.info({ event: 'token-user-created', jid: `${username}@${host}` }, 'account created at its first token login');
    } catch (err) {
      // Two first logins at once: the other one created it.
      if (!(err instanceof UserExistsError)) throw err;
    }
    return true;
  }

  return {
    async login(session, token, username) {
      const host = session.host!;
      const result = await deps.verifier.verify(token, host, username);
      if (!result.ok) return refuse(result.reason);
      try {
        if (!await ensureUser(host, result.username)) return refuse('unknown-user');
      } catch (err) {
        ctx.log.warn({ err, session: session.logId }, 'account lookup for a token login failed');
        return refuse('storage');
      }
      ctx.metrics.tokenLogin('success', 'ok');
      return { ok: true, username: result.username };
    },
  };
}

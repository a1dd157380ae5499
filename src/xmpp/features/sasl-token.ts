import { randomBytes } from 'node:crypto';
import type { JwtFailureReason, JwtVerifier } from '../../sasl/jwt.js';
import type { ModuleContext } from '../context.js';
import type { UserRecord, UserStore, StoredCredentials } from '../../storage/ports/accounts.js';
import { UserExistsError } from '../../storage/ports/accounts.js';
import type { Session } from '../session.js';
import type { SaslFailureCondition } from '../../sasl/scram.js';
import { normalizeLocal, tryNormalizeDomain } from '../../jid/index.js';
import { authzidAccepted } from './sasl-authzid.js';
import { errorChallenge, parseOauthBearer } from '../../sasl/oauthbearer.js';

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

/** Why a token was refused beyond the token itself: the account's password changed after it was minted. */
type AccountReason = 'storage' | 'credentials-changed';

export type TokenOutcome =
  | { readonly ok: true; readonly username: string }
  | { readonly ok: false; readonly condition: 'not-authorized' | 'temporary-auth-failure'; readonly reason: JwtFailureReason | AccountReason };

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
  const refuse = (reason: JwtFailureReason | AccountReason): TokenOutcome => {
    ctx.metrics.tokenLogin('failure', reason);
    // The server's trouble (key set or database unreachable) is not the client's fault: it may retry.
    const temporary = reason === 'key-set-unavailable' || reason === 'storage';
    return { ok: false, condition: temporary ? 'temporary-auth-failure' : 'not-authorized', reason };
  };

  /** The account, or 'created' when this login made it (JWT_CREATE_USERS), or undefined when there is none. */
  async function ensureUser(host: string, username: string): Promise<UserRecord | 'created' | undefined> {
    const user = await deps.users.get(host, username);
    if (user) return user;
    if (!opts.createUsers) return undefined;
    try {
      await deps.users.create(host, username, await deps.unusableCredentials(randomBytes(32).toString('base64')));
      ctx.log.info({ event: 'token-user-created', jid: `${username}@${host}` }, 'account created at its first token login');
    } catch (err) {
      // Two first logins at once: the other one created it.
      if (!(err instanceof UserExistsError)) throw err;
    }
    return 'created';
  }

  return {
    async login(session, token, username) {
      const host = session.host!;
      const result = await deps.verifier.verify(token, host, username);
      if (!result.ok) return refuse(result.reason);
      let user: UserRecord | 'created' | undefined;
      try {
        user = await ensureUser(host, result.username);
      } catch (err) {
        ctx.log.warn({ err, session: session.logId }, 'account lookup for a token login failed');
        return refuse('storage');
      }
      if (user === undefined) return refuse('unknown-user');
      if (user !== 'created' && !mintedSinceCredentials(result.issuedAt, user)) return refuse('credentials-changed');
      ctx.metrics.tokenLogin('success', 'ok');
      return { ok: true, username: result.username };
    },
  };
}

/**
 * Whether a token issued at `iat` (seconds; undefined: no iat claim) was
 * minted after the account's credentials last changed: a password change
 * ends the token logins minted before it, as it ends the FAST tokens. A
 * token without iat cannot show it is newer, so it is refused once the
 * password has changed since the account was made. iat has whole seconds: a
 * token of the second the change happened in is taken (a web app that mints
 * one right after the change must not be refused for up to a second).
 */
export function mintedSinceCredentials(iat: number | undefined, user: Pick<UserRecord, 'createdAt' | 'credentialsChangedAt'>): boolean {
  if (user.credentialsChangedAt <= user.createdAt) return true;
  return iat !== undefined && iat >= Math.floor(user.credentialsChangedAt / 1000);
}

/** The SASL exchange a token is checked in (sasl.ts's Exchange): who was named, and why a token was refused, for its log line. */
export interface TokenExchangeState { given?: string; account?: string; reason?: string }

/** What the SASL engine lends a token exchange (sasl.ts). */
export interface TokenExchangeOps {
  /** Whether the exchange is still the session's own after an await (no <abort/>, no end). */
  current(): boolean;
  fail(condition: SaslFailureCondition, text?: string): void;
  succeed(username: string): void | Promise<unknown>;
  /** The account is being throttled (the refusal has been sent). */
  throttled(account: string): boolean;
  /** RFC 7628 §3.2.2: a challenge with the error status; the failure waits for the client's kvsep. */
  refuseAfterAck(data: string): void;
}

/** SASL PLAIN whose password is a JWT (as ejabberd takes it): the authcid must be the user the token names. */
export async function plainWithToken(
  tokens: TokenLogin, session: Session, ex: TokenExchangeState, ops: TokenExchangeOps, plain: { token: string; username: string; authzid: string },
): Promise<void> {
  const outcome = await tokens.login(session, plain.token, plain.username);
  if (!ops.current()) return;
  if (!outcome.ok) {
    ex.reason = outcome.reason;
    return ops.fail(outcome.condition);
  }
  // RFC 4616 §2: an authzid may only name the user themself.
  if (!authzidAccepted(session, plain.authzid, outcome.username)) return ops.fail('invalid-authzid');
  await ops.succeed(outcome.username);
}

/** The user an OAUTHBEARER authzid names at this host (RFC 7628 §3.1: gs2-header's a=), or null when it names another. */
function authzidUser(authzid: string, host: string): string | null {
  const at = authzid.lastIndexOf('@');
  // RFC 7622 §3.2: compared after enforcement, so 'alice@localhost.' names localhost.
  if (at > 0 && tryNormalizeDomain(authzid.slice(at + 1)) !== host) return null;
  try { return normalizeLocal(at > 0 ? authzid.slice(0, at) : authzid); } catch { return null; }
}

/** RFC 7628 §3.1: the initial client response; a refused token gets §3.2.2's error challenge before the failure. */
export async function oauthBearer(tokens: TokenLogin, session: Session, ex: TokenExchangeState, ops: TokenExchangeOps, message: string): Promise<void> {
  const msg = parseOauthBearer(message);
  if (msg.kind !== 'initial') return ops.fail('malformed-request', msg.kind === 'malformed' ? msg.text : 'no initial response');
  let username: string | undefined;
  if (msg.authzid !== undefined) {
    ex.given = msg.authzid;
    const user = authzidUser(msg.authzid, session.host!);
    if (user === null || !authzidAccepted(session, msg.authzid, user)) return ops.fail('invalid-authzid');
    ex.account = username = user;
    if (ops.throttled(user)) return;
  }
  const outcome = await tokens.login(session, msg.token, username);
  if (!ops.current()) return;
  if (outcome.ok) {
    await ops.succeed(outcome.username);
    return;
  }
  if (outcome.condition !== 'not-authorized') return ops.fail(outcome.condition);
  ex.reason = outcome.reason;
  ops.refuseAfterAck(errorChallenge('invalid_token'));
}

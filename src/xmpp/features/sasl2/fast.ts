/**
 * FAST (XEP-0484, urn:xmpp:fast:0): log in again with a token, in one round
 * trip, without the password. The API SASL2 uses (FastPort, index.ts):
 *
 * - feature(): `<fast xmlns='urn:xmpp:fast:0'><mechanism>HT-SHA-256-NONE</mechanism></fast>`,
 *   offered in SASL2's `<inline/>`.
 * - token(session, agent, authenticate): after a successful SASL2 login whose
 *   `<authenticate/>` carried `<request-token xmlns='urn:xmpp:fast:0'
 *   mechanism='HT-SHA-256-NONE'/>` and a `<user-agent id/>`, a new token:
 *   `<token xmlns='urn:xmpp:fast:0' token='…' expiry='ISO 8601'/>` for `<success/>`.
 *   It expires FAST_TOKEN_TTL seconds later and is bound to the account, the
 *   user-agent id and the mechanism.
 * - mechanism('HT-SHA-256-NONE', agent, fast): checks `<authenticate
 *   mechanism='HT-SHA-256-NONE'>` whose initial response is `username NUL
 *   HMAC-SHA-256(token, "Initiator")` (draft-schmaus-kitten-sasl-ht); the
 *   `<additional-data/>` of `<success/>` is HMAC-SHA-256(token, "Responder").
 *
 * Rotation (§3.4, §5.1): on request, or unasked when a token past half
 * its life logs in, a new token waits in the 'new' slot and the one
 * that logged in stays valid until the new one is used; then the older is
 * retired, and a login with it fails (not-authorized) and is counted as
 * 'replayed' (xmpp_fast_tokens_total). `<fast invalidate='true'/>` retires
 * the token used. An expired token gets credentials-expired (§4.2), then
 * the client logs in with its password. A new password or a deleted
 * account ends the account's tokens (storage triggers); a token is withheld
 * when the password or token that logged in is no longer stored once the
 * new token is (a change during the login).
 *
 * Not offered: HT-SHA-256-UNIQ and -ENDP need TLS channel bindings
 * (XEP-0440), and TLS ends at the reverse proxy, not here. TLS 0-RTT is not
 * offered either, so `count` is not needed (§3.3).
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { NS, x, type XmlElement } from '../../../xml/index.js';
import { normalizeLocal } from '../../../jid/index.js';
import type { ModuleContext } from '../../context.js';
import type { Session } from '../../session.js';
import type { FastEvent } from '../../metrics-port.js';
import type { FastToken, FastTokenStore } from '../../../storage/ports/fast-tokens.js';
import type { UserStore } from '../../../storage/ports/accounts.js';
import { stillStored, type VerifiedCredentials } from '../sasl.js';
import type { OneShotMechanism } from '../sasl-wire.js';
import type { FastPort } from './index.js';

export const HT_SHA_256_NONE = 'HT-SHA-256-NONE';

export interface FastOptions {
  /** FAST_TOKEN_TTL, seconds. */
  readonly ttl: number;
  /** User agents per account that keep tokens; the next one pushes out the one whose token expires first. */
  readonly maxAgents: number;
  readonly now: () => number;
  /** ALLOW_INSECURE_PLAIN: a token is a bearer secret like PLAIN's password; without it FAST is for secure streams only. */
  readonly allowInsecure: boolean;
}

export interface FastDeps {
  readonly tokens: FastTokenStore;
  /** The accounts: a token is handed out only while the password that logged in is still the stored one. */
  readonly users: Pick<UserStore, 'get'>;
  /** The stored credentials that verified the session's password (sasl.ts), if a password logged it in. */
  readonly verifiedWith: (session: Session) => VerifiedCredentials | undefined;
}

type Refusal = Exclude<FastEvent, 'issued' | 'used'>;

const hmac = (key: string, data: string): Buffer => createHmac('sha256', Buffer.from(key, 'utf8')).update(data).digest();
/** The SHA-256 of a proof: what is stored and looked up (a timing difference in the lookup reveals nothing usable). */
const storedKeyOf = (proof: Buffer): string => createHash('sha256').update(proof).digest('hex');

export function createFast(ctx: ModuleContext, opts: FastOptions, { tokens, users, verifiedWith }: FastDeps): FastPort & { dispose(): void } {
  /** The token a session logged in with, until <success/> is written: due for rotation or not. */
  const loggedInWith = new WeakMap<Session, FastToken>();
  /** The stored key of the token a session logged in with, invalidated or not, until <success/> is written. */
  const provenBy = new WeakMap<Session, string>();
  const refuse = (event: Refusal, account: string, condition: 'not-authorized' | 'credentials-expired' = 'not-authorized') => {
    ctx.metrics.fast(event);
    ctx.log.info({ event: 'fast-refused', reason: event, user: account.slice(0, 128) }, 'FAST token refused');
    return { ok: false as const, condition, text: condition === 'credentials-expired' ? 'the token has expired' : undefined };
  };

  /** XEP-0484 §6: "FAST authentication MUST only be performed over a secure connection" (HT-*-NONE's proof can be replayed). */
  const secure = (session: Session): boolean => session.secure || opts.allowInsecure;

  function check(name: string, agent: string | undefined, fast: XmlElement | undefined): OneShotMechanism {
    return async (session, initial, ex) => {
      if (!secure(session)) return { ok: false, condition: 'encryption-required', text: 'FAST needs a TLS-protected connection' };
      const message = Buffer.from(initial, 'latin1');
      const nul = message.indexOf(0);
      if (nul <= 0) return { ok: false, condition: 'malformed-request', text: 'expected username NUL proof' };
      ex.given = message.subarray(0, nul).toString('utf8');
      let username: string;
      try { username = normalizeLocal(ex.given); } catch { return refuse('unknown', ex.given); }
      ex.account = username;
      const proof = message.subarray(nul + 1);
      const token = await tokens.find(session.host!, username, storedKeyOf(proof));
      const why = token === undefined ? 'unknown' : refusal(token, name, agent, opts.now());
      if (why === 'expired') return refuse(why, username, 'credentials-expired');
      if (why !== undefined) return refuse(why, username);
      if (fast?.attr('invalidate') === 'true' || fast?.attr('invalidate') === '1') {
        // §3.4: a use invalidates the client's tokens with an earlier expiry; §3.5: then this one too (log out).
        await tokens.used(token!.host, username, token!.agent, token!.storedKey);
        await tokens.retire(token!.host, username, token!.storedKey);
      } else {
        await tokens.used(token!.host, username, token!.agent, token!.storedKey);
        loggedInWith.set(session, token!);
      }
      provenBy.set(session, token!.storedKey);
      ctx.metrics.fast('used');
      return { ok: true, username, data: Buffer.from(token!.serverKey, 'base64').toString('latin1') };
    };
  }

  const timer = setInterval(() => {
    tokens.expire(opts.now()).catch((err: unknown) => ctx.log.warn({ err }, 'FAST token expiry failed'));
  }, 3600_000);
  timer.unref();

  return {
    feature: (session) => (secure(session) ? x('fast', { xmlns: NS.FAST }, x('mechanism', {}, HT_SHA_256_NONE)) : undefined),
    mechanism: (name, agent, fast) => (name === HT_SHA_256_NONE ? check(name, agent, fast) : undefined),
    async token(session, agent, request) {
      const used = loggedInWith.get(session);
      const proven = provenBy.get(session);
      loggedInWith.delete(session);
      provenBy.delete(session);
      // §3.4: a token past half its life is rotated even when the client did not ask.
      const due = used !== undefined && used.expiresAt - opts.now() < (opts.ttl * 1000) / 2;
      const wanted = request.getChild('request-token', NS.FAST)?.attr('mechanism') ?? (due ? used.mechanism : undefined);
      // §3.2: a token for an advertised mechanism, bound to a user agent; none for throw-away accounts,
      // nor over a stream that is not secure (§6).
      if (wanted !== HT_SHA_256_NONE || agent === undefined || session.anonymous || !secure(session)) return undefined;
      const secret = randomBytes(32).toString('base64url');
      const expiresAt = opts.now() + opts.ttl * 1000;
      const host = session.host!;
      const username = session.username!;
      const storedKey = storedKeyOf(hmac(secret, 'Initiator'));
      try {
        await tokens.issue({
          host, username, agent, mechanism: wanted, expiresAt, storedKey, serverKey: hmac(secret, 'Responder').toString('base64'),
        }, opts.maxAgents);
        // §3.6 (a new password ends the tokens): the password or token that logged in was read before
        // this token was stored; a change in between ended the account's tokens before this one existed.
        // Checked after the token is stored, so a change after the check ends it with the others.
        if (!await stillValid(session, host, username, proven)) {
          ctx.log.info({ event: 'fast-not-issued', session: session.logId, user: username }, 'FAST token withheld: the account changed during the login');
          await tokens.retire(host, username, storedKey);
          return undefined;
        }
      } catch (err) {
        // The login stands; only the token is missing, and the client keeps using its password.
        ctx.log.warn({ err, session: session.logId }, 'FAST token could not be stored or checked');
        return undefined;
      }
      ctx.metrics.fast('issued');
      return x('token', { xmlns: NS.FAST, token: secret, expiry: new Date(expiresAt).toISOString() });
    },
    dispose: () => clearInterval(timer),
  };

  /** Whether what logged the session in (a FAST token, or a password's stored credentials) is still there. */
  async function stillValid(session: Session, host: string, username: string, proven: string | undefined): Promise<boolean> {
    if (proven !== undefined) return (await tokens.find(host, username, proven)) !== undefined;
    const verified = verifiedWith(session);
    return verified === undefined || stillStored(verified, await users.get(host, username));
  }
}

/** Why a stored token may not log this client in, if it may not. */
function refusal(token: FastToken, mechanism: string, agent: string | undefined, now: number): Refusal | undefined {
  if (token.slot === 'retired') return 'replayed';
  // §4.1: tokens are bound to the client (its user-agent id) and to the mechanism.
  if (token.agent !== agent) return 'wrong-agent';
  if (token.mechanism !== mechanism) return 'wrong-mechanism';
  if (token.expiresAt <= now) return 'expired';
  return undefined;
}

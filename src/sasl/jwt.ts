/**
 * Token login for web apps: a JWT (RFC 7519) minted by the web app's backend,
 * verified with jose (signature, algorithm allow-list, exp/nbf, iss, aud), and
 * the user it names. Never a hand-written verifier: the classic JWT mistakes
 * (alg none, HMAC with a public key, unchecked claims) are jose's to refuse.
 *
 * The SASL layer (PLAIN's password, OAUTHBEARER's bearer token) calls
 * verify(); this module knows no session, store or transport.
 */
import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { normalizeLocal, tryNormalizeDomain } from '../jid/index.js';

export type JwtAlgorithm = 'HS256' | 'RS256' | 'ES256';

export interface JwtOptions {
  /** JWT_SECRET: the HMAC key (HS256); exclusive with jwksUrl. */
  readonly secret?: string;
  /** JWT_JWKS_URL: a key set of public keys (RS256, ES256), cached and fetched again for an unknown kid. */
  readonly jwksUrl?: string;
  readonly algorithms: readonly JwtAlgorithm[];
  readonly issuer?: string;
  readonly audience?: string;
  /** The claim holding the user's bare JID. */
  readonly jidClaim: string;
  readonly clockToleranceSeconds: number;
  readonly jwksCacheMaxAgeMs: number;
  readonly jwksCooldownMs: number;
}

/**
 * Why a token was refused: the log line's `reason` and the metric label
 * (a closed set, so the label stays bounded). 'key-set-unavailable' is the
 * server's trouble, not the token's (temporary-auth-failure).
 */
export type JwtFailureReason =
  | 'malformed' | 'alg-none' | 'alg-not-allowed' | 'bad-signature' | 'unknown-key' | 'key-set-unavailable'
  | 'expired' | 'not-yet-valid' | 'wrong-issuer' | 'wrong-audience' | 'missing-claim' | 'invalid-claim'
  | 'bad-jid-claim' | 'other-domain' | 'user-mismatch' | 'unknown-user';

export type JwtResult =
  /** `issuedAt`: the token's `iat` (seconds since the epoch, RFC 7519 §4.1.6), when it has one. */
  | { readonly ok: true; readonly username: string; readonly issuedAt?: number }
  | { readonly ok: false; readonly reason: JwtFailureReason };

export interface JwtVerifier {
  /**
   * Verifies `token` for a login at `host`; `username` is the user the client
   * named (PLAIN's authcid, OAUTHBEARER's authzid), if it named one.
   */
  verify(token: string, host: string, username?: string): Promise<JwtResult>;
}

/** Three base64url parts: what a compact JWS looks like (RFC 7515 §7.1), so PLAIN can tell a token from a password. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * Whether `password` is meant as a token: a compact JWS whose header decodes
 * and names an `alg`. Anything else is an ordinary password.
 */
export function looksLikeJwt(password: string): boolean {
  return COMPACT_JWS.test(password) && headerAlg(password) !== undefined;
}

/** The `alg` of a compact JWS's protected header; undefined when there is no such header (jose throws a TypeError). */
function headerAlg(token: string): string | undefined {
  try {
    const { alg } = decodeProtectedHeader(token);
    return typeof alg === 'string' ? alg : undefined;
  } catch {
    return undefined;
  }
}

function failed(reason: JwtFailureReason): JwtResult {
  return { ok: false, reason };
}

/** jose's error classes and claim names, mapped onto the bounded reasons. */
function reasonOf(err: unknown, remote: boolean): JwtFailureReason {
  if (err instanceof errors.JWTExpired) return 'expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return 'missing-claim';
    const byClaim: Record<string, JwtFailureReason> = { nbf: 'not-yet-valid', iss: 'wrong-issuer', aud: 'wrong-audience' };
    return byClaim[err.claim] ?? 'invalid-claim';
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad-signature';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'alg-not-allowed';
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return 'unknown-key';
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return 'key-set-unavailable';
  if (err instanceof errors.JOSEError) return 'malformed';
  // Not jose's own: with a key set, it could not be fetched (fetch's TypeError, a refused connection).
  return remote ? 'key-set-unavailable' : 'malformed';
}

/** The user the JID claim names at `host`, or why it names none. */
function userOf(payload: JWTPayload, claim: string, host: string): JwtResult {
  const jid = payload[claim];
  if (typeof jid !== 'string' || jid.length > 3071) return failed('bad-jid-claim');
  const at = jid.lastIndexOf('@');
  if (at <= 0 || jid.includes('/')) return failed('bad-jid-claim');
  // RFC 7622 §3.2: compared after enforcement, so 'alice@localhost.' names localhost.
  if (tryNormalizeDomain(jid.slice(at + 1)) !== host) return failed('other-domain');
  try {
    return { ok: true, username: normalizeLocal(jid.slice(0, at)) };
  } catch {
    return failed('bad-jid-claim');
  }
}

function keyOf(opts: JwtOptions): Uint8Array | JWTVerifyGetKey {
  if (opts.secret !== undefined) return new TextEncoder().encode(opts.secret);
  // jose caches the set, fetches it again after cacheMaxAge, and at most once per cooldown for an unknown kid.
  return createRemoteJWKSet(new URL(opts.jwksUrl!), {
    cacheMaxAge: opts.jwksCacheMaxAgeMs, cooldownDuration: opts.jwksCooldownMs, timeoutDuration: 5000,
  });
}

export function createJwtVerifier(opts: JwtOptions): JwtVerifier {
  if ((opts.secret === undefined) === (opts.jwksUrl === undefined)) throw new Error('a JWT verifier needs a secret or a JWKS URL, not both');
  const key = keyOf(opts);
  const options = {
    algorithms: [...opts.algorithms],
    clockTolerance: opts.clockToleranceSeconds,
    // A token without exp would log in for ever (RFC 7519 §4.1.4 makes it optional; we do not).
    requiredClaims: ['exp'],
    ...(opts.issuer !== undefined ? { issuer: opts.issuer } : {}),
    ...(opts.audience !== undefined ? { audience: opts.audience } : {}),
  };
  return {
    async verify(token, host, username) {
      // RFC 7518 §3.6: 'none' is never accepted; named apart from other algorithms for the log.
      const alg = headerAlg(token);
      if (alg === undefined) return failed('malformed');
      if (alg === 'none') return failed('alg-none');
      let payload: JWTPayload;
      try {
        payload = typeof key === 'function' ? (await jwtVerify(token, key, options)).payload : (await jwtVerify(token, key, options)).payload;
      } catch (err) {
        return failed(reasonOf(err, typeof key === 'function'));
      }
      const user = userOf(payload, opts.jidClaim, host);
      if (!user.ok) return user;
      if (username !== undefined && user.username !== username) return failed('user-mismatch');
      // jose has checked that an iat present is a number.
      return payload.iat === undefined ? user : { ...user, issuedAt: payload.iat };
    },
  };
}

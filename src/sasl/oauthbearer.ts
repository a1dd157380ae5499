/**
 * SASL OAUTHBEARER (RFC 7628), the message grammar only; the SASL layer does
 * the base64 and the exchange, jwt.ts the token.
 *
 * Written by hand: a few lines of string grammar (RFC 7628 §3.1) for which
 * no maintained npm server-side parser exists.
 */

/** RFC 7628 §3.1: kvsep = %x01 */
const KVSEP = '\x01';
/** RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i;
/** key = 1*(ALPHA); value = *(VCHAR / SP / HTAB / CR / LF) */
const KVPAIR = /^([A-Za-z]+)=([\x21-\x7E \t\r\n]*)$/;

export type OauthBearerMessage =
  /** The initial client response: the bearer token and the authzid, if the client gave one. */
  | { readonly kind: 'initial'; readonly token: string; readonly authzid: string | undefined }
  /** RFC 7628 §3.2.3: the client's single kvsep that acknowledges the server's error challenge. */
  | { readonly kind: 'acknowledge' }
  | { readonly kind: 'malformed'; readonly text: string };

const malformed = (text: string): OauthBearerMessage => ({ kind: 'malformed', text });

/** gs2-header = gs2-cbind-flag "," [ authzid ] ","; authzid = "a=" saslname (RFC 5801 §4). */
function parseAuthzid(flag: string, authz: string): string | undefined | null {
  // OAUTHBEARER has no channel binding (RFC 7628 §3.1): 'p=' cannot be honoured.
  if (flag !== 'n' && flag !== 'y') return null;
  if (authz === '') return undefined;
  if (!authz.startsWith('a=') || /=(?!2C|3D)/.test(authz.slice(2))) return null;
  return authz.slice(2).replace(/=(2C|3D)/g, (_m, code: string) => (code === '2C' ? ',' : '='));
}

/** client-resp = (gs2-header kvsep *kvpair kvsep) / kvsep */
export function parseOauthBearer(message: string): OauthBearerMessage {
  if (message === KVSEP) return { kind: 'acknowledge' };
  const [gs2 = '', ...rest] = message.split(KVSEP);
  const [flag = '', authz = '', after, ...more] = gs2.split(',');
  if (after !== '' || more.length > 0) return malformed('invalid gs2 header');
  const authzid = parseAuthzid(flag, authz);
  if (authzid === null) return malformed('invalid gs2 header');
  // gs2-header kvsep kvpair* kvsep: split on kvsep, the last two parts are empty.
  if (rest.length < 2 || rest.pop() !== '' || rest.pop() !== '') return malformed('missing kvsep');
  const pairs = new Map<string, string>();
  for (const pair of rest) {
    const m = KVPAIR.exec(pair);
    if (!m) return malformed('invalid key/value pair');
    pairs.set(m[1]!, m[2]!);
  }
  const token = BEARER.exec(pairs.get('auth') ?? '')?.[1];
  if (token === undefined) return malformed('no Bearer token in auth');
  return { kind: 'initial', token, authzid };
}

/**
 * RFC 7628 §3.2.2: a failed token is answered with a challenge holding this
 * JSON (status is an RFC 6750 §3.1 error code), then, after the client's
 * kvsep, with the failure.
 */
export function errorChallenge(status: 'invalid_token' | 'invalid_request'): string {
  return JSON.stringify({ status });
}

/**
 * SCRAM-SHA-1 (RFC 5802) and SCRAM-SHA-256 (RFC 7677), server side, without channel binding
 * (the -PLUS variants are never offered). Works on the decoded message strings; the SASL layer
 * does the base64 around them.
 *
 * Written by hand because the protocol is a small string grammar (RFC 5802 §7) on top of
 * node:crypto primitives, and the npm SCRAM packages are client-side or pull in extra deps.
 */
import { createHash, createHmac, pbkdf2, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { saslprep } from './saslprep.js';
import { randomId } from '../util/random.js';

export type ScramHash = 'sha1' | 'sha256';
export const SCRAM_MECHANISMS: Record<string, ScramHash> = {
  'SCRAM-SHA-1': 'sha1', 'SCRAM-SHA-256': 'sha256',
};
const KEY_LENGTH: Record<ScramHash, number> = { sha1: 20, sha256: 32 };

/** What the server stores per user and hash (RFC 5802 §3); salt and keys are base64. */
export interface ScramCredentials { salt: string; iterations: number; storedKey: string; serverKey: string }

/** RFC 6120 §6.5 SASL error conditions. */
export type SaslFailureCondition = 'not-authorized' | 'malformed-request' | 'invalid-mechanism'
  | 'aborted' | 'encryption-required' | 'temporary-auth-failure' | 'account-disabled'
  | 'credentials-expired' | 'incorrect-encoding' | 'invalid-authzid' | 'mechanism-too-weak';

export type ScramStep =
  | { kind: 'challenge'; data: string }
  | { kind: 'success'; data: string; username: string }
  | { kind: 'failure'; condition: SaslFailureCondition; text?: string };
type Failure = Extract<ScramStep, { kind: 'failure' }>;

// ---- key derivation (RFC 5802 §3) ----
const hmac = (hash: ScramHash, key: Buffer, data: string | Buffer): Buffer =>
  createHmac(hash, key).update(data).digest();
const digest = (hash: ScramHash, data: Buffer): Buffer => createHash(hash).update(data).digest();
const pbkdf2Async = promisify(pbkdf2);

function assertIterations(iterations: number): void {
  if (!Number.isSafeInteger(iterations) || iterations < 1) {
    throw new RangeError(`invalid SCRAM iteration count ${iterations}`);
  }
}

/** StoredKey = H(HMAC(SaltedPassword, "Client Key")); ServerKey = HMAC(SaltedPassword, "Server Key"). */
function toCredentials(hash: ScramHash, salted: Buffer, salt: Buffer, i: number): ScramCredentials {
  return {
    salt: salt.toString('base64'),
    iterations: i,
    storedKey: digest(hash, hmac(hash, salted, 'Client Key')).toString('base64'),
    serverKey: hmac(hash, salted, 'Server Key').toString('base64'),
  };
}

/**
 * SaltedPassword = Hi(Normalize(password), salt, i), Hi = PBKDF2 with HMAC-H (RFC 5802 §2.2).
 * Throws if SASLprep rejects the password or the iteration count is not a positive integer.
 */
export function deriveCredentials(
  hash: ScramHash, password: string, iterations: number, salt: Buffer = randomBytes(16),
): ScramCredentials {
  assertIterations(iterations);
  const salted = pbkdf2Sync(saslprep(password), salt, iterations, KEY_LENGTH[hash], hash);
  return toCredentials(hash, salted, salt, iterations);
}

/** Same as deriveCredentials but runs PBKDF2 on the libuv thread pool (bulk import). */
export async function deriveCredentialsAsync(
  hash: ScramHash, password: string, iterations: number, salt: Buffer = randomBytes(16),
): Promise<ScramCredentials> {
  assertIterations(iterations);
  const salted = await pbkdf2Async(saslprep(password), salt, iterations, KEY_LENGTH[hash], hash);
  return toCredentials(hash, salted, salt, iterations);
}

const b64 = (s: string): Buffer => Buffer.from(s, 'base64');
const safeEqual = (a: Buffer, b: Buffer): boolean => a.length === b.length && timingSafeEqual(a, b);

/**
 * For SASL PLAIN: re-derive with the stored salt/iterations, compare both keys in constant time.
 * PBKDF2 runs on the libuv thread pool: at 4096+ iterations it takes milliseconds, which on the
 * event loop would let a stream of PLAIN attempts stall every other session.
 */
export async function verifyPassword(hash: ScramHash, creds: ScramCredentials, password: string): Promise<boolean> {
  let derived: ScramCredentials;
  try {
    derived = await deriveCredentialsAsync(hash, password, creds.iterations, b64(creds.salt));
  } catch (err) {
    if (err instanceof RangeError) throw err; // corrupt stored credentials, not a wrong password
    return false; // SASLprep rejected the password, so it cannot be the stored one
  }
  const storedOk = safeEqual(b64(derived.storedKey), b64(creds.storedKey));
  const serverOk = safeEqual(b64(derived.serverKey), b64(creds.serverKey));
  return storedOk && serverOk; // both compared before combining
}

// ---- message grammar (RFC 5802 §7); failure texts are RFC 5802 server-error-values ----
const fail = (condition: SaslFailureCondition, text?: string): Failure =>
  text === undefined ? { kind: 'failure', condition } : { kind: 'failure', condition, text };
const malformed = (text: string): Failure => fail('malformed-request', text);
const isFailure = <T extends object>(v: T | Failure): v is Failure => 'kind' in v && v.kind === 'failure';

const PRINTABLE = /^[\x21-\x2B\x2D-\x7E]+$/; // printable = %x21-2B / %x2D-7E (no ',')
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const ATTR_VAL = /^[A-Za-z]=[^,]+$/; // attr-val = ALPHA "=" value
const CB_FLAG_P = /^p=[A-Za-z0-9.-]+$/; // gs2-cbind-flag "p=" cb-name

const decodeBase64 = (s: string): Buffer | undefined => (BASE64.test(s) ? b64(s) : undefined);

/** saslname: '=' only as "=2C" / "=3D", no NUL, not empty (RFC 5802 §5.1, §7). */
function decodeSaslname(s: string): string | undefined {
  if (s === '' || s.includes('\0') || /=(?!2C|3D)/.test(s)) return undefined;
  return s.replace(/=(2C|3D)/g, (_m, code: string) => (code === '2C' ? ',' : '='));
}

/** Trailing extensions: unknown ones are ignored; "m=" is mandatory and unsupported (§5.1). */
function checkExtensions(attrs: readonly string[]): Failure | undefined {
  if (attrs.some((a) => a.startsWith('m='))) return malformed('extensions-not-supported');
  if (!attrs.every((a) => ATTR_VAL.test(a))) return malformed('invalid-encoding');
  return undefined;
}

interface Gs2Header { header: string; authzid: string | undefined }

/** gs2-header = gs2-cbind-flag "," [ authzid ] "," (RFC 5802 §7, channel binding §6). */
function parseGs2Header(flag: string, authz: string): Gs2Header | Failure {
  // 'p': the client requires channel binding, which this server does not support.
  if (CB_FLAG_P.test(flag)) return malformed('channel-binding-not-supported');
  // 'n': client has no channel binding; 'y': client thinks the server has none (true, no -PLUS).
  if (flag !== 'n' && flag !== 'y') return malformed('invalid-encoding');
  if (authz === '') return { header: `${flag},,`, authzid: undefined };
  const authzid = authz.startsWith('a=') ? decodeSaslname(authz.slice(2)) : undefined;
  if (authzid === undefined) return malformed('invalid-username-encoding');
  return { header: `${flag},${authz},`, authzid };
}

/** username = "n=" saslname, SASLprepped as the server SHOULD (RFC 5802 §5.1). */
function parseUsername(attr: string): string | Failure {
  if (attr.startsWith('m=')) return malformed('extensions-not-supported');
  const name = attr.startsWith('n=') ? decodeSaslname(attr.slice(2)) : undefined;
  if (name === undefined) return malformed('invalid-username-encoding');
  try {
    const prepped = saslprep(name);
    return prepped === '' ? malformed('invalid-username-encoding') : prepped;
  } catch {
    return malformed('invalid-username-encoding');
  }
}

interface ClientFirst extends Gs2Header { username: string; clientNonce: string; bare: string }

/** client-first-message = gs2-header [reserved-mext ","] username "," nonce ["," extensions] */
function parseClientFirst(msg: string): ClientFirst | Failure {
  const parts = msg.split(',');
  const [flag = '', authz = '', user = '', nonce = '', ...extensions] = parts;
  if (parts.length < 4) return malformed('invalid-encoding');
  const gs2 = parseGs2Header(flag, authz);
  if (isFailure(gs2)) return gs2;
  const username = parseUsername(user);
  if (typeof username !== 'string') return username;
  if (!nonce.startsWith('r=') || !PRINTABLE.test(nonce.slice(2))) return malformed('invalid-encoding');
  const extFailure = checkExtensions(extensions);
  if (extFailure) return extFailure;
  return { ...gs2, username, clientNonce: nonce.slice(2), bare: parts.slice(2).join(',') };
}

interface ClientFinal { channelBinding: string; nonce: string; proof: string; withoutProof: string }

/** client-final-message = channel-binding "," nonce ["," extensions] "," proof */
function parseClientFinal(msg: string): ClientFinal | Failure {
  const parts = msg.split(',');
  const proof = parts.pop() ?? '';
  const [cb = '', nonce = '', ...extensions] = parts;
  const shapeOk = cb.startsWith('c=') && nonce.startsWith('r=') && proof.startsWith('p=');
  if (parts.length < 2 || !shapeOk) return malformed('invalid-encoding');
  const extFailure = checkExtensions(extensions);
  if (extFailure) return extFailure;
  const withoutProof = parts.join(',');
  return { channelBinding: cb.slice(2), nonce: nonce.slice(2), proof: proof.slice(2), withoutProof };
}

// ---- server ----
export interface ScramServerOptions {
  /** Random bytes in the server nonce part (base64-encoded). Default 18 (24 characters). */
  nonceBytes?: number;
  /** Fixed server nonce part; tests only. */
  serverNonce?: string;
  /** Key for unknown users' fake salts. Default: random per process (stable until restart). */
  unknownUserSecret?: Buffer;
  /** Iteration count shown for unknown users; set it to what real accounts use. Default 4096. */
  unknownUserIterations?: number;
  /** May `username` act as `authzid` (both decoded)? Default: only when they are equal. */
  authzidAllowed?: (authzid: string, username: string) => boolean;
  /** The account a user name names (e.g. case-folded): an unknown user's fake salt is keyed on it, as the lookup is. Default: the name as sent. */
  accountKey?: (username: string) => string;
}

type Lookup = (username: string) => Promise<ScramCredentials | undefined>;
const PROCESS_SECRET = randomBytes(32);

/**
 * Credentials for a user that does not exist, so the server-first-message looks like a real one
 * (no user enumeration): the salt is deterministic per user name, the keys are random so no proof
 * can match, and `known: false` makes the final step fail regardless.
 */
export function fakeCredentials(hash: ScramHash, user: string, secret: Buffer, i: number): ScramCredentials {
  const mac = createHmac('sha256', secret).update(`scram-fake-salt\0${hash}\0${user}`).digest();
  const key = (): string => randomBytes(KEY_LENGTH[hash]).toString('base64');
  const salt = mac.subarray(0, 16).toString('base64');
  return { salt, iterations: i, storedKey: key(), serverKey: key() };
}

interface Exchange {
  first: ClientFirst; serverFirst: string; nonce: string; creds: ScramCredentials; known: boolean;
}

/** One SCRAM exchange: start(client-first) → challenge, finish(client-final) → success/failure. */
export class ScramServer {
  readonly #hash: ScramHash;
  readonly #lookup: Lookup;
  readonly #opts: ScramServerOptions;
  #state: 'initial' | 'waiting-final' | 'done' = 'initial';
  #exchange: Exchange | undefined;

  constructor(hash: ScramHash, lookup: Lookup, opts: ScramServerOptions = {}) {
    if (opts.serverNonce !== undefined && !PRINTABLE.test(opts.serverNonce)) {
      throw new Error('serverNonce must be printable ASCII without commas (RFC 5802 §7)');
    }
    this.#hash = hash;
    this.#lookup = lookup;
    this.#opts = opts;
  }

  /** Rejects with the lookup's error when the lookup fails. */
  async start(clientFirst: string): Promise<ScramStep> {
    if (this.#state !== 'initial') return malformed('unexpected client-first-message');
    this.#state = 'done';
    const first = parseClientFirst(clientFirst);
    if (isFailure(first)) return first;
    const allowed = this.#opts.authzidAllowed ?? ((authzid: string, user: string) => authzid === user);
    const { authzid, username } = first;
    if (authzid !== undefined && !allowed(authzid, username)) return fail('invalid-authzid');
    // A failing lookup rejects: the caller tells a storage failure from its own refusals (a throttle).
    // Made for every user, known or not: the unknown user's extra HMAC and random keys (~15 µs)
    // were a timing difference that, measured over many challenges, told which accounts exist.
    const fake = this.#fakeCredentials(first.username);
    const stored = await this.#lookup(first.username);
    const creds = stored ?? fake;
    const nonce = first.clientNonce + this.#serverNonce();
    const serverFirst = `r=${nonce},s=${creds.salt},i=${creds.iterations}`;
    this.#exchange = { first, serverFirst, nonce, creds, known: stored !== undefined };
    this.#state = 'waiting-final';
    return { kind: 'challenge', data: serverFirst };
  }

  finish(clientFinal: string): ScramStep {
    const exchange = this.#exchange;
    if (this.#state !== 'waiting-final' || exchange === undefined) {
      return malformed('unexpected client-final-message');
    }
    this.#state = 'done';
    this.#exchange = undefined;
    const final = parseClientFinal(clientFinal);
    if (isFailure(final)) return final;
    // c= must be base64(gs2-header): there is no cbind-data without channel binding (§7).
    const cbind = decodeBase64(final.channelBinding);
    if (cbind === undefined || !cbind.equals(Buffer.from(exchange.first.header))) {
      return malformed('channel-bindings-dont-match');
    }
    if (final.nonce !== exchange.nonce) return malformed('nonce does not match');
    const proof = decodeBase64(final.proof);
    if (proof === undefined) return malformed('invalid-encoding');
    return this.#verify(exchange, final.withoutProof, proof);
  }

  /**
   * RFC 5802 §3: ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the proof is good when
   * H(ClientKey) == StoredKey, and the reply is v=HMAC(ServerKey, AuthMessage).
   */
  #verify(exchange: Exchange, finalWithoutProof: string, proof: Buffer): ScramStep {
    const authMessage = `${exchange.first.bare},${exchange.serverFirst},${finalWithoutProof}`;
    const storedKey = b64(exchange.creds.storedKey);
    const clientSignature = hmac(this.#hash, storedKey, authMessage);
    if (proof.length !== clientSignature.length) return fail('not-authorized', 'invalid-proof');
    const clientKey = Buffer.alloc(proof.length);
    for (let i = 0; i < proof.length; i++) clientKey[i] = (proof[i] ?? 0) ^ (clientSignature[i] ?? 0);
    const proofOk = safeEqual(digest(this.#hash, clientKey), storedKey);
    // Same failure for a wrong password and an unknown user (no enumeration).
    if (!proofOk || !exchange.known) return fail('not-authorized', 'invalid-proof');
    const serverKey = b64(exchange.creds.serverKey);
    const serverSignature = hmac(this.#hash, serverKey, authMessage).toString('base64');
    return { kind: 'success', data: `v=${serverSignature}`, username: exchange.first.username };
  }

  #serverNonce(): string {
    return this.#opts.serverNonce ?? randomId(this.#opts.nonceBytes ?? 18, 'base64');
  }

  #fakeCredentials(username: string): ScramCredentials {
    const secret = this.#opts.unknownUserSecret ?? PROCESS_SECRET;
    return fakeCredentials(this.#hash, this.#opts.accountKey?.(username) ?? username, secret, this.#opts.unknownUserIterations ?? 4096);
  }
}

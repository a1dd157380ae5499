// SCRAM-SHA-1 (RFC 5802), client side, on node:crypto.
//
// With SCRAM the server stores StoredKey/ServerKey and never runs PBKDF2 at
// login; the client does (Hi(password, salt, i)). The generator would spend
// ~1.6 ms of CPU per login on it (4096 iterations) on the same two cores as
// the server, so SaltedPassword is cached per (salt, iterations), as real
// clients cache it (Conversations, Gajim, Converse.js `clientKey` caching).
// The cache is filled before measuring (bench prepares it per server).
import { createHash, createHmac, pbkdf2, pbkdf2Sync, randomBytes } from 'node:crypto';

const hmac = (key, data) => createHmac('sha1', key).update(data).digest();
const sha1 = (data) => createHash('sha1').update(data).digest();

/** @typedef {{ clientKey: Buffer, storedKey: Buffer, serverKey: Buffer }} Keys */

/** SaltedPassword by `${saltB64}|${iterations}` (the password is the same for every bench user). */
export class KeyCache {
  /** @type {Map<string, Buffer>} */
  salted = new Map();
  /** @type {Map<string, Keys>} */
  keys = new Map();
  misses = 0;

  /** @param {string} password */
  constructor(password) { this.password = password; }

  /** @param {Record<string, string>} entries salted passwords as hex by key */
  load(entries) {
    for (const [k, v] of Object.entries(entries)) this.salted.set(k, Buffer.from(v, 'hex'));
  }

  /** @returns {Record<string, string>} */
  dump() {
    /** @type {Record<string, string>} */
    const out = {};
    for (const [k, v] of this.salted) out[k] = v.toString('hex');
    return out;
  }

  /** Derives and caches SaltedPassword on the thread pool. @param {string} saltB64 @param {number} iterations */
  async derive(saltB64, iterations) {
    const key = `${saltB64}|${iterations}`;
    if (this.salted.has(key)) return;
    const salted = await new Promise((res, rej) => pbkdf2(this.password, Buffer.from(saltB64, 'base64'), iterations, 20, 'sha1', (e, k) => (e ? rej(e) : res(k))));
    this.salted.set(key, salted);
  }

  /** @param {string} saltB64 @param {number} iterations @returns {Keys} */
  get(saltB64, iterations) {
    const key = `${saltB64}|${iterations}`;
    let k = this.keys.get(key);
    if (k) return k;
    let salted = this.salted.get(key);
    if (!salted) {
      // Not prepared: derive here (counted, so a cold generator shows in the results).
      this.misses++;
      salted = pbkdf2Sync(this.password, Buffer.from(saltB64, 'base64'), iterations, 20, 'sha1');
      this.salted.set(key, salted);
    }
    const clientKey = hmac(salted, 'Client Key');
    k = { clientKey, storedKey: sha1(clientKey), serverKey: hmac(salted, 'Server Key') };
    this.keys.set(key, k);
    return k;
  }
}

/** Parses "a=b,c=d" SCRAM attributes. @param {string} msg */
export function scramAttrs(msg) {
  /** @type {Record<string, string>} */
  const out = {};
  for (const part of msg.split(',')) {
    const k = part.indexOf('=');
    if (k > 0) out[part.slice(0, k)] = part.slice(k + 1);
  }
  return out;
}

/** One SCRAM-SHA-1 exchange. */
export class ScramClient {
  /** @param {string} user @param {KeyCache} cache */
  constructor(user, cache) {
    this.cache = cache;
    this.cnonce = randomBytes(18).toString('base64');
    this.clientFirstBare = `n=${user.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${this.cnonce}`;
    /** @type {Buffer | undefined} */
    this.expected = undefined;
  }

  /** base64 of the client-first message. */
  first() { return Buffer.from(`n,,${this.clientFirstBare}`).toString('base64'); }

  /** base64 of the client-final message for the base64 server-first challenge. @param {string} challengeB64 */
  final(challengeB64) {
    const serverFirst = Buffer.from(challengeB64, 'base64').toString('utf8');
    const a = scramAttrs(serverFirst);
    if (!a.r || !a.r.startsWith(this.cnonce) || !a.s || !a.i) throw new Error(`bad SCRAM server-first: ${serverFirst}`);
    const keys = this.cache.get(a.s, Number(a.i));
    const finalNoProof = `c=biws,r=${a.r}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${finalNoProof}`;
    const signature = hmac(keys.storedKey, authMessage);
    const proof = Buffer.alloc(20);
    for (let i = 0; i < 20; i++) proof[i] = keys.clientKey[i] ^ signature[i];
    this.expected = hmac(keys.serverKey, authMessage);
    return Buffer.from(`${finalNoProof},p=${proof.toString('base64')}`).toString('base64');
  }

  /** Checks the server signature carried by <success/> (base64 "v=..."). @param {string} successB64 */
  verify(successB64) {
    const v = scramAttrs(Buffer.from(successB64 || '', 'base64').toString('utf8')).v;
    if (!v || !this.expected || !Buffer.from(v, 'base64').equals(this.expected)) throw new Error('SCRAM server signature mismatch');
  }
}

/** Server-first salt and iteration count. @param {string} challengeB64 */
export function saltOf(challengeB64) {
  const a = scramAttrs(Buffer.from(challengeB64, 'base64').toString('utf8'));
  return { salt: a.s, iterations: Number(a.i) };
}

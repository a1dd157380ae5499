import { randomFillSync } from 'node:crypto';

// Random identifiers (stream ids, BOSH sids, smids, SCRAM nonces, generated resources) from Node's
// CSPRNG, drawn from a pool refilled 4 KiB at a time. Hand-written because crypto.randomBytes
// makes one call into OpenSSL per id (about 10 us; 5-6 % of the server's CPU per login in the
// benchmark), and crypto.randomUUID, which pools the same way, carries only 122 random bits where
// smids and sids need at least 128. Every byte is handed out once and then overwritten by the next
// refill. The pool is process-wide like randomUUID's cache: it holds no server state, so servers
// sharing a process (the tests) do not affect each other.

const POOL_SIZE = 4096;
const pool = Buffer.alloc(POOL_SIZE);
let offset = POOL_SIZE;

/** `bytes` fresh random bytes (at most 4096), encoded; the default base64url is safe in XML attributes and URLs. */
export function randomId(bytes: number, encoding: 'base64url' | 'base64' | 'hex' = 'base64url'): string {
  if (!Number.isInteger(bytes) || bytes < 1 || bytes > POOL_SIZE) throw new RangeError(`randomId: ${bytes} bytes`);
  if (offset + bytes > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const id = pool.toString(encoding, offset, offset + bytes);
  offset += bytes;
  return id;
}

// 48-bit tokens (XEP-0359 archive ids' random part: one per archived message) as 8 base64url
// characters, cut from a pool encoded 512 at a time: encoding each on its own (randomId(6)) cost
// the event loop 0.3 µs per archived message at saturation, most of it the call into C++.
const TOKEN_POOL_BYTES = 3072;
let tokens = '';
let tokenAt = 0;

/** 48 fresh random bits as 8 base64url characters (each pool byte handed out once). */
export function randomToken48(): string {
  if (tokenAt >= tokens.length) {
    tokens = randomFillSync(Buffer.alloc(TOKEN_POOL_BYTES)).toString('base64url');
    tokenAt = 0;
  }
  const token = tokens.slice(tokenAt, tokenAt + 8);
  tokenAt += 8;
  return token;
}

// SCRAM-SHA-256 / SCRAM-SHA-1 (RFC 5802, RFC 7677) with WebCrypto.
//
// The password is used once, to derive SaltedPassword for the salt and
// iteration count the server sends; what is kept (in sessionStorage) is
// only ClientKey and ServerKey for that salt and count. They let a later
// login prove the same identity (ClientProof = ClientKey XOR
// HMAC(StoredKey, AuthMessage)) and check the server (ServerSignature =
// HMAC(ServerKey, AuthMessage)) without the password, RFC 5802 §3.

/** Mechanisms we speak, best first (RFC 7677 §4: SHA-256 preferred). */
export const MECHANISMS = Object.freeze({ 'SCRAM-SHA-256': 'SHA-256', 'SCRAM-SHA-1': 'SHA-1' });

const utf8 = new TextEncoder();

export function toBase64(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)));
}

export function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

async function hmac(hash, key, data) {
  const k = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', k, typeof data === 'string' ? utf8.encode(data) : data));
}

/**
 * ClientKey and ServerKey from the password (RFC 5802 §3). The password is
 * NFKC-normalised, which is what SASLprep (RFC 4013) amounts to for the
 * passwords people type; it is not kept anywhere.
 */
export async function deriveKeys(mechanism, password, salt, iterations) {
  const hash = MECHANISMS[mechanism];
  const bits = hash === 'SHA-256' ? 256 : 160;
  const base = await crypto.subtle.importKey('raw', utf8.encode(password.normalize('NFKC')), 'PBKDF2', false, ['deriveBits']);
  const salted = new Uint8Array(await crypto.subtle.deriveBits({ name: 'PBKDF2', salt, iterations, hash }, base, bits));
  return {
    mechanism, salt: toBase64(salt), iterations,
    clientKey: toBase64(await hmac(hash, salted, 'Client Key')),
    serverKey: toBase64(await hmac(hash, salted, 'Server Key')),
  };
}

/** RFC 5802 §5.1: ',' and '=' in the user name are escaped as =2C and =3D. */
function saslName(username) {
  return username.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

/** Parses "a=1,b=2" (RFC 5802 §5.1 attributes); values may contain '='. */
function attributes(message) {
  const out = {};
  for (const part of message.split(',')) out[part.slice(0, 1)] = part.slice(2);
  return out;
}

/**
 * One SCRAM exchange. `getKeys(salt, iterations)` returns the keys for the
 * server's salt and count (derived from a password, or the stored ones).
 * first() gives the initial response; final(serverFirst) the client-final
 * message; verify(serverFinal) throws unless the server proved it knows
 * ServerKey (RFC 5802 §9: mutual authentication).
 */
export function scramExchange(mechanism, username, getKeys) {
  const hash = MECHANISMS[mechanism];
  const nonce = toBase64(crypto.getRandomValues(new Uint8Array(18)));
  const clientFirstBare = `n=${saslName(username)},r=${nonce}`;
  let serverSignature = null;
  let keys = null;
  return {
    first: () => `n,,${clientFirstBare}`,
    async final(serverFirst) {
      const a = attributes(serverFirst);
      // RFC 7677 §4: at least 4096 iterations; fewer would make a stolen exchange cheap to attack.
      if (!a.r?.startsWith(nonce) || !a.s || !(Number(a.i) >= 4096)) throw new Error('SCRAM: bad server-first-message');
      keys = await getKeys(fromBase64(a.s), Number(a.i));
      const withoutProof = `c=${btoa('n,,')},r=${a.r}`;
      const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
      const clientKey = fromBase64(keys.clientKey);
      const storedKey = new Uint8Array(await crypto.subtle.digest(hash, clientKey));
      const signature = await hmac(hash, storedKey, authMessage);
      const proof = clientKey.map((b, i) => b ^ signature[i]);
      serverSignature = toBase64(await hmac(hash, fromBase64(keys.serverKey), authMessage));
      return `${withoutProof},p=${toBase64(proof)}`;
    },
    verify(serverFinal) {
      const a = attributes(serverFinal);
      if (a.e) throw new Error(`SCRAM: server error ${a.e}`);
      if (a.v !== serverSignature) throw new Error('SCRAM: the server signature does not match');
      return keys;
    },
  };
}

import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';

/** The client side of one SCRAM-SHA-256 exchange (RFC 5802/7677), for raw-wire tests. */
export interface ScramFirst { readonly message: string; readonly bare: string; readonly nonce: string }

export function scramFirst(user: string): ScramFirst {
  const nonce = randomBytes(18).toString('base64');
  const bare = `n=${user.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${nonce}`;
  return { message: Buffer.from(`n,,${bare}`).toString('base64'), bare, nonce };
}

/** base64 of the client-final message answering `challengeB64` with `password`. */
export function scramFinal(first: ScramFirst, challengeB64: string, password: string): string {
  const serverFirst = Buffer.from(challengeB64, 'base64').toString('utf8');
  const attrs = Object.fromEntries(serverFirst.split(',').map((p) => [p.slice(0, 1), p.slice(2)]));
  const salted = pbkdf2Sync(password, Buffer.from(attrs.s!, 'base64'), Number(attrs.i), 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const withoutProof = `c=biws,r=${attrs.r}`;
  const signature = createHmac('sha256', storedKey).update(`${first.bare},${serverFirst},${withoutProof}`).digest();
  const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]!));
  return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`).toString('base64');
}

/** The base64 PLAIN message (RFC 4616): [authzid] NUL authcid NUL passwd. */
export const plain = (user: string, password: string, authzid = ''): string => Buffer.from(`${authzid}\0${user}\0${password}`).toString('base64');

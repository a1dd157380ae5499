/**
 * Building and checking StoredCredentials. Lives with storage (not the CLI)
 * because every path that sets a password — CLI, in-band registration,
 * password change — must store both SCRAM variants the same way.
 */
import { saslprep } from '../sasl/saslprep.js';
import { deriveCredentialsAsync, type ScramCredentials } from '../sasl/scram.js';
import type { StoredCredentials, UserRecord } from './ports/accounts.js';

/** A password no SCRAM client could ever log in with. The message never contains the password. */
export class InvalidPasswordError extends Error {
  override readonly name = 'InvalidPasswordError';
}

/**
 * Cheap (no PBKDF2) check that SASLprep accepts `password` and leaves something,
 * so bulk callers can validate everything before deriving anything.
 * @throws InvalidPasswordError
 */
export function assertValidPassword(password: string): void {
  let prepared: string;
  try {
    prepared = saslprep(password);
  } catch (err) {
    throw new InvalidPasswordError(`invalid password: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (prepared === '') throw new InvalidPasswordError('empty password');
}

/**
 * Derives SCRAM-SHA-1 and SCRAM-SHA-256 credentials, each with its own random salt.
 * @throws InvalidPasswordError
 */
export async function deriveStoredCredentials(password: string, iterations: number): Promise<StoredCredentials> {
  assertValidPassword(password);
  const [sha1, sha256] = await Promise.all([
    deriveCredentialsAsync('sha1', password, iterations),
    deriveCredentialsAsync('sha256', password, iterations),
  ]);
  return { 'SCRAM-SHA-1': sha1, 'SCRAM-SHA-256': sha256 };
}

function isScramCredentials(value: unknown): value is ScramCredentials {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.salt === 'string' && typeof v.storedKey === 'string' && typeof v.serverKey === 'string'
    && typeof v.iterations === 'number' && Number.isInteger(v.iterations) && v.iterations > 0;
}

/** Guards data read back from a backend, so a corrupt row fails loudly instead of at SASL time. */
export function isStoredCredentials(value: unknown): value is StoredCredentials {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return isScramCredentials(v['SCRAM-SHA-1']) && isScramCredentials(v['SCRAM-SHA-256']);
}

/** A deep copy, so a backend never shares objects with its callers. */
export function copyCredentials(c: StoredCredentials): StoredCredentials {
  return { 'SCRAM-SHA-1': { ...c['SCRAM-SHA-1'] }, 'SCRAM-SHA-256': { ...c['SCRAM-SHA-256'] } };
}

/** A stored account as read back by a SQL backend; credentials that are not both SCRAM variants fail loudly. */
export function userRecord(host: string, username: string, credentials: unknown, createdAt: number, credentialsChangedAt: number): UserRecord {
  if (!isStoredCredentials(credentials)) throw new Error(`stored credentials of '${username}@${host}' are malformed`);
  return { host, username, credentials, createdAt, credentialsChangedAt };
}

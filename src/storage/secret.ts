import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const SECRET_FILE = 'server-secret';

/**
 * A random 32-byte secret kept in DATA_DIR (0600), created on first use, so
 * that what is derived from it (unknown users' fake SCRAM salts) stays the
 * same across restarts and across the processes sharing the directory.
 */
export function loadOrCreateSecret(dataDir: string): Buffer {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, SECRET_FILE);
  try {
    writeFileSync(file, randomBytes(32), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const secret = readFileSync(file);
  if (secret.length < 32) throw new Error(`${file} is shorter than 32 bytes: delete it to create a new one`);
  return secret;
}

import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const SECRET_FILE = 'server-secret';

/**
 * Puts a new secret at `file` unless one is there, whole: written under a name of its own, then
 * hard-linked into place (which fails if another process was first). Created and written at
 * `file` itself ('wx'), a process starting at the same moment (WORKERS=N) found the file before
 * its 32 bytes were in it, read it empty and stopped. Where the file system has no hard links,
 * the file is created in place as before.
 */
function createOnce(file: string): void {
  const temp = `${file}.${randomBytes(8).toString('hex')}.new`;
  writeFileSync(temp, randomBytes(32), { mode: 0o600, flag: 'wx' });
  try {
    linkSync(temp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    try {
      writeFileSync(file, readFileSync(temp), { mode: 0o600, flag: 'wx' });
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code !== 'EEXIST') throw again;
    }
  } finally {
    rmSync(temp, { force: true });
  }
}

/**
 * A random 32-byte secret kept in DATA_DIR (0600), created on first use, so
 * that what is derived from it (unknown users' fake SCRAM salts) stays the
 * same across restarts and across the processes sharing the directory.
 */
export function loadOrCreateSecret(dataDir: string): Buffer {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = join(dataDir, SECRET_FILE);
  if (!existsSync(file)) createOnce(file);
  const secret = readFileSync(file);
  if (secret.length < 32) throw new Error(`${file} is shorter than 32 bytes: delete it to create a new one`);
  return secret;
}

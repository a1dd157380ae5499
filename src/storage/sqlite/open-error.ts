import { statSync } from 'node:fs';

/**
 * The SQLite database could not be opened: the message names the file and the
 * likely cause, since a bare "unable to open database file" on a volume the
 * process may not write is the usual first-deployment failure (issue 17 item 7).
 */
export class StorageOpenError extends Error {
  constructor(readonly path: string, readonly hint: string, cause: unknown) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(`DATA_DIR: cannot open the SQLite database ${path}: ${detail}${hint === '' ? '' : `. Likely cause: ${hint}`}`, { cause });
    this.name = 'StorageOpenError';
  }
}

const codeOf = (err: unknown): string => String((err as { code?: unknown } | null)?.code ?? '');

/** What the directory's owner and mode say about a permission failure, and the fix. */
function permissionHint(dir: string): string {
  const uid = process.getuid?.();
  const gid = process.getgid?.();
  let owner = '';
  try {
    const st = statSync(dir);
    owner = ` is owned by uid ${st.uid} gid ${st.gid} with mode ${(st.mode & 0o7777).toString(8)} and`;
  } catch {
    // The directory itself is out of reach: the sentence still says who cannot write.
  }
  return `${dir}${owner} is not writable by this process (uid ${uid ?? '?'} gid ${gid ?? '?'}): give the volume to that user `
    + '(Kubernetes: the pod\'s securityContext.fsGroup; docker: chown the host directory, or a named volume)';
}

/** The likely cause of `err` from opening `file` in `dir`, as one sentence; '' when nothing is known. */
export function likelyCause(dir: string, err: unknown): string {
  const code = codeOf(err);
  if (['EACCES', 'EPERM', 'SQLITE_CANTOPEN', 'SQLITE_PERM'].includes(code) || code.startsWith('SQLITE_READONLY')) return permissionHint(dir);
  if (code === 'EROFS') return `${dir} is on a read-only file system: mount a writable volume at DATA_DIR`;
  if (code === 'ENOSPC' || code === 'SQLITE_FULL') return `the file system of ${dir} is full`;
  if (code === 'ENOTDIR' || code === 'EEXIST') return 'DATA_DIR, or a directory above it, is a file, not a directory';
  if (code === 'SQLITE_BUSY') return 'another process holds the database locked (two gateways on one DATA_DIR?)';
  if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') return 'the file is not an SQLite database or is damaged: restore it from a backup';
  return '';
}

/**
 * `backup DIR` and `restore DIR` of the embedded SQLite database.
 * backup: through the running server (it owns the handle; the SQLite backup
 * API gives a consistent copy while it writes), or straight from the file
 * when the server is stopped. restore: only with the server stopped.
 */
import { chmodSync, constants, copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { AdminError } from '../admin/protocol.js';
import { answers } from '../admin/server.js';
import { writeBackup } from '../admin/port.js';
import { DATABASE_FILE, MIGRATIONS } from '../storage/sqlite/index.js';
import { BACKUP_IN_ONE_STEP } from '../storage/sqlite/backup-steps.js';
import { askServer } from './admin.js';
import { CliError, EXIT } from './errors.js';
import { println, type CliIo } from './io.js';
import { cliSettingsFromEnv, type CliSettings } from './settings.js';
import { PROGRAM } from './usage.js';

const SIDE_FILES = ['', '-wal', '-shm'];

function sqliteOnly(settings: CliSettings, command: string): void {
  if (settings.backend === 'postgres') {
    throw new CliError(`STORAGE=postgres: ${command} the PostgreSQL database with ${command === 'backup' ? 'pg_dump' : 'pg_restore or psql'}`, EXIT.refused);
  }
}

/**
 * Copies the stopped server's database file with the SQLite backup API, in one step: a server
 * running without an admin socket may be committing (backup-steps.ts).
 */
async function backupStopped(settings: CliSettings, dir: string): Promise<string> {
  const source = join(settings.dataDir, DATABASE_FILE);
  if (!existsSync(source)) throw new CliError(`no database at ${resolve(source)}; nothing to back up`, EXIT.refused);
  const db = new Database(source, { readonly: true, fileMustExist: true });
  try {
    return await writeBackup(dir, DATABASE_FILE, (file) => db.backup(file, BACKUP_IN_ONE_STEP));
  } finally {
    db.close();
  }
}

async function backup(io: CliIo, dir: string): Promise<void> {
  const settings = cliSettingsFromEnv(io.env);
  sqliteOnly(settings, 'backup');
  const target = resolve(dir);
  const running = settings.adminSocket !== undefined && (await answers(settings.adminSocket));
  try {
    const file = running
      ? ((await askServer(io, { op: 'backup', dir: target })) as { file: string }).file
      : await backupStopped(settings, target);
    println(io.stdout, `backed up to ${file}${running ? ' (online, by the running server)' : ' (the server is not running)'}`);
  } catch (err) {
    if (err instanceof AdminError) throw new CliError(err.message, EXIT.refused);
    throw err;
  }
}

/** PRAGMA integrity_check, and a schema this build can migrate (not newer); returns its version. */
function verify(file: string): number {
  const db = new Database(file, { fileMustExist: true });
  try {
    const check = db.pragma('integrity_check', { simple: true });
    if (check !== 'ok') throw new CliError(`the backup fails PRAGMA integrity_check: ${String(check)}`, EXIT.refused);
    const hasSchema = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
    if (!hasSchema) throw new CliError('the backup is not a gateway database (no schema_migrations table)', EXIT.refused);
    const { v } = db.prepare<[], { v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations').get()!;
    if ((v ?? 0) > MIGRATIONS.length) {
      throw new CliError(`the backup has schema version ${v}, newer than this build's ${MIGRATIONS.length}: restore it with a newer version`, EXIT.refused);
    }
    return v ?? 0;
  } finally {
    db.close();
  }
}

/**
 * Whether another connection has the database open: a server (its event loop or its archive
 * thread, whatever ADMIN_SOCKET says) or a CLI command. Every connection in WAL mode holds a
 * shared lock on the file while it is open, so an exclusive one is refused (SQLITE_BUSY, asked
 * with no wait). Changes no data; a file SQLite cannot read is not "open elsewhere" (restoring
 * over it is what restore is for).
 */
function openElsewhere(file: string): boolean {
  let db: Database.Database | undefined;
  try {
    db = new Database(file, { fileMustExist: true });
    db.pragma('busy_timeout = 0');
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE; COMMIT');
    return false;
  } catch (err) {
    return (err as { code?: unknown }).code === 'SQLITE_BUSY';
  } finally {
    db?.close();
  }
}

async function restore(io: CliIo, dir: string): Promise<void> {
  const settings = cliSettingsFromEnv(io.env);
  sqliteOnly(settings, 'restore');
  if (settings.adminSocket !== undefined && (await answers(settings.adminSocket))) {
    throw new CliError(`the server is running (${settings.adminSocket} answers): stop it before restoring`, EXIT.refused);
  }
  const source = join(resolve(dir), DATABASE_FILE);
  if (!existsSync(source)) throw new CliError(`no backup at ${source}`, EXIT.refused);
  mkdirSync(settings.dataDir, { recursive: true, mode: 0o700 });
  const live = join(settings.dataDir, DATABASE_FILE);
  // Also without an admin socket (ADMIN_SOCKET=off): a file replaced under a running server is lost to it.
  if (existsSync(live) && openElsewhere(live)) {
    throw new CliError(`${resolve(live)} is open in another process (the server, or a CLI command): stop it before restoring`, EXIT.refused);
  }
  // Checked on a private copy, so the backup directory is left as it was and a bad copy never replaces anything.
  const staged = `${live}.restoring`;
  rmSync(staged, { force: true });
  copyFileSync(source, staged, constants.COPYFILE_EXCL);
  chmodSync(staged, 0o600);
  let version: number;
  try {
    version = verify(staged);
  } catch (err) {
    for (const suffix of SIDE_FILES) rmSync(`${staged}${suffix}`, { force: true });
    throw err;
  }
  // The current database, with its WAL (which would otherwise be replayed into the restored file), kept aside.
  const aside = `${live}.before-restore-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const kept = existsSync(live);
  for (const suffix of SIDE_FILES) if (existsSync(`${live}${suffix}`)) renameSync(`${live}${suffix}`, `${aside}${suffix}`);
  renameSync(staged, live);
  println(io.stdout, `restored ${source} (schema version ${version}) into ${resolve(live)}`);
  if (kept) println(io.stdout, `the previous database is kept as ${resolve(aside)}`);
}

/** Runs `backup DIR` or `restore DIR`; returns the exit code. */
export async function runBackupCommand(command: 'backup' | 'restore' | string, argv: string[], io: CliIo): Promise<number> {
  if (argv.length !== 1 || argv[0]!.startsWith('-')) {
    if (argv[0] === '--help' || argv[0] === '-h') {
      println(io.stdout, `usage: ${PROGRAM} ${command} DIR`);
      return EXIT.ok;
    }
    throw new CliError(`usage: ${PROGRAM} ${command} DIR`);
  }
  await (command === 'backup' ? backup(io, argv[0]!) : restore(io, argv[0]!));
  return EXIT.ok;
}

/**
 * Entry point of the `xmpp-web-gateway` command. `runCli` is the whole CLI
 * with its streams and environment injected (tests call it in-process);
 * `main` binds it to the real process and is what bin/xmpp-web-gateway.js calls.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError, withEnvFile } from '../config/index.js';
import { DATABASE_FILE, InvalidPasswordError, openStorage, StorageOpenError, UserExistsError, UserNotFoundError, type Storage } from '../storage/index.js';
import { CliError } from './errors.js';
import { println, type CliIo } from './io.js';
import { MAIN_USAGE, PROGRAM } from './usage.js';
import type { CliSettings } from './settings.js';
import { runUserCommand } from './user.js';
import { runAdminCommand } from './admin.js';
import { runBackupCommand } from './backup.js';

export type { CliIo } from './io.js';

export interface CliDeps {
  /** The backend the settings name (STORAGE: SQLite in DATA_DIR, or PostgreSQL at DATABASE_URL). */
  openStorage(settings: CliSettings, opts?: OpenOptions): Storage | Promise<Storage>;
  /** Starts the server; resolves once it is listening (the process then stays up). */
  startServer(): Promise<void>;
}

/** create: the command may start a new install's SQLite database (user add, import); the others need one. */
export interface OpenOptions { readonly create: boolean }

/** An unreachable PostgreSQL is an operator's problem: one line naming DATABASE_URL (never its value), no stack. */
async function openConfiguredStorage(settings: CliSettings, opts: OpenOptions = { create: true }): Promise<Storage> {
  // DATA_DIR defaults to ./data: run from another directory, `user list` printed nothing (exit 0) and left an empty
  // database behind, and passwd or delete said the user did not exist.
  const file = join(settings.dataDir, DATABASE_FILE);
  if (settings.backend === 'sqlite' && !opts.create && !existsSync(file)) {
    throw new CliError(`no database at ${resolve(file)}: is DATA_DIR right? (a relative one is read from the current directory)`);
  }
  try {
    return await openStorage(settings);
  } catch (err) {
    if (err instanceof StorageOpenError) throw new CliError(err.message);
    if (settings.backend !== 'postgres') throw err;
    throw new CliError(`DATABASE_URL: cannot open the PostgreSQL database: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export const defaultCliDeps: CliDeps = {
  openStorage: openConfiguredStorage,
  // dist/main.js starts the server when imported. A computed specifier keeps
  // the CLI compiling on its own and loads the server only for `serve`.
  startServer: async () => {
    await import(new URL('../main.js', import.meta.url).href);
  },
};

// Errors whose message is the whole story for an operator; anything else is a bug and keeps its stack.
const OPERATOR_ERRORS = [CliError, ConfigError, UserExistsError, UserNotFoundError, InvalidPasswordError];
const isOperatorError = (err: unknown): err is Error => OPERATOR_ERRORS.some((type) => err instanceof type);

function report(err: unknown, stderr: NodeJS.WritableStream): number {
  const text = isOperatorError(err) ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
  for (const line of text.split('\n')) println(stderr, `${PROGRAM}: ${line}`);
  return err instanceof CliError ? err.exitCode : 1;
}

async function dispatch(argv: string[], io: CliIo, deps: CliDeps): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case 'serve':
      if (rest.length > 0) throw new CliError(`serve takes no arguments; configure it through the environment (see .env.example)`);
      await deps.startServer();
      return 0;
    case 'help':
    case '--help':
    case '-h':
      println(io.stdout, MAIN_USAGE);
      return 0;
    case 'user':
      return runUserCommand(rest, io, deps.openStorage);
    case 'sessions':
    case 'stats':
    case 'announce':
      return runAdminCommand(command, rest, io);
    case 'backup':
    case 'restore':
      return runBackupCommand(command, rest, io);
    default:
      throw new CliError(`unknown command '${command}'; run '${PROGRAM} --help'`);
  }
}

/** Runs one CLI invocation; resolves to the exit code and never rejects. */
export async function runCli(argv: string[], io: CliIo, deps: CliDeps = defaultCliDeps): Promise<number> {
  try {
    return await dispatch(argv, io, deps);
  } catch (err) {
    return report(err, io.stderr);
  }
}

/** Binds runCli to this process. Sets exitCode rather than exiting, so `serve` keeps running. */
export async function main(): Promise<void> {
  // `user list | head` closes the pipe early; that is not an error worth a stack trace.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  let env: NodeJS.ProcessEnv;
  try {
    env = withEnvFile(resolve('.env'), process.env);
  } catch (err) {
    process.exitCode = report(new CliError(`cannot read .env: ${err instanceof Error ? err.message : String(err)}`), process.stderr);
    return;
  }
  let serving = false;
  const deps: CliDeps = {
    ...defaultCliDeps,
    startServer: () => {
      serving = true;
      return defaultCliDeps.startServer();
    },
  };
  const io: CliIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env };
  process.exitCode = await runCli(process.argv.slice(2), io, deps);
  // A pipe we read one line from stays referenced and would keep the process
  // alive until the writer closes it; a finished command needs nothing more from stdin.
  if (!serving) process.stdin.destroy();
}

/**
 * `user import`: `JID PASSWORD` lines in, one all-or-nothing batch out.
 * Every line is validated before any key derivation starts, so a typo on
 * line 9,999 costs milliseconds, not a full run.
 */
import { availableParallelism } from 'node:os';
import { assertValidPassword, deriveStoredCredentials, InvalidPasswordError, UserExistsError, type NewUser, type UserStore } from '../storage/index.js';
import { accountJid, parseAccount, type Account } from './account.js';
import { mapWithConcurrency } from './concurrency.js';
import { CliError } from './errors.js';

export interface ImportEntry extends Account {
  line: number;
  password: string;
}

// The password is everything after the first run of whitespace, so it may itself contain spaces.
const ENTRY = /^(\S+)\s+(.+)$/s;

/** Parses one line; undefined for a blank or `#` comment line. Never quotes the password. */
export function parseImportLine(text: string, line: number, hosts: readonly string[]): ImportEntry | undefined {
  const content = text.trimStart();
  if (content === '' || content.startsWith('#')) return undefined;
  const match = ENTRY.exec(content);
  if (!match || match[2]!.trim() === '') throw new CliError(`line ${line}: expected 'JID PASSWORD'`);
  try {
    const account = parseAccount(match[1]!, hosts);
    const password = match[2]!;
    assertValidPassword(password);
    return { ...account, line, password };
  } catch (err) {
    if (err instanceof CliError || err instanceof InvalidPasswordError) throw new CliError(`line ${line}: ${err.message}`);
    throw err;
  }
}

/** Parses all lines, rejecting an account listed twice (naming both lines). */
export async function parseImport(lines: AsyncIterable<string>, hosts: readonly string[]): Promise<ImportEntry[]> {
  const entries: ImportEntry[] = [];
  const firstLine = new Map<string, number>();
  let line = 0;
  for await (const text of lines) {
    line++;
    const entry = parseImportLine(text, line, hosts);
    if (!entry) continue;
    const jid = accountJid(entry);
    const earlier = firstLine.get(jid);
    if (earlier !== undefined) throw new CliError(`line ${line}: '${jid}' is already listed on line ${earlier}`);
    firstLine.set(jid, line);
    entries.push(entry);
  }
  return entries;
}

export interface ImportOptions {
  iterations: number;
  /** Accounts derived at once; PBKDF2 runs on libuv's thread pool, so a few per core keep it busy. */
  concurrency?: number;
}

const alreadyExists = (e: ImportEntry): CliError =>
  new CliError(`line ${e.line}: user '${accountJid(e)}' already exists; nothing was imported`);

/** Derives every account's credentials in parallel, then stores them in one transaction; returns the count. */
export async function importAccounts(users: UserStore, entries: readonly ImportEntry[], options: ImportOptions): Promise<number> {
  // A cheap look-up first, so an existing account fails before minutes of PBKDF2, not after.
  for (const e of entries) {
    if (await users.get(e.host, e.username)) throw alreadyExists(e);
  }
  const concurrency = options.concurrency ?? availableParallelism() * 4;
  const batch = await mapWithConcurrency(entries, concurrency, async (e): Promise<NewUser> => ({
    host: e.host,
    username: e.username,
    credentials: await deriveStoredCredentials(e.password, options.iterations),
  }));
  try {
    await users.createMany(batch);
  } catch (err) {
    if (!(err instanceof UserExistsError)) throw err;
    // Someone created it meanwhile (e.g. in-band registration); createMany's transaction kept the store unchanged.
    const entry = entries.find((e) => e.host === err.host && e.username === err.username);
    throw entry ? alreadyExists(entry) : err;
  }
  return batch.length;
}

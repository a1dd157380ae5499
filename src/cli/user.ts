/** `xmpp-web-gateway user …`: account management against the configured storage. */
import { parseArgs } from 'node:util';
import { deriveStoredCredentials, UserExistsError, UserNotFoundError, type Storage } from '../storage/index.js';
import { tryNormalizeDomain } from '../jid/jid.js';
import { accountJid, parseAccount } from './account.js';
import { CliError } from './errors.js';
import { importAccounts, parseImport } from './import.js';
import { println, readLines, type CliIo } from './io.js';
import { obtainPassword } from './password.js';
import { cliSettingsFromEnv, type CliSettings } from './settings.js';
import { lazyStorage, type StorageHandle } from './storage-handle.js';
import { USER_USAGE } from './usage.js';

interface Context {
  io: CliIo;
  settings: CliSettings;
  storage: StorageHandle;
}

interface Invocation {
  args: string[];
  password: string | undefined;
}

interface Subcommand {
  synopsis: string;
  minArgs: number;
  maxArgs: number;
  takesPassword: boolean;
  /** Whether it may create the SQLite database (a new install's first accounts). */
  creates: boolean;
  run(ctx: Context, inv: Invocation): Promise<void>;
}

async function add(ctx: Context, { args, password }: Invocation): Promise<void> {
  const account = parseAccount(args[0]!, ctx.settings.hosts);
  const users = await ctx.storage.users();
  // Checked before asking for a password, so nobody types one twice for nothing.
  if (await users.get(account.host, account.username)) throw new UserExistsError(account.host, account.username);
  const credentials = await deriveStoredCredentials(await obtainPassword(password, ctx.io), ctx.settings.scramIterations);
  await users.create(account.host, account.username, credentials);
  println(ctx.io.stdout, `created user ${accountJid(account)}`);
}

async function passwd(ctx: Context, { args, password }: Invocation): Promise<void> {
  const account = parseAccount(args[0]!, ctx.settings.hosts);
  const users = await ctx.storage.users();
  if (!(await users.get(account.host, account.username))) throw new UserNotFoundError(account.host, account.username);
  const credentials = await deriveStoredCredentials(await obtainPassword(password, ctx.io), ctx.settings.scramIterations);
  await users.setCredentials(account.host, account.username, credentials);
  println(ctx.io.stdout, `changed password of ${accountJid(account)}`);
}

async function remove(ctx: Context, { args }: Invocation): Promise<void> {
  const account = parseAccount(args[0]!, ctx.settings.hosts);
  await (await ctx.storage.users()).delete(account.host, account.username);
  println(ctx.io.stdout, `deleted user ${accountJid(account)}`);
}

async function list(ctx: Context, { args }: Invocation): Promise<void> {
  // Any host is accepted: accounts of a host removed from XMPP_DOMAIN must stay visible. In the form accounts are
  // stored under (RFC 7622 §3.2.1: A-labels as U-labels), as XMPP_DOMAIN is read: `list xn--…` listed nothing.
  const host = args[0] === undefined ? undefined : tryNormalizeDomain(args[0]) ?? args[0].toLowerCase();
  for (const account of await (await ctx.storage.users()).list(host)) println(ctx.io.stdout, accountJid(account));
}

async function importUsers(ctx: Context): Promise<void> {
  if (ctx.io.stdin.isTTY) println(ctx.io.stderr, "Reading 'JID PASSWORD' lines; end with Ctrl-D.");
  const entries = await parseImport(readLines(ctx.io.stdin), ctx.settings.hosts);
  const count = await importAccounts(await ctx.storage.users(), entries, { iterations: ctx.settings.scramIterations });
  println(ctx.io.stdout, `imported ${count} user${count === 1 ? '' : 's'}`);
}

const SUBCOMMANDS: ReadonlyMap<string, Subcommand> = new Map([
  ['add', { synopsis: 'add JID [--password P]', minArgs: 1, maxArgs: 1, takesPassword: true, creates: true, run: add }],
  ['passwd', { synopsis: 'passwd JID [--password P]', minArgs: 1, maxArgs: 1, takesPassword: true, creates: false, run: passwd }],
  ['delete', { synopsis: 'delete JID', minArgs: 1, maxArgs: 1, takesPassword: false, creates: false, run: remove }],
  ['list', { synopsis: 'list [HOST]', minArgs: 0, maxArgs: 1, takesPassword: false, creates: false, run: list }],
  ['import', { synopsis: 'import', minArgs: 0, maxArgs: 0, takesPassword: false, creates: true, run: importUsers }],
]);

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  password: { type: 'string', short: 'p' },
} as const;

const isParseArgsError = (err: unknown): err is Error & { code: string } =>
  err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS');

function parseOrExplain(name: string, spec: Subcommand, argv: string[]) {
  try {
    return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    if (isParseArgsError(err)) throw new CliError(`user ${name}: ${err.message}\nusage: xmpp-web-gateway user ${spec.synopsis}`);
    throw err;
  }
}

function parseInvocation(name: string, spec: Subcommand, argv: string[]): Invocation & { help: boolean } {
  const { values, positionals } = parseOrExplain(name, spec, argv);
  const usage = `usage: xmpp-web-gateway user ${spec.synopsis}`;
  if (values.help === true) return { args: positionals, password: undefined, help: true };
  if (values.password !== undefined && !spec.takesPassword) throw new CliError(`user ${name}: --password is not accepted\n${usage}`);
  if (positionals.length < spec.minArgs || positionals.length > spec.maxArgs) throw new CliError(usage);
  return { args: positionals, password: values.password, help: false };
}

/** Runs `user …` with the arguments after `user`; returns the exit code. */
export async function runUserCommand(argv: string[], io: CliIo, openStorage: (settings: CliSettings, opts: { create: boolean }) => Storage | Promise<Storage>): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    println(name === undefined ? io.stderr : io.stdout, USER_USAGE);
    return name === undefined ? 1 : 0;
  }
  const spec = SUBCOMMANDS.get(name);
  if (!spec) throw new CliError(`unknown user command '${name}'; run 'xmpp-web-gateway user --help'`);
  const invocation = parseInvocation(name, spec, rest);
  if (invocation.help) {
    println(io.stdout, USER_USAGE);
    return 0;
  }
  const settings = cliSettingsFromEnv(io.env);
  const storage = lazyStorage(() => openStorage(settings, { create: spec.creates }));
  try {
    await spec.run({ io, settings, storage }, invocation);
    return 0;
  } finally {
    await storage.close();
  }
}

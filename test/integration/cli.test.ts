/**
 * The real `xmpp-web-gateway` bin as a child process against a temp DATA_DIR,
 * plus in-process runCli runs for what a child cannot fake (a terminal).
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { createServer, type AddressInfo } from 'node:net';
import { runCli, type CliIo } from '../../src/cli/main.js';
import { loadConfig } from '../../src/config/index.js';
import { createMemoryStorage, openPostgresStorage, openSqliteStorage, DATABASE_FILE, type StoredCredentials } from '../../src/storage/index.js';
import { verifyPassword } from '../../src/sasl/scram.js';
import { ensureBuilt, ROOT } from '../helpers/built.js';
import { eventually } from '../helpers/eventually.js';
import { startPostgres } from '../helpers/postgres.js';

const BIN = join(ROOT, 'bin', 'xmpp-web-gateway.js');
const BUILT = join(ROOT, 'dist', 'cli', 'main.js');
const HOSTS = 'example.com,other.org';

// 20,000 PBKDF2 runs for the bulk import are pure CPU: seconds on a workstation,
// but a minute or more on a busy two-core CI runner. Raise this file's limit.
t.setTimeout(600_000);

t.before(() => ensureBuilt(BUILT));

interface Result { code: number | null; stdout: string; stderr: string }
interface RunOptions { input?: string; env?: NodeJS.ProcessEnv; cwd?: string; bin?: string; /** Killed (SIGTERM) after this long: for a command that may wrongly keep serving. */ timeoutMs?: number }

/** Runs the bin in `dir` (its DATA_DIR is dir/data), feeding `input` then closing stdin. */
function cli(dir: string, args: string[], opts: RunOptions = {}): Promise<Result> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, DATA_DIR: join(dir, 'data'), XMPP_DOMAIN: HOSTS, SCRAM_ITERATIONS: '4096', ...opts.env };
  const child = spawn(process.execPath, [opts.bin ?? BIN, ...args], { cwd: opts.cwd ?? dir, env, timeout: opts.timeoutMs });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.end(opts.input ?? '');
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  });
}

async function credentialsOf(dir: string, host: string, username: string): Promise<StoredCredentials | undefined> {
  const storage = openSqliteStorage(join(dir, 'data'));
  try {
    return (await storage.users.get(host, username))?.credentials;
  } finally {
    await storage.close();
  }
}

async function verifies(t: Test, c: StoredCredentials | undefined, password: string, what: string): Promise<void> {
  t.ok(c, `${what}: account exists`);
  if (!c) return;
  t.ok(await verifyPassword('sha1', c['SCRAM-SHA-1'], password), `${what}: SCRAM-SHA-1 verifies`);
  t.ok(await verifyPassword('sha256', c['SCRAM-SHA-256'], password), `${what}: SCRAM-SHA-256 verifies`);
  t.equal(c['SCRAM-SHA-256'].iterations, 4096, `${what}: configured iteration count`);
}

function fails(t: Test, r: Result, message: string | RegExp, what: string): void {
  t.equal(r.code, 1, `${what}: exit code 1`);
  t.match(r.stderr, message, `${what}: message on stderr`);
  t.equal(r.stdout, '', `${what}: nothing on stdout`);
}

t.test('help', async (t) => {
  const dir = t.testdir();
  const main = await cli(dir, ['--help']);
  t.equal(main.code, 0);
  t.match(main.stdout, /Usage: xmpp-web-gateway/);
  t.match(main.stdout, /user add JID/);
  const user = await cli(dir, ['user', '--help']);
  t.equal(user.code, 0);
  t.match(user.stdout, /passwd JID \[--password P\]/);
  t.match(user.stdout, /SCRAM_ITERATIONS/);
  t.notOk(existsSync(join(dir, 'data')), 'help does not create the data directory');
  fails(t, await cli(dir, ['frobnicate']), /unknown command 'frobnicate'/, 'unknown command');
});

t.test('account lifecycle', async (t) => {
  const dir = t.testdir();
  const secrets = ['s3cret-flag', 'from-stdin-pw', 'changed-pw'];

  const added = await cli(dir, ['user', 'add', 'Alice@Example.com', '--password', secrets[0]!]);
  t.equal(added.code, 0, added.stderr);
  t.equal(added.stdout, 'created user alice@example.com\n', 'local part normalised');
  await verifies(t, await credentialsOf(dir, 'example.com', 'alice'), secrets[0]!, '--password');

  const piped = await cli(dir, ['user', 'add', 'bob@other.org'], { input: `${secrets[1]}\nsecond line is ignored\n` });
  t.equal(piped.code, 0, piped.stderr);
  await verifies(t, await credentialsOf(dir, 'other.org', 'bob'), secrets[1]!, 'stdin');

  const changed = await cli(dir, ['user', 'passwd', 'alice@example.com'], { input: `${secrets[2]}\r\n` });
  t.equal(changed.code, 0, changed.stderr);
  t.equal(changed.stdout, 'changed password of alice@example.com\n');
  const alice = await credentialsOf(dir, 'example.com', 'alice');
  await verifies(t, alice, secrets[2]!, 'passwd');
  t.notOk(await verifyPassword('sha256', alice!['SCRAM-SHA-256'], secrets[0]!), 'old password no longer works');

  await cli(dir, ['user', 'add', 'carol@example.com', '--password', 'x']);
  const all = await cli(dir, ['user', 'list']);
  t.equal(all.stdout, 'alice@example.com\ncarol@example.com\nbob@other.org\n', 'sorted by host, then user');
  t.equal((await cli(dir, ['user', 'list', 'other.org'])).stdout, 'bob@other.org\n');

  const deleted = await cli(dir, ['user', 'delete', 'carol@example.com']);
  t.equal(deleted.code, 0, deleted.stderr);
  t.equal(deleted.stdout, 'deleted user carol@example.com\n');
  t.equal((await cli(dir, ['user', 'list', 'example.com'])).stdout, 'alice@example.com\n');
});

t.test('list, passwd and delete with no database at DATA_DIR say so and create none (a CLI run from another directory)', async (t) => {
  // DATA_DIR defaults to ./data: run from the wrong directory, `user list` printed nothing with exit 0 and
  // left a new empty database behind, and passwd/delete said the user does not exist.
  const dir = t.testdir();
  for (const args of [['user', 'list'], ['user', 'passwd', 'alice@example.com', '--password', 'pw'], ['user', 'delete', 'alice@example.com']]) {
    const run = await cli(dir, args);
    t.equal(run.code, 1, `${args[1]}: exit 1`);
    t.match(run.stderr, new RegExp(`^xmpp-web-gateway: no database at ${join(dir, 'data', DATABASE_FILE).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: is DATA_DIR right\\? \\(a relative one is read from the current directory\\)$`, 'm'), `${args[1]}: says so`);
    t.notOk(existsSync(join(dir, 'data', DATABASE_FILE)), `${args[1]}: no database created`);
  }
  const added = await cli(dir, ['user', 'add', 'alice@example.com', '--password', 'pw']);
  t.equal(added.code, 0, `add still creates the database of a new install: ${added.stderr}`);
  t.equal((await cli(dir, ['user', 'list'])).stdout, 'alice@example.com\n');
});

t.test('errors exit 1 with a message and never echo the password', async (t) => {
  const dir = t.testdir();
  const secret = 'never-print-me';
  await cli(dir, ['user', 'add', 'alice@example.com', '--password', 'pw']);
  const runs: [string, string[], string | RegExp, string?][] = [
    ['existing user', ['user', 'add', 'alice@example.com', '--password', secret], "user 'alice@example.com' already exists"],
    ['unknown host', ['user', 'add', 'alice@nowhere.net', '--password', secret], "unknown host 'nowhere.net'; configured hosts: example.com, other.org"],
    ['bad JID', ['user', 'add', 'bad@@jid', '--password', secret], /invalid JID 'bad@@jid'/],
    ['no local part', ['user', 'add', 'example.com', '--password', secret], /invalid JID 'example.com': expected user@host/],
    ['full JID', ['user', 'add', 'x@example.com/phone', '--password', secret], /expected a bare JID/],
    ['unknown user (passwd)', ['user', 'passwd', 'ghost@example.com', '--password', secret], "user 'ghost@example.com' does not exist"],
    ['unknown user (delete)', ['user', 'delete', 'ghost@example.com'], "user 'ghost@example.com' does not exist"],
    ['empty --password', ['user', 'add', 'new@example.com', '--password', ''], 'empty password'],
    ['empty stdin', ['user', 'add', 'new@example.com'], 'empty password', ''],
    ['missing argument', ['user', 'add'], /usage: xmpp-web-gateway user add JID/],
    ['stray option', ['user', 'delete', 'alice@example.com', '--password', secret], /--password is not accepted/],
  ];
  for (const [what, args, message, input] of runs) {
    const r = await cli(dir, args, { input: input ?? `${secret}\n` });
    fails(t, r, message, what);
    t.notOk(r.stderr.includes(secret), `${what}: password not printed`);
  }
  t.equal((await cli(dir, ['user', 'list'])).stdout, 'alice@example.com\n', 'nothing changed');
});

t.test('settings come from the environment and ./.env', async (t) => {
  const dir = t.testdir();
  const bad = await cli(dir, ['user', 'list'], { env: { SCRAM_ITERATIONS: '12' } });
  fails(t, bad, /SCRAM_ITERATIONS="12" is invalid: expected an integer from 4096 to 1000000/, 'bad SCRAM_ITERATIONS');

  // Set but blank where blank is not the default: the server refuses to start, and so does the CLI, in the same words.
  for (const name of ['XMPP_DOMAIN', 'STORAGE', 'DATA_DIR']) {
    let serverSays = '';
    try { loadConfig({ [name]: '' }); } catch (err) { serverSays = String((err as Error).message); }
    const line = serverSays.split('\n').find((l) => l.includes(`${name}=""`));
    t.ok(line, `${name}= stops the server: ${serverSays}`);
    const blank = await cli(dir, ['user', 'add', 'blank@example.com', '--password', 'pw'], { env: { [name]: '' } });
    fails(t, blank, new RegExp(`${name}="" is invalid: expected .*; unset ${name} for its default`), `${name}= (blank)`);
    t.ok(line !== undefined && blank.stderr.includes(line), `${name}=: the server's line, word for word`);
  }
  // A combination the server refuses: the CLI too, in the server's words.
  for (const [env, line] of [
    [{ CLUSTER: 'redis', REDIS_URL: 'redis://127.0.0.1:6379' }, /STORAGE=sqlite is invalid with CLUSTER=redis/],
    [{ CLUSTER: 'sometimes' }, /CLUSTER="sometimes" is invalid: expected one of none, redis/],
    [{ NODE_ID: 'no spaces allowed' }, /NODE_ID="no spaces allowed" is invalid/],
  ] as const) {
    const r = await cli(dir, ['user', 'add', 'combo@example.com', '--password', 'pw'], { env });
    fails(t, r, line, JSON.stringify(env));
  }
  // Blank where it is the default (DATABASE_URL, unset: none): accepted, as by the server.
  const blankUrl = await cli(dir, ['user', 'add', 'url@example.com', '--password', 'pw'], { env: { DATABASE_URL: ' ' } });
  t.equal(blankUrl.code, 0, `DATABASE_URL= is the default: ${blankUrl.stderr}`);

  writeFileSync(join(dir, '.env'), 'XMPP_DOMAIN=from-file.example\nSCRAM_ITERATIONS=5000\n');
  const env = { XMPP_DOMAIN: undefined, SCRAM_ITERATIONS: undefined };
  const fromFile = await cli(dir, ['user', 'add', 'dora@from-file.example', '--password', 'pw'], { env });
  t.equal(fromFile.code, 0, fromFile.stderr);
  t.equal((await credentialsOf(dir, 'from-file.example', 'dora'))!['SCRAM-SHA-1'].iterations, 5000);
  const realWins = await cli(dir, ['user', 'add', 'dora@from-file.example', '--password', 'pw']);
  fails(t, realWins, /unknown host 'from-file.example'; configured hosts: example.com, other.org/, 'real env wins');
});

t.test('XMPP_DOMAIN in A-labels: accounts are stored under the U-labels the server serves, named either way', async (t) => {
  const dir = t.testdir();
  const env = { XMPP_DOMAIN: 'xn--bcher-kva.example' };
  const added = await cli(dir, ['user', 'add', 'eve@xn--bcher-kva.example', '--password', 'pw'], { env });
  t.equal(added.code, 0, added.stderr);
  const unicode = await cli(dir, ['user', 'add', 'finn@bücher.example', '--password', 'pw'], { env });
  t.equal(unicode.code, 0, `the host in U-labels: ${unicode.stderr}`);
  t.equal((await cli(dir, ['user', 'list'], { env })).stdout, 'eve@bücher.example\nfinn@bücher.example\n');
  // The host named as XMPP_DOMAIN names it (A-labels) lists the same accounts: it printed nothing.
  t.equal((await cli(dir, ['user', 'list', 'xn--bcher-kva.example'], { env })).stdout, 'eve@bücher.example\nfinn@bücher.example\n', 'list HOST in A-labels');
  t.equal((await cli(dir, ['user', 'list', 'BÜCHER.example'], { env })).stdout, 'eve@bücher.example\nfinn@bücher.example\n', 'list HOST in upper case');
  await verifies(t, await credentialsOf(dir, 'bücher.example', 'eve'), 'pw', 'eve');
});

t.test('import: 10,000 accounts in one run', async (t) => {
  const dir = t.testdir();
  const lines = ['# generated', ''];
  for (let i = 0; i < 10_000; i++) lines.push(`user${i}@${i % 2 ? 'example.com' : 'other.org'}\tpw ${i} with spaces`);
  const r = await cli(dir, ['user', 'import'], { input: `${lines.join('\n')}\n` });
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'imported 10000 users\n');
  const storage = openSqliteStorage(join(dir, 'data'));
  t.teardown(() => storage.close());
  t.equal((await storage.users.list()).length, 10_000);
  t.equal((await storage.users.list('example.com')).length, 5_000);
  await verifies(t, (await storage.users.get('example.com', 'user4321'))?.credentials, 'pw 4321 with spaces', 'sampled user');
});

t.test('import is all or nothing and names the bad line', async (t) => {
  const dir = t.testdir();
  await cli(dir, ['user', 'add', 'taken@example.com', '--password', 'pw']);
  const cases: [string, string, RegExp][] = [
    ['existing user', 'a@example.com one\ntaken@example.com two\n', /line 2: user 'taken@example.com' already exists; nothing was imported/],
    ['duplicate in input', 'a@example.com one\n\nA@example.com two\n', /line 3: 'a@example.com' is already listed on line 1/],
    ['missing password', 'a@example.com one\n# note\nb@example.com   \n', /line 3: expected 'JID PASSWORD'/],
    ['unknown host', 'a@example.com one\nb@nowhere.net two\n', /line 2: unknown host 'nowhere.net'/],
    ['bad JID', 'a@example.com one\n@example.com two\n', /line 2: invalid JID '@example.com'/],
  ];
  for (const [what, input, message] of cases) {
    const r = await cli(dir, ['user', 'import'], { input });
    fails(t, r, message, what);
    t.notOk(/one|two/.test(r.stderr), `${what}: passwords not printed`);
  }
  t.equal((await cli(dir, ['user', 'list'])).stdout, 'taken@example.com\n', 'nothing imported');
});

t.test('the CLI writes while a "server" connection holds the database open', async (t) => {
  const dir = t.testdir();
  const server = openSqliteStorage(join(dir, 'data'));
  t.teardown(() => server.close());
  t.same(await server.users.list(), []);
  const r = await cli(dir, ['user', 'add', 'live@example.com', '--password', 'pw']);
  t.equal(r.code, 0, r.stderr);
  t.ok(await server.users.get('example.com', 'live'), 'visible to the open connection');
});

t.test('the bin explains a missing build', async (t) => {
  const dir = t.testdir();
  mkdirSync(join(dir, 'bin'));
  copyFileSync(BIN, join(dir, 'bin', 'xmpp-web-gateway.js'));
  const r = await cli(dir, ['--help'], { bin: join(dir, 'bin', 'xmpp-web-gateway.js') });
  fails(t, r, /run `npm run build`/, 'no dist');
});

t.test('STORAGE=postgres: the account commands work against PostgreSQL', async (t) => {
  const server = await startPostgres();
  t.teardown(() => server.stop());
  const url = await server.createDatabase();
  const dir = t.testdir();
  const env = { STORAGE: 'postgres', DATABASE_URL: url };
  const added = await cli(dir, ['user', 'add', 'pg@example.com'], { env, input: 'pg-secret\n' });
  t.equal(added.code, 0, added.stderr);
  t.equal(added.stdout, 'created user pg@example.com\n');
  const listed = await cli(dir, ['user', 'list'], { env });
  t.equal(listed.code, 0, listed.stderr);
  t.equal(listed.stdout, 'pg@example.com\n');
  const storage = await openPostgresStorage({ url });
  t.teardown(() => storage.close());
  await verifies(t, (await storage.users.get('example.com', 'pg'))?.credentials, 'pg-secret', 'stored in PostgreSQL');
  t.notOk(existsSync(join(dir, 'data', DATABASE_FILE)), 'no SQLite file was created');

  const down = await cli(dir, ['user', 'list'], { env: { STORAGE: 'postgres', DATABASE_URL: 'postgres://gw:pw-in-url@127.0.0.1:1/none' } });
  t.equal(down.code, 1);
  t.match(down.stderr, /^xmpp-web-gateway: DATABASE_URL: cannot open the PostgreSQL database: .*ECONNREFUSED/m, 'one line naming the variable');
  t.notMatch(down.stderr, /pw-in-url|\n\s+at /, 'neither the password nor a stack trace');
  const missing = await cli(dir, ['user', 'list'], { env: { STORAGE: 'postgres' } });
  t.equal(missing.code, 1);
  t.match(missing.stderr, /DATABASE_URL is required when STORAGE=postgres/);
});

t.test('STORAGE=postgres: an unreachable DATABASE_URL stops the server start naming the variable', async (t) => {
  const dir = t.testdir();
  const run = await cli(dir, ['serve'], { env: { STORAGE: 'postgres', DATABASE_URL: 'postgres://gw:pw-in-url@127.0.0.1:1/none', PORT: '0', HOST: '127.0.0.1' }, timeoutMs: 30_000 });
  t.equal(run.code, 2, run.stderr);
  t.match(run.stderr, /configuration error: DATABASE_URL: cannot open the PostgreSQL database: .*ECONNREFUSED/);
  t.notMatch(run.stderr, /pw-in-url/, 'the password is not echoed');
});

t.test('a ./.env that cannot be read stops the server start with one line, not a stack trace', async (t) => {
  const dir = t.testdir();
  mkdirSync(join(dir, '.env'));
  // node dist/main.js (the image's CMD, npm start): it printed the EISDIR stack and exited 1.
  const run = await cli(dir, [], { bin: join(ROOT, 'dist', 'main.js'), env: { PORT: '0', HOST: '127.0.0.1', ADMIN_SOCKET: 'off' }, timeoutMs: 30_000 });
  t.equal(run.code, 2, run.stderr);
  t.match(run.stderr, /^xmpp-web-gateway: configuration error: cannot read \.env: EISDIR/m);
  t.notMatch(run.stderr, /\n\s+at /, 'no stack trace');
});

t.test('a name in ./.env that is no setting (a typo) is warned about, naming it, and the start goes on', async (t) => {
  const dir = t.testdir();
  // SM_RESUME_TIMOUT: the operator meant SM_RESUME_TIMEOUT and got the default, without a word (ejabberd refuses an
  // unknown option). Names that are settings, and those of the real environment (PATH), are not warned about.
  writeFileSync(join(dir, '.env'), 'SM_RESUME_TIMOUT=60\nLOG_LEVEL=warn\nallow_insecure_plain=true\n');
  const run = await cli(dir, [], { bin: join(ROOT, 'dist', 'main.js'), env: { PORT: '0', HOST: '127.0.0.1', ADMIN_SOCKET: 'off' }, timeoutMs: 5_000 });
  t.match(run.stderr, /^xmpp-web-gateway: warning: \.env sets SM_RESUME_TIMOUT, which is no setting \(see \.env\.example\)$/m);
  t.match(run.stderr, /^xmpp-web-gateway: warning: \.env sets allow_insecure_plain, which is no setting/m, 'names are case-sensitive');
  t.notMatch(run.stderr, /LOG_LEVEL|PATH/, 'settings are not warned about');
  t.notMatch(run.stderr, /configuration error/, 'the start went on');
});

t.test('a PORT in use stops the server start with one line naming the variable, not a stack trace', async (t) => {
  const dir = t.testdir();
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  t.teardown(() => busy.close());
  const port = (busy.address() as AddressInfo).port;
  const run = await cli(dir, ['serve'], { env: { PORT: String(port), HOST: '127.0.0.1', ADMIN_SOCKET: 'off' }, timeoutMs: 30_000 });
  t.equal(run.code, 2, run.stderr);
  t.match(run.stderr, new RegExp(`^xmpp-web-gateway: configuration error: PORT=${port} cannot be listened on at 127\\.0\\.0\\.1: the address is in use`, 'm'));
  t.notMatch(run.stderr, /\n\s+at /, 'no stack trace');
});

// ---- in-process: the terminal prompt ----

/** A fake terminal: stdin that claims to be a TTY, and stderr captured to wait for prompts. */
function terminal() {
  const stdin = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => stdin });
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let shown = '';
  stderr.on('data', (b: Buffer) => { shown += b.toString(); });
  const io: CliIo = { stdin, stdout, stderr, env: { XMPP_DOMAIN: 'example.com', SCRAM_ITERATIONS: '4096' } };
  const waitFor = (text: string) => eventually(() => shown.includes(text), { interval: 5, message: `the prompt ${JSON.stringify(text)}` });
  return { io, stdin, stdout, shown: () => shown, waitFor };
}

t.test('prompts twice on a terminal, without echo', async (t) => {
  const storage = createMemoryStorage();
  const deps = { openStorage: () => storage, startServer: async () => {} };

  const ok = terminal();
  const added = runCli(['user', 'add', 'tty@example.com'], ok.io, deps);
  await ok.waitFor('Password: ');
  ok.stdin.write('typed-secret\r');
  await ok.waitFor('Repeat password: ');
  ok.stdin.write('typed-secret\r');
  t.equal(await added, 0, ok.shown());
  t.notOk(ok.shown().includes('typed-secret'), 'not echoed');
  await verifies(t, (await storage.users.get('example.com', 'tty'))?.credentials, 'typed-secret', 'prompt');

  const mismatch = terminal();
  const failed = runCli(['user', 'passwd', 'tty@example.com'], mismatch.io, deps);
  await mismatch.waitFor('Password: ');
  mismatch.stdin.write('one\r');
  await mismatch.waitFor('Repeat password: ');
  mismatch.stdin.write('two\r');
  t.equal(await failed, 1);
  t.match(mismatch.shown(), /passwords do not match/);

  const cancelled = terminal();
  const aborted = runCli(['user', 'add', 'later@example.com'], cancelled.io, deps);
  await cancelled.waitFor('Password: ');
  cancelled.stdin.write('\x03'); // Ctrl-C
  t.equal(await aborted, 1);
  t.match(cancelled.shown(), /password entry cancelled/);
  t.equal(await storage.users.get('example.com', 'later'), undefined);
});

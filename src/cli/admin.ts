/**
 * `sessions list|kick`, `stats`, `announce`: requests to the running server
 * over its admin socket (src/admin/). In a cluster the socket speaks for its
 * own node only, and the output says so.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { adminRequest, AdminUnavailableError } from '../admin/client.js';
import { isStreamErrorCondition, streamErrorConditions, type AdminRequest } from '../admin/protocol.js';
import type { AdminStats, SessionInfo } from '../admin/port.js';
import { CliError, EXIT } from './errors.js';
import { println, readLines, type CliIo } from './io.js';
import { cliSettingsFromEnv } from './settings.js';
import { ADMIN_USAGE, PROGRAM } from './usage.js';

/** Sends `request` to the server named by the environment; maps every failure to its exit code. */
export async function askServer(io: CliIo, request: AdminRequest): Promise<unknown> {
  const path = cliSettingsFromEnv(io.env).adminSocket;
  if (path === undefined) throw new CliError('ADMIN_SOCKET=off: the admin socket is disabled', EXIT.notRunning);
  let answer;
  try {
    answer = await adminRequest(path, request);
  } catch (err) {
    if (err instanceof AdminUnavailableError) throw new CliError(err.message, EXIT.notRunning);
    if ((err as NodeJS.ErrnoException).code === 'EACCES') throw new CliError(`permission denied on ${path}: run as the server's user`, EXIT.refused);
    throw err;
  }
  if (answer.ok) return answer.result;
  throw new CliError(answer.error.text, answer.error.condition === 'bad-request' ? EXIT.usage : EXIT.refused);
}

/** Every admin option; each command accepts only its own (`names`). */
const OPTIONS = {
  json: { type: 'boolean' }, condition: { type: 'string', short: 'c' }, subject: { type: 'string', short: 's' },
} as const satisfies ParseArgsConfig['options'];

function parse(argv: string[], names: readonly (keyof typeof OPTIONS)[], usage: string) {
  try {
    const parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    const other = Object.keys(parsed.values).find((k) => !names.includes(k as keyof typeof OPTIONS));
    if (other !== undefined) throw new CliError(`option '--${other}' is not accepted here\nusage: ${PROGRAM} ${usage}`);
    return parsed;
  } catch (err) {
    if (err instanceof Error && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) throw new CliError(`${err.message}\nusage: ${PROGRAM} ${usage}`);
    throw err;
  }
}

const age = (seconds: number): string =>
  seconds < 60 ? `${seconds}s` : seconds < 3600 ? `${Math.floor(seconds / 60)}m${seconds % 60}s` : `${Math.floor(seconds / 3600)}h${Math.floor((seconds % 3600) / 60)}m`;

/** Columns padded to their widest cell. */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd());
}

async function sessionsList(io: CliIo, argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, ['json'], 'sessions list [--json]');
  if (positionals.length > 0) throw new CliError(`usage: ${PROGRAM} sessions list [--json]`);
  const sessions = (await askServer(io, { op: 'sessions.list' })) as SessionInfo[];
  if (values.json === true) return println(io.stdout, JSON.stringify(sessions));
  const rows = sessions.map((s) => [s.jid ?? '(unbound)', s.transport, s.ip, s.state, age(s.ageSeconds), s.unacked === null ? '-' : String(s.unacked)]);
  for (const line of table([['JID', 'TRANSPORT', 'IP', 'STATE', 'AGE', 'UNACKED'], ...rows])) println(io.stdout, line);
  println(io.stderr, `${sessions.length} session${sessions.length === 1 ? '' : 's'} on this node (in a cluster, each node answers for its own)`);
}

async function sessionsKick(io: CliIo, argv: string[]): Promise<void> {
  const usage = 'sessions kick JID [--condition CONDITION]';
  const { values, positionals } = parse(argv, ['condition'], usage);
  if (positionals.length !== 1) throw new CliError(`usage: ${PROGRAM} ${usage}`);
  const condition = values.condition ?? 'policy-violation';
  if (!isStreamErrorCondition(condition)) {
    throw new CliError(`--condition '${condition}' is not an RFC 6120 stream error condition; one of: ${streamErrorConditions().join(', ')}`);
  }
  const { kicked } = (await askServer(io, { op: 'sessions.kick', jid: positionals[0]!, condition })) as { kicked: number };
  println(io.stdout, `ended ${kicked} session${kicked === 1 ? '' : 's'} of ${positionals[0]} with ${condition}`);
}

function printStats(io: CliIo, s: AdminStats): void {
  const out = (text: string): void => println(io.stdout, text);
  out(`node: ${s.node ?? '(single process)'}${s.node ? ' (this node only)' : ''}`);
  out(`uptime: ${age(s.uptimeSeconds)}`);
  out(`storage: ${s.storage}`);
  out(`messages in: ${s.messages.in ?? 'not counted'}`);
  out(`messages out: ${s.messages.out ?? 'not counted'}`);
  const rows = Object.entries(s.sessions).flatMap(([transport, states]) => Object.entries(states).map(([state, n]) => [transport, state, String(n)]));
  out('sessions:');
  for (const line of table([['TRANSPORT', 'STATE', 'COUNT'], ...rows])) out(`  ${line}`);
}

async function stats(io: CliIo, argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, ['json'], 'stats [--json]');
  if (positionals.length > 0) throw new CliError(`usage: ${PROGRAM} stats [--json]`);
  const result = (await askServer(io, { op: 'stats' })) as AdminStats;
  if (values.json === true) println(io.stdout, JSON.stringify(result));
  else printStats(io, result);
}

/** The message: the arguments after HOST, else stdin (all of it, lines kept). */
async function announcement(io: CliIo, words: string[]): Promise<string> {
  if (words.length > 0) return words.join(' ');
  if (io.stdin.isTTY) println(io.stderr, 'Type the announcement; end with Ctrl-D.');
  const lines: string[] = [];
  for await (const line of readLines(io.stdin)) lines.push(line);
  return lines.join('\n').trim();
}

async function announce(io: CliIo, argv: string[]): Promise<void> {
  const usage = 'announce HOST [--subject S] [MESSAGE]';
  const { values, positionals } = parse(argv, ['subject'], usage);
  const [host, ...words] = positionals;
  if (host === undefined) throw new CliError(`usage: ${PROGRAM} ${usage}`);
  const body = await announcement(io, words);
  if (body === '') throw new CliError('the announcement is empty');
  const subject = values.subject;
  const { sent } = (await askServer(io, { op: 'announce', host, body, ...(subject ? { subject } : {}) })) as { sent: number };
  println(io.stdout, `announced to ${sent} online resource${sent === 1 ? '' : 's'} on ${host} (this node)`);
}

/** Runs `sessions …`, `stats` or `announce …`; returns the exit code. */
export async function runAdminCommand(command: string, argv: string[], io: CliIo): Promise<number> {
  if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    println(io.stdout, ADMIN_USAGE);
    return EXIT.ok;
  }
  if (command === 'stats') await stats(io, argv);
  else if (command === 'announce') await announce(io, argv);
  else if (argv[0] === 'list') await sessionsList(io, argv.slice(1));
  else if (argv[0] === 'kick') await sessionsKick(io, argv.slice(1));
  else throw new CliError(`usage: ${PROGRAM} sessions list [--json] | sessions kick JID [--condition C]`);
  return EXIT.ok;
}

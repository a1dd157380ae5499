/**
 * The admin socket: a Unix socket (ADMIN_SOCKET, in DATA_DIR by default)
 * that only the server's own Unix user may open (mode 0600 from the moment
 * it exists), answering newline-delimited JSON requests through the AdminPort.
 */
import { chmodSync, lstatSync, rmSync, statSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Log } from '../xmpp/log.js';
import type { AdminPort } from './port.js';
import { AdminError, lineSplitter, MAX_LINE_BYTES, parseRequest, type AdminAnswer, type AdminRequest } from './protocol.js';

export interface AdminSocket {
  readonly path: string;
  /** Stops listening, ends open connections and removes the socket file. */
  close(): Promise<void>;
}

/** Thrown when the socket cannot be made safely; the message names ADMIN_SOCKET and the path. */
export class AdminSocketError extends Error {
  constructor(message: string) {
    super(`ADMIN_SOCKET: ${message}`);
    this.name = 'AdminSocketError';
  }
}

/** True when something accepts connections on `path` (another server is running). */
export function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => { probe.destroy(); resolve(true); });
    probe.once('error', () => resolve(false));
  });
}

/**
 * The directory must not let another user swap the socket for their own:
 * not writable by group or others unless sticky (like /tmp), where only the
 * owner may remove an entry.
 */
function checkDirectory(path: string): void {
  const dir = dirname(path);
  const { mode } = statSync(dir);
  if ((mode & 0o022) !== 0 && (mode & 0o1000) === 0) {
    throw new AdminSocketError(`the directory ${dir} is writable by other users (mode ${(mode & 0o7777).toString(8)}); make it 0700 or choose another path`);
  }
}

/** A socket file left by a crash is removed, but only when nothing answers on it and it is a socket. */
async function clearStale(path: string): Promise<void> {
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new AdminSocketError(`${path} exists and is not a socket; not removed`);
  if (await answers(path)) throw new AdminSocketError(`another server answers on ${path}`);
  rmSync(path, { force: true });
}

async function run(port: AdminPort, req: AdminRequest): Promise<unknown> {
  switch (req.op) {
    case 'sessions.list': return port.listSessions();
    case 'sessions.kick': return { kicked: port.kick(req.jid, req.condition) };
    case 'stats': return port.stats();
    case 'announce': return { sent: await port.announce(req.host, req.body, req.subject) };
    case 'backup': return { file: await port.backup(req.dir) };
  }
}

/** What an operator did, for the audit trail (reads are not logged). */
function audit(req: AdminRequest, log: Log): void {
  if (req.op === 'sessions.list' || req.op === 'stats') return;
  const what = req.op === 'sessions.kick' ? { jid: req.jid, condition: req.condition } : req.op === 'announce' ? { host: req.host } : { dir: req.dir };
  log.info({ event: 'admin-request', op: req.op, ...what }, 'admin request');
}

async function answer(port: AdminPort, line: string, log: Log): Promise<AdminAnswer> {
  try {
    const req = parseRequest(line);
    audit(req, log);
    return { ok: true, result: await run(port, req) };
  } catch (err) {
    if (err instanceof AdminError) return { ok: false, error: { condition: err.condition, text: err.message } };
    log.error({ err, event: 'admin-error' }, 'admin request failed');
    return { ok: false, error: { condition: 'internal-server-error', text: err instanceof Error ? err.message : String(err) } };
  }
}

/** sockaddr_un holds 108 bytes with the NUL on Linux, 104 on BSDs. */
export const MAX_PATH_BYTES = 103;

/** Connections at once; the socket is the operator's, a few are plenty. */
const MAX_CONNECTIONS = 16;

/**
 * One connection: requests answered one at a time, in order. Reading pauses
 * for each chunk until its answers are written and drained, so a client
 * that sends without reading holds one chunk's worth, not an ever-growing backlog.
 */
function serve(socket: Socket, port: AdminPort, log: Log): void {
  let chain = Promise.resolve();
  const write = (a: AdminAnswer): Promise<void> | void => {
    if (socket.destroyed || socket.write(`${JSON.stringify(a)}\n`)) return;
    return new Promise((resolve) => { socket.once('drain', resolve); socket.once('close', resolve); });
  };
  const split = lineSplitter(MAX_LINE_BYTES, (line) => {
    if (line.trim() === '') return;
    chain = chain.then(async () => write(await answer(port, line, log)));
  }, () => {
    socket.pause();
    chain = chain.then(async () => {
      await write({ ok: false, error: { condition: 'policy-violation', text: `a request line is limited to ${MAX_LINE_BYTES} bytes` } });
      socket.end();
    });
  });
  socket.on('data', (chunk: Buffer) => {
    socket.pause();
    split(chunk);
    chain = chain.then(() => { if (!socket.destroyed && !socket.writableEnded) socket.resume(); });
  });
  socket.on('error', () => socket.destroy());
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    // The socket is bound synchronously inside listen() (exclusive: by this process even in a
    // node:cluster worker), so a umask set around it makes it 0600 before anyone could connect.
    const umask = process.umask(0o177);
    try {
      server.listen({ path, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(umask);
    }
  });
}

/** Listens on `path`; @throws AdminSocketError when it cannot be made safely. */
export async function startAdminSocket(path: string, port: AdminPort, log: Log): Promise<AdminSocket> {
  // Node would bind a truncated path instead of failing.
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) throw new AdminSocketError(`${path} is longer than ${MAX_PATH_BYTES} bytes, the most a Unix socket address holds; choose a shorter path`);
  checkDirectory(path);
  await clearStale(path);
  const connections = new Set<Socket>();
  const server = createServer((socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
    serve(socket, port, log);
  });
  server.maxConnections = MAX_CONNECTIONS;
  await listen(server, path).catch((err: unknown) => {
    throw new AdminSocketError(`cannot listen on ${path}: ${err instanceof Error ? err.message : String(err)}`);
  });
  // Belt and braces: on a platform where the umask did not apply, tighten it before announcing.
  chmodSync(path, 0o600);
  log.info({ event: 'admin-socket', path }, 'admin socket listening');
  let closing: Promise<void> | undefined;
  return {
    path,
    close: () => (closing ??= new Promise<void>((resolve) => {
      for (const socket of connections) socket.destroy();
      server.close(() => {
        rmSync(path, { force: true });
        resolve();
      });
    })),
  };
}

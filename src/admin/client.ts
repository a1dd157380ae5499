/** The CLI's side of the admin socket: one request, one answer. */
import { createConnection } from 'node:net';
import { lineSplitter, type AdminAnswer, type AdminRequest } from './protocol.js';

/** Nothing listens on the socket: the server is not running (or ADMIN_SOCKET differs). */
export class AdminUnavailableError extends Error {
  constructor(readonly path: string, readonly code: string | undefined) {
    super(`the server is not running, or not with this ADMIN_SOCKET: nothing answers on ${path}${code ? ` (${code})` : ''}`);
    this.name = 'AdminUnavailableError';
  }
}

/** Answers are not bounded like requests (a session list is long) but a runaway one is cut. */
const MAX_ANSWER_BYTES = 256 * 1024 * 1024;

const UNAVAILABLE = new Set(['ENOENT', 'ECONNREFUSED', 'ENOTSOCK']);

/** Sends `request` on the socket at `path`; @throws AdminUnavailableError when nobody answers there. */
export function adminRequest(path: string, request: AdminRequest): Promise<AdminAnswer> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let connected = false;
    const split = lineSplitter(MAX_ANSWER_BYTES, (line) => {
      socket.end();
      try {
        resolve(JSON.parse(line) as AdminAnswer);
      } catch {
        reject(new Error(`the server sent an answer that is not JSON on ${path}`));
      }
    }, () => {
      socket.destroy();
      reject(new Error(`the server's answer exceeds ${MAX_ANSWER_BYTES} bytes`));
    });
    socket.once('connect', () => {
      connected = true;
      socket.write(`${JSON.stringify(request)}\n`);
    });
    socket.on('data', split);
    socket.once('error', (err: NodeJS.ErrnoException) => {
      reject(!connected && UNAVAILABLE.has(err.code ?? '') ? new AdminUnavailableError(path, err.code) : err);
    });
    socket.once('close', () => reject(new Error(`the server closed ${path} without answering`)));
  });
}

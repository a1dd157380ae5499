/**
 * The admin socket's wire protocol, shared by the server (src/admin/server.ts)
 * and the CLI (src/admin/client.ts): newline-delimited JSON, one request per
 * line, one answer per line, in order.
 */
import type { StreamErrorCondition } from '../xmpp/errors.js';
import { isXmlText } from '../xml/index.js';

/** Longest request line accepted; a longer one is answered with policy-violation and the connection closed. */
export const MAX_LINE_BYTES = 64 * 1024;

export type AdminRequest =
  | { readonly op: 'sessions.list' }
  | { readonly op: 'sessions.kick'; readonly jid: string; readonly condition: StreamErrorCondition }
  | { readonly op: 'stats' }
  | { readonly op: 'announce'; readonly host: string; readonly subject?: string; readonly body: string }
  | { readonly op: 'backup'; readonly dir: string };

/** Why a request was not done, in RFC 6120 §8.3.3 words. */
export type AdminErrorCondition = 'bad-request' | 'item-not-found' | 'not-allowed' | 'conflict' | 'policy-violation' | 'internal-server-error';

export type AdminAnswer =
  | { readonly ok: true; readonly result: unknown }
  | { readonly ok: false; readonly error: { readonly condition: AdminErrorCondition; readonly text: string } };

/** Thrown by the admin port: answered as `{ok: false, error}`. */
export class AdminError extends Error {
  constructor(readonly condition: AdminErrorCondition, text: string) {
    super(text);
    this.name = 'AdminError';
  }
}

/** RFC 6120 §4.9.3: every stream error condition (a Record, so a condition added to the union must be listed here). */
const STREAM_ERROR_CONDITIONS: Record<StreamErrorCondition, true> = {
  'bad-format': true, 'bad-namespace-prefix': true, conflict: true, 'connection-timeout': true, 'host-gone': true,
  'host-unknown': true, 'improper-addressing': true, 'internal-server-error': true, 'invalid-from': true,
  'invalid-namespace': true, 'invalid-xml': true, 'not-authorized': true, 'not-well-formed': true,
  'policy-violation': true, 'remote-connection-failed': true, reset: true, 'resource-constraint': true,
  'restricted-xml': true, 'see-other-host': true, 'system-shutdown': true, 'undefined-condition': true,
  'unsupported-encoding': true, 'unsupported-feature': true, 'unsupported-stanza-type': true, 'unsupported-version': true,
};

export const streamErrorConditions = (): string[] => Object.keys(STREAM_ERROR_CONDITIONS);

export function isStreamErrorCondition(value: unknown): value is StreamErrorCondition {
  return typeof value === 'string' && Object.hasOwn(STREAM_ERROR_CONDITIONS, value);
}

const text = (o: Record<string, unknown>, key: string, optional = false): string | undefined => {
  const value = o[key];
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'string' || value === '') throw new AdminError('bad-request', `'${key}' must be a non-empty string`);
  return value;
};

/**
 * A string that goes into XML sent to clients: XML 1.0 §2.2 allows no other
 * characters (an ESC of a pasted colour code, a form feed, NUL), and one in a
 * headline would make every recipient's stream not well-formed.
 */
const xmlText = (o: Record<string, unknown>, key: string, optional = false): string | undefined => {
  const value = text(o, key, optional);
  if (value !== undefined && !isXmlText(value)) throw new AdminError('bad-request', `'${key}' holds a character XML does not allow (a control character other than tab and newline)`);
  return value;
};

/** Parses one request line; @throws AdminError bad-request naming what is wrong. */
export function parseRequest(line: string): AdminRequest {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    throw new AdminError('bad-request', 'not JSON');
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new AdminError('bad-request', 'expected a JSON object');
  const r = o as Record<string, unknown>;
  switch (r.op) {
    case 'sessions.list':
    case 'stats':
      return { op: r.op };
    case 'sessions.kick':
      if (!isStreamErrorCondition(r.condition)) throw new AdminError('bad-request', `'condition' must be an RFC 6120 stream error condition`);
      return { op: r.op, jid: text(r, 'jid')!, condition: r.condition };
    case 'announce':
      return { op: r.op, host: text(r, 'host')!, subject: xmlText(r, 'subject', true), body: xmlText(r, 'body')! };
    case 'backup':
      return { op: r.op, dir: text(r, 'dir')! };
    default:
      throw new AdminError('bad-request', `unknown op ${JSON.stringify(r.op)}`);
  }
}

/**
 * Splits a byte stream into lines, holding at most `maxBytes` of an
 * unfinished line: past that `overflow` is called once and nothing more is
 * passed on (the caller closes the connection).
 */
export function lineSplitter(maxBytes: number, onLine: (line: string) => void, overflow: () => void): (chunk: Buffer) => void {
  let parts: Buffer[] = [];
  let held = 0;
  let over = false;
  return (chunk) => {
    let start = 0;
    while (!over) {
      const end = chunk.indexOf(0x0a, start);
      const piece = chunk.subarray(start, end === -1 ? chunk.length : end);
      if (held + piece.length > maxBytes) {
        over = true;
        parts = [];
        overflow();
        return;
      }
      if (end === -1) {
        if (piece.length > 0) parts.push(piece);
        held += piece.length;
        return;
      }
      const line = Buffer.concat([...parts, piece]).toString('utf8');
      parts = [];
      held = 0;
      start = end + 1;
      onLine(line);
    }
  };
}

import { NS, XmlElement, parseXml, x, type XmlAttrInput, type XmlLimits } from '../../xml/index.js';
import type { StreamHeader } from '../../xmpp/conn.js';
import { stanzaErrorReply, streamErrorElement, type StreamError, type StreamErrorCondition } from '../../xmpp/errors.js';
import { parseRid } from './rid-window.js';

/** XEP-0124 §17.2: the terminal binding conditions. */
export type TerminalCondition =
  | 'bad-request' | 'host-gone' | 'host-unknown' | 'improper-addressing' | 'internal-server-error'
  | 'item-not-found' | 'other-request' | 'policy-violation' | 'remote-connection-failed'
  | 'remote-stream-error' | 'see-other-uri' | 'system-shutdown' | 'undefined-condition';

/** The BOSH protocol version we implement (XEP-0124 1.11). */
export const BOSH_VERSION = '1.11';

/**
 * XEP-0124 §17.1: the deprecated HTTP status a legacy client (one that sent
 * no 'ver') expects instead of these three conditions.
 */
const LEGACY_STATUS: Partial<Record<TerminalCondition, number>> = {
  'bad-request': 400, 'policy-violation': 403, 'item-not-found': 404,
};

export function legacyStatus(condition: TerminalCondition | undefined): number {
  return (condition && LEGACY_STATUS[condition]) ?? 200;
}

/** What the session creation response promised (XEP-0124 §7.2), fixed for the session's life. */
export interface BoshParams {
  readonly sid: string;
  readonly creationRid: number;
  readonly wait: number;
  readonly hold: number;
  readonly requests: number;
  readonly inactivity: number;
  readonly polling: number;
  /** 0: pauses are not offered. */
  readonly maxpause: number;
  readonly ver: string;
  readonly contentType: string;
  /** §9.1: the client sent ack='1' at creation, so responses carry 'ack'. */
  readonly ackMode: boolean;
  /** §17.1: the client sent no 'ver', so three conditions also get their HTTP status. */
  readonly legacy: boolean;
}

/** XEP-0124 §7.2 and XEP-0206 §4: the attributes of the session creation response. */
export function creationAttrs(p: BoshParams, header: StreamHeader | undefined): XmlAttrInput {
  return {
    sid: p.sid, wait: p.wait, inactivity: p.inactivity, polling: p.polling, requests: p.requests, hold: p.hold,
    maxpause: p.maxpause > 0 ? p.maxpause : undefined, ver: p.ver, from: header?.from, authid: header?.id,
    ack: p.ackMode ? p.creationRid : undefined,
    'xmlns:xmpp': NS.XBOSH, 'xmpp:version': '1.0', 'xmpp:restartlogic': 'true',
  };
}

/** A request we refuse with a terminal binding condition. */
export class BoshError extends Error {
  constructor(readonly condition: TerminalCondition, message: string) {
    super(message);
    this.name = 'BoshError';
  }
}

/** One client <body/>, parsed and checked once at the edge. */
export interface BoshRequest {
  readonly rid: number;
  readonly sid: string | undefined;
  readonly terminate: boolean;
  /** XEP-0206 §5: xmpp:restart='true'. */
  readonly restart: boolean;
  /** XEP-0124 §10: requested pause in seconds. */
  readonly pause: number | undefined;
  /** XEP-0124 §9.2: highest rid the client has a response for. */
  readonly ack: number | undefined;
  /** XEP-0124 §15: key sequencing. */
  readonly key: string | undefined;
  readonly newkey: string | undefined;
  /** The payloads, in jabber:client where the client left them in the httpbind namespace. */
  readonly payloads: XmlElement[];
  /** Size of the request body on the wire, charged to inbound shaping (issue 10). */
  readonly bytes: number;
  /** Every attribute as written, for the session creation request. */
  readonly attrs: Readonly<Record<string, string>>;
  /** An xmpp:* attribute (XEP-0206), whatever prefix the client bound to urn:xmpp:xbosh. */
  xbosh(local: string): string | undefined;
}

/** Parses an unsigned decimal attribute no larger than `max`; undefined if absent. */
export function uintAttr(attrs: Readonly<Record<string, string>>, name: string, max: number): number | undefined {
  const raw = attrs[name];
  if (raw === undefined) return undefined;
  const trimmed = raw.trim();
  let ok = trimmed.length > 0 && trimmed.length <= 16;
  for (let i = 0; ok && i < trimmed.length; i++) ok = trimmed.charCodeAt(i) >= 48 && trimmed.charCodeAt(i) <= 57;
  const n = Number(trimmed);
  if (!ok || n > max) throw new BoshError('bad-request', `'${name}' must be an integer from 0 to ${max}`);
  return n;
}

/** The prefix the element binds to `uri` on itself, if any. */
function prefixFor(el: XmlElement, uri: string): string | undefined {
  for (const name in el.attrs) {
    if (name.startsWith('xmlns:') && el.attrs[name] === uri) return name.slice(6);
  }
  return undefined;
}

/**
 * XEP-0206 §3 note: many clients leave stanzas in the httpbind namespace,
 * treating jabber:client as part of it. Move such elements (and the
 * descendants that inherited the namespace) into jabber:client.
 */
function rebaseToClient(el: XmlElement): void {
  if (el.ns !== NS.HTTPBIND) return;
  el.ns = NS.CLIENT;
  if (el.attrs.xmlns === NS.HTTPBIND) el.attrs.xmlns = NS.CLIENT;
  for (const c of el.children) if (typeof c !== 'string') rebaseToClient(c);
}

/** The prefixes the element declares on itself (prefix → URI); undefined when none. */
function declaredPrefixes(el: XmlElement): Map<string, string> | undefined {
  let out: Map<string, string> | undefined;
  for (const name in el.attrs) if (name.startsWith('xmlns:')) (out ??= new Map()).set(name.slice(6), el.attrs[name]!);
  return out;
}

/**
 * Namespaces in XML 1.0 §6.1: a prefix declared on the <body/> is in scope in
 * its payloads, but the wrapper is not routed, stored or archived with them.
 * A payload that uses such a prefix (in an element or attribute name, where
 * no declaration inside it shadows the body's) gets the declaration on its
 * own root, so it reads the same on its own: serialised alone it would
 * otherwise carry an undeclared prefix to its recipient, and fail to parse
 * when read back from storage.
 */
function carryPrefixes(payload: XmlElement, declared: ReadonlyMap<string, string>): void {
  const used = new Set<string>();
  const walk = (node: XmlElement, shadowed: ReadonlySet<string>): void => {
    let scope = shadowed;
    for (const name in node.attrs) {
      if (!name.startsWith('xmlns:') || !declared.has(name.slice(6))) continue;
      if (scope === shadowed) scope = new Set(shadowed);
      (scope as Set<string>).add(name.slice(6));
    }
    const note = (name: string): void => {
      const colon = name.indexOf(':');
      if (colon === -1) return;
      const prefix = name.slice(0, colon);
      if (declared.has(prefix) && !scope.has(prefix)) used.add(prefix);
    };
    note(node.name);
    for (const name in node.attrs) note(name);
    for (const c of node.children) if (typeof c !== 'string') walk(c, scope);
  };
  walk(payload, new Set());
  for (const prefix of used) payload.attrs[`xmlns:${prefix}`] = declared.get(prefix)!;
}

/** Checks the wrapper (XEP-0124 §4) and reads the attributes every request may carry. */
export function readRequest(el: XmlElement, bytes = 0): BoshRequest {
  if (el.local !== 'body' || el.ns !== NS.HTTPBIND) throw new BoshError('bad-request', `the root must be <body xmlns='${NS.HTTPBIND}'/>`);
  const rid = parseRid(el.attr('rid')?.trim());
  if (rid === undefined) throw new BoshError('bad-request', "'rid' must be a positive integer below 2^53");
  const type = el.attr('type');
  // §17: the client MAY report binding errors too; a recoverable one (type='error') ends nothing, and
  // the request is taken as any other (as Prosody does).
  if (type !== undefined && type !== 'terminate' && type !== 'error') throw new BoshError('bad-request', `unknown type '${type.slice(0, 32)}'`);
  const payloads: XmlElement[] = [];
  const declared = declaredPrefixes(el);
  for (const c of el.children) {
    // §4: the wrapper carries no character data; whitespace between payloads is tolerated.
    if (typeof c === 'string') {
      if (c.trim() !== '') throw new BoshError('bad-request', '<body/> must not contain character data');
      continue;
    }
    if (declared) carryPrefixes(c, declared);
    rebaseToClient(c);
    payloads.push(c);
  }
  const xboshPrefix = prefixFor(el, NS.XBOSH);
  const xbosh = (local: string): string | undefined => (xboshPrefix === undefined ? undefined : el.attr(`${xboshPrefix}:${local}`));
  return {
    rid,
    bytes,
    sid: el.attr('sid'),
    terminate: type === 'terminate',
    restart: xbosh('restart') === 'true' || xbosh('restart') === '1',
    pause: uintAttr(el.attrs, 'pause', 65535),
    ack: uintAttr(el.attrs, 'ack', Number.MAX_SAFE_INTEGER),
    key: el.attr('key'),
    newkey: el.attr('newkey'),
    payloads,
    attrs: el.attrs,
    xbosh,
  };
}

/**
 * The root element's start tag alone, parsed as an empty element (its
 * payloads unread): what a body too large to parse before authentication is
 * judged by (its sid). The tag ends at the first '>' outside a quoted
 * attribute value; the bytes looked for are ASCII, never part of a UTF-8
 * sequence. Undefined when no start tag can be read.
 */
export function startTag(raw: Uint8Array, limits: XmlLimits): XmlElement | undefined {
  let i = raw[0] === 0xef && raw[1] === 0xbb && raw[2] === 0xbf ? 3 : 0;
  const space = (c: number | undefined): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
  const skipSpace = (): void => { while (space(raw[i])) i++; };
  skipSpace();
  // The XML declaration ('<?xml ... ?>'; its values hold no '?>').
  if (raw[i] === 0x3c && raw[i + 1] === 0x3f) {
    while (i < raw.length && !(raw[i] === 0x3f && raw[i + 1] === 0x3e)) i++;
    i += 2;
    skipSpace();
  }
  if (raw[i] !== 0x3c) return undefined;
  const start = i;
  let quote = 0;
  for (i++; i < raw.length; i++) {
    const c = raw[i]!;
    if (quote !== 0) {
      if (c === quote) quote = 0;
    } else if (c === 0x22 || c === 0x27) {
      quote = c;
    } else if (c === 0x3e) {
      const selfClosing = raw[i - 1] === 0x2f;
      const tag = Buffer.from(raw.buffer, raw.byteOffset + start, i - start + (selfClosing ? 1 : 0));
      try {
        return parseXml(selfClosing ? tag : Buffer.concat([tag, Buffer.from('/>')]), limits, '');
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** XEP-0124 §7.2 'ver': the lower of the client's and ours, compared as major.minor integers. */
export function negotiateVer(clientVer: string | undefined): string {
  if (clientVer === undefined) return BOSH_VERSION;
  const parse = (v: string): [number, number] | undefined => {
    const parts = v.trim().split('.');
    if (parts.length !== 2 || !parts.every((p) => p.length > 0 && p.length < 6 && [...p].every((c) => c >= '0' && c <= '9'))) return undefined;
    return [Number(parts[0]), Number(parts[1])];
  };
  const ours = parse(BOSH_VERSION)!;
  const theirs = parse(clientVer);
  if (!theirs) return BOSH_VERSION;
  return theirs[0] < ours[0] || (theirs[0] === ours[0] && theirs[1] < ours[1]) ? `${theirs[0]}.${theirs[1]}` : BOSH_VERSION;
}

/**
 * XEP-0206 §3: stanzas inside a <body/> are qualified by jabber:client. An
 * element that got its namespace by inheritance (no xmlns of its own) would
 * otherwise land in the httpbind namespace, so it gets an explicit one. The
 * copy is shallow: routed stanzas are shared and must not be changed.
 */
export function qualified(el: XmlElement): XmlElement {
  if (el.attrs.xmlns !== undefined || el.name.includes(':')) return el;
  return XmlElement.adopt(el.name, { xmlns: el.ns || NS.CLIENT, ...el.attrs }, el.children, el.ns || NS.CLIENT);
}

/** A response <body/> around `payloads`, declaring the stream prefix when a payload uses it (XEP-0206 §3). */
export function responseBody(attrs: XmlAttrInput, payloads: readonly XmlElement[]): XmlElement {
  const body = x('body', { xmlns: NS.HTTPBIND, ...attrs });
  if (payloads.some((p) => p.name.startsWith('stream:'))) body.setAttr('xmlns:stream', NS.STREAM);
  for (const p of payloads) body.children.push(qualified(p));
  return body;
}

/** XEP-0124 §17.2: a terminal binding error, with `payloads` before it (XEP-0206 §7 remote-stream-error). */
export function terminateBody(condition: TerminalCondition | undefined, payloads: readonly XmlElement[] = []): XmlElement {
  return responseBody({ type: 'terminate', condition }, payloads);
}

/** XEP-0124 §17.3: the recoverable binding error. */
export function recoverableErrorBody(): XmlElement {
  return x('body', { xmlns: NS.HTTPBIND, type: 'error' });
}

/**
 * Stream errors that name a condition of their own in XEP-0124 §17.2 are
 * reported with it; every other stream error travels inside a
 * remote-stream-error body (XEP-0206 §7).
 */
const OWN_CONDITIONS = ['host-unknown', 'host-gone', 'improper-addressing', 'system-shutdown'] as const satisfies readonly TerminalCondition[];
type OwnCondition = typeof OWN_CONDITIONS[number];
const OWN: ReadonlySet<StreamErrorCondition> = new Set<StreamErrorCondition>(OWN_CONDITIONS);

function isOwnCondition(condition: StreamErrorCondition): condition is OwnCondition {
  return OWN.has(condition);
}

/** What a terminate body carries after the stanzas for `error`: the <stream:error/> when its condition is not one of §17.2's own. */
export function streamErrorPayload(error: StreamError | undefined): XmlElement | undefined {
  return error === undefined || isOwnCondition(error.condition) ? undefined : streamErrorElement(error);
}

/** The core's typed stream error (Conn.close), mapped without building or re-parsing XML for own conditions. */
export function terminateForStreamError(error: StreamError | undefined, payloads: readonly XmlElement[]): XmlElement {
  if (error === undefined) return terminateBody(undefined, payloads);
  if (isOwnCondition(error.condition)) return terminateBody(error.condition, payloads);
  return terminateBody('remote-stream-error', [...payloads, streamErrorElement(error)]);
}


/**
 * The errors for the stanzas of a request that the session never processed, its stream closed by the
 * server before the request came (XEP-0124 §13, §17.2): the terminate body that answers it does not
 * tell the client whether they were taken (a terminate's own payloads are, and a stream error may be
 * caused by them), so each message and IQ request is answered (RFC 6120 §8.3: unexpected-request,
 * not expected at this time; 'by' the server that says so), in that body. Presence and errors get
 * none (§8.3.1), nor what is no stanza (an XEP-0198 <r/>).
 */
export function notProcessedErrors(payloads: readonly XmlElement[], by: string | undefined): XmlElement[] {
  const out: XmlElement[] = [];
  for (const el of payloads) {
    if (el.ns !== NS.CLIENT || el.attr('type') === 'error') continue;
    const type = el.attr('type');
    if (el.local !== 'message' && !(el.local === 'iq' && (type === 'get' || type === 'set'))) continue;
    out.push(stanzaErrorReply(el, 'unexpected-request', 'the stream had been closed: this stanza was not processed', undefined, by));
  }
  return out;
}

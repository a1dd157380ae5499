/**
 * What the SASL engine (sasl.ts) shares with its two wires: RFC 6120 §6's
 * <auth/> (here) and XEP-0388's <authenticate/> (sasl2/index.ts).
 */
import { NS, x } from '../../xml/index.js';
import type { SaslFailureCondition } from '../../sasl/scram.js';
import type { Session } from '../session.js';

/**
 * How an exchange is put on the wire: RFC 6120 §6 (<auth/>, then a stream
 * restart) or XEP-0388 SASL2 (<authenticate/>, inline features, no
 * restart). The engine below is the same for both: mechanisms, throttling,
 * login logs and metrics.
 */
export interface SaslWire {
  challenge(session: Session, data: string | undefined): void;
  /** After the engine made the session authenticated as `username`; may await inline work (Bind2). */
  success(session: Session, mechanism: string, data: string | undefined): void | Promise<unknown>;
  failure(session: Session, condition: SaslFailureCondition, text: string | undefined): void;
}

/** A mechanism that completes in one round trip and is checked elsewhere (FAST's HT-SHA-256-NONE, XEP-0484). */
export type OneShotMechanism = (session: Session, initial: string, ex: { given?: string; account?: string }) =>
  Promise<{ ok: true; username: string; data?: string } | { ok: false; condition: SaslFailureCondition; text?: string }>;

/** What SASL2 asks of the engine. */
export interface SaslEngine {
  /** Starts an exchange (initial response decoded; undefined: none), answered on `wire`. */
  begin(session: Session, mechanism: string, initial: string | undefined, wire: SaslWire, oneShot?: OneShotMechanism): void | Promise<unknown>;
  /** `data` as fromBase64 gave it: one that could not be decoded fails an exchange in progress (and only that). */
  respond(session: Session, data: string | undefined | Undecodable, wire: SaslWire): void | Promise<unknown>;
  abort(session: Session, wire: SaslWire): void;
  /** A failure outside an exchange (a malformed request), counted like any other. */
  fail(session: Session, wire: SaslWire, condition: SaslFailureCondition, text?: string, mechanism?: string): void;
  /** The mechanisms offered on this stream, best first. */
  mechanisms(session: Session): string[];
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Why a SASL payload could not be decoded, as the <failure/> says it. */
export interface Undecodable { readonly condition: 'incorrect-encoding' | 'malformed-request'; readonly text: string }

/**
 * Decodes a SASL payload (RFC 6120 §6.4.2, XEP-0388 §2.3: base64 without
 * whitespace inside). Text mechanisms (PLAIN, SCRAM, OAUTHBEARER, ANONYMOUS)
 * carry UTF-8: bytes that are not violate the mechanism's syntax (RFC 4616 §2,
 * RFC 5802 §7), RFC 6120 §6.5.7's malformed-request. Never decoded with
 * U+FFFD in their place: that would be checked as a password or taken into
 * SCRAM's AuthMessage. `binary` (the HT mechanisms): one byte per character.
 */
export function fromBase64(text: string, binary = false): string | Undecodable {
  if (!BASE64.test(text)) return { condition: 'incorrect-encoding', text: 'the payload is not valid base64' };
  const bytes = Buffer.from(text, 'base64');
  if (binary) return bytes.toString('latin1');
  try {
    return UTF8.decode(bytes);
  } catch {
    return { condition: 'malformed-request', text: 'the payload is not UTF-8' };
  }
}

/** RFC 6120 §6.4: <challenge/>, <success/> (then the client restarts the stream), <failure/>. */
export function legacyWire(): SaslWire {
  return {
    challenge: (session, data) => session.write(x('challenge', { xmlns: NS.SASL }, data === undefined ? undefined : Buffer.from(data, 'utf8').toString('base64'))),
    success(session, _mechanism, data) {
      session.write(x('success', { xmlns: NS.SASL }, data ? Buffer.from(data, 'utf8').toString('base64') : undefined));
      // RFC 6120 §6.4.6: the client restarts the stream after <success/>.
      session.notopen = true;
    },
    failure: (session, condition, text) =>
      session.write(x('failure', { xmlns: NS.SASL }, x(condition, {}), text ? x('text', { 'xml:lang': 'en' }, text) : undefined)),
  };
}

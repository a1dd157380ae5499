/**
 * SASL2 (XEP-0388) requests for the raw wire clients: <authenticate/> with
 * Bind2, inline resumption and FAST, and the HT-SHA-256-NONE initial
 * response (draft-schmaus-kitten-sasl-ht) computed from a token.
 */
import { createHmac } from 'node:crypto';
import { NS, x, type XmlElement } from '../../src/xml/index.js';

export interface AuthenticateOptions {
  readonly mechanism: string;
  /** Base64 initial response; none when undefined. */
  readonly initial?: string;
  readonly agent?: string;
  readonly bind?: { readonly tag?: string; readonly sm?: boolean };
  readonly resume?: { readonly previd: string; readonly h: number };
  readonly requestToken?: boolean;
  /** <fast/> (a token login). */
  readonly fast?: boolean;
}

export function authenticate(o: AuthenticateOptions): XmlElement {
  return x('authenticate', { xmlns: NS.SASL2, mechanism: o.mechanism },
    o.initial !== undefined ? x('initial-response', {}, o.initial) : undefined,
    o.agent ? x('user-agent', { id: o.agent }, x('software', {}, 'raw test client')) : undefined,
    o.resume ? x('resume', { xmlns: NS.SM, previd: o.resume.previd, h: o.resume.h }) : undefined,
    o.bind ? x('bind', { xmlns: NS.BIND2 }, o.bind.tag ? x('tag', {}, o.bind.tag) : undefined, o.bind.sm ? x('enable', { xmlns: NS.SM, resume: 'true' }) : undefined) : undefined,
    o.requestToken ? x('request-token', { xmlns: NS.FAST, mechanism: 'HT-SHA-256-NONE' }) : undefined,
    o.fast ? x('fast', { xmlns: NS.FAST }) : undefined);
}

/** PLAIN's initial response (RFC 4616), base64. */
export const plainResponse = (user: string, password: string): string => Buffer.from(`\0${user}\0${password}`).toString('base64');

/** HT-SHA-256-NONE's initial response: username NUL HMAC-SHA-256(token, "Initiator"), base64. */
export function htResponse(user: string, token: string): string {
  const proof = createHmac('sha256', Buffer.from(token, 'utf8')).update('Initiator').digest();
  return Buffer.concat([Buffer.from(`${user}\0`, 'utf8'), proof]).toString('base64');
}

/** What the server must answer in <additional-data/> for `token`: HMAC-SHA-256(token, "Responder"), base64. */
export const htServerProof = (token: string): string => createHmac('sha256', Buffer.from(token, 'utf8')).update('Responder').digest('base64');

/** The SASL condition inside a SASL2 <failure/>. */
export function failureCondition(el: XmlElement): string | undefined {
  if (!el.is('failure', NS.SASL2)) return undefined;
  return el.getChildren().find((c) => c.ns === NS.SASL)?.local;
}

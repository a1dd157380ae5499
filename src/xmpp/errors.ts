import { NS, x, type XmlElement } from '../xml/index.js';

/** RFC 6120 §4.9.3: stream error conditions. */
export type StreamErrorCondition =
  | 'bad-format' | 'bad-namespace-prefix' | 'conflict' | 'connection-timeout' | 'host-gone' | 'host-unknown'
  | 'improper-addressing' | 'internal-server-error' | 'invalid-from' | 'invalid-namespace' | 'invalid-xml'
  | 'not-authorized' | 'not-well-formed' | 'policy-violation' | 'remote-connection-failed' | 'reset'
  | 'resource-constraint' | 'restricted-xml' | 'see-other-host' | 'system-shutdown' | 'undefined-condition'
  | 'unsupported-encoding' | 'unsupported-feature' | 'unsupported-stanza-type' | 'unsupported-version';

/** RFC 6120 §8.3.3: stanza error conditions. */
export type StanzaErrorCondition =
  | 'bad-request' | 'conflict' | 'feature-not-implemented' | 'forbidden' | 'gone' | 'internal-server-error'
  | 'item-not-found' | 'jid-malformed' | 'not-acceptable' | 'not-allowed' | 'not-authorized' | 'policy-violation'
  | 'recipient-unavailable' | 'redirect' | 'registration-required' | 'remote-server-not-found'
  | 'remote-server-timeout' | 'resource-constraint' | 'service-unavailable' | 'subscription-required'
  | 'undefined-condition' | 'unexpected-request';

export type StanzaErrorType = 'auth' | 'cancel' | 'continue' | 'modify' | 'wait';

/** The error type RFC 6120 §8.3.3 gives for each condition. */
const DEFAULT_TYPE: Record<StanzaErrorCondition, StanzaErrorType> = {
  'bad-request': 'modify', conflict: 'cancel', 'feature-not-implemented': 'cancel', forbidden: 'auth', gone: 'cancel',
  'internal-server-error': 'cancel', 'item-not-found': 'cancel', 'jid-malformed': 'modify', 'not-acceptable': 'modify',
  'not-allowed': 'cancel', 'not-authorized': 'auth', 'policy-violation': 'modify', 'recipient-unavailable': 'wait',
  redirect: 'modify', 'registration-required': 'auth', 'remote-server-not-found': 'cancel',
  'remote-server-timeout': 'wait', 'resource-constraint': 'wait', 'service-unavailable': 'cancel',
  'subscription-required': 'auth', 'undefined-condition': 'cancel', 'unexpected-request': 'wait',
};

/** A stream error with optional human-readable text (Prosody's `{condition, text}` close reason). */
export interface StreamError {
  readonly condition: StreamErrorCondition;
  readonly text?: string;
  /** Application-specific condition element (RFC 6120 §4.9.4), e.g. XEP-0198's handled-count-too-high. */
  readonly appCondition?: XmlElement;
  /** An operator ended the session (admin CLI): xmpp_sessions_ended_total counts it as 'kicked', whatever the condition. */
  readonly kicked?: boolean;
}

/** Thrown inside the core to end the stream with a stream error. */
export class StreamErrorException extends Error {
  constructor(readonly error: StreamError) {
    super(error.text ?? error.condition);
    this.name = 'StreamErrorException';
  }
}

/** Thrown by stanza handlers to answer the stanza with an error (RFC 6120 §8.3). */
export class StanzaErrorException extends Error {
  constructor(readonly condition: StanzaErrorCondition, readonly text?: string, readonly type?: StanzaErrorType) {
    super(text ?? condition);
    this.name = 'StanzaErrorException';
  }
}

/** `<stream:error>` as RFC 6120 §4.9.2 shapes it (with its own stream prefix declaration, as RFC 7395 needs). */
export function streamErrorElement(err: StreamError): XmlElement {
  return x('stream:error', { 'xmlns:stream': NS.STREAM },
    x(err.condition, { xmlns: NS.STREAMS }),
    err.text ? x('text', { xmlns: NS.STREAMS, 'xml:lang': 'en' }, err.text) : undefined,
    err.appCondition);
}

/**
 * The error reply to `stanza` (RFC 6120 §8.3.1): same name and id, to/from
 * swapped, type='error', and the defined condition. The original payload is
 * not echoed back: RFC 6120 leaves it optional and it only costs bandwidth.
 */
export function stanzaErrorReply(stanza: XmlElement, condition: StanzaErrorCondition, text?: string, type?: StanzaErrorType, by?: string): XmlElement {
  return x(stanza.name, { xmlns: NS.CLIENT, type: 'error', id: stanza.attr('id'), from: stanza.attr('to'), to: stanza.attr('from') },
    x('error', { type: type ?? DEFAULT_TYPE[condition], by },
      x(condition, { xmlns: NS.STANZAS }),
      text ? x('text', { xmlns: NS.STANZAS, 'xml:lang': 'en' }, text) : undefined));
}

import type { XmlElement } from '../xml/index.js';
import type { Jid } from '../jid/index.js';
import type { Session } from './session.js';
import type { StreamError } from './errors.js';

/** A stanza on its way through the router (Prosody's event.origin / event.stanza). */
export interface RouteEvent {
  /** The local session that sent it, or null when the server itself originates it. */
  readonly origin: Session | null;
  readonly stanza: XmlElement;
  /** Parsed `to`; for stanzas without `to` the router fills in what RFC 6120 §10.3 implies. */
  readonly to: Jid;
}

/** Every event of the core. Features subscribe in their register(ctx). */
export interface CoreEvents {
  /** Gathering <stream:features> for a stream (re)start; handlers append children. */
  'stream-features': { readonly session: Session; readonly features: XmlElement };
  /** The session became a connected resource. */
  'resource-bound': { readonly session: Session };
  /** The transport died without a clean close; a handler returning true keeps the session (XEP-0198 hibernation). */
  'session-lost': { readonly session: Session; readonly reason: string };
  /** The session is gone for good; features release what they hold for it. */
  'session-destroyed': { readonly session: Session; readonly reason: StreamError | undefined };
  /** A stanza is about to be written to a session; true = taken over (CSI holds it, SM buffers it). */
  'stanza-out': { readonly session: Session; readonly stanza: XmlElement };
  /** Every stanza a client sends, counted before any check (XEP-0198 counts what it received). */
  'stanza-received': { readonly session: Session; readonly stanza: XmlElement };
  /**
   * The transport of `session` could not deliver these stanzas (its queue when
   * the session ended, or a write after the connection went). A feature that
   * still holds them (XEP-0198's queue) removes them from `stanzas`; what is
   * left is handed over once the session is gone. True = nothing left.
   */
  'stanzas-undelivered': { readonly session: Session; stanzas: XmlElement[] };
  /**
   * XEP-0198 §4: the client acknowledged these stanzas (oldest first); they
   * are delivered for good. Fired by stream management with `buffer` on.
   */
  'stanzas-acked': { readonly session: Session; readonly stanzas: readonly XmlElement[] };
  /**
   * `session` ended for good and these stanzas it never delivered are about
   * to be routed again (hand-over.ts). A feature that still owns some of
   * them elsewhere (offline storage: messages not yet removed) takes them
   * out of `stanzas`, so nothing is both kept there and routed again.
   */
  'hand-over': { readonly session: Session; stanzas: Array<import('./undelivered.js').Undelivered> };
  /** The session's transport drained its output backlog: work waiting for room may go on (flow control). */
  'session-drained': { readonly session: Session };
  /** A hibernating session got a new transport (XEP-0198 resumption). */
  'session-resumed': { readonly session: Session };
  /** The server is shutting down: features hand over what they hold before sessions close. */
  'server-shutdown': Record<string, never>;
  /** A stanza from a bound client, `from` already stamped; true = handled, do not route. */
  'stanza-in': { readonly session: Session; readonly stanza: XmlElement };
  'message/full': RouteEvent; 'message/bare': RouteEvent; 'message/host': RouteEvent;
  'presence/full': RouteEvent; 'presence/bare': RouteEvent; 'presence/host': RouteEvent;
  /** Presence without `to`: the broadcast of RFC 6121 §4.2/§4.4. */
  'presence/broadcast': RouteEvent;
  /** The presence feature has processed an available presence of `session` (its presence and priority are set). */
  'presence/available': { readonly session: Session; readonly initial: boolean };
  'iq/full': RouteEvent; 'iq/bare': RouteEvent; 'iq/host': RouteEvent;
  /** Any stanza to a domain we do not serve (there is no s2s). */
  'route/remote': RouteEvent;
}

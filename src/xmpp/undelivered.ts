import type { XmlElement } from '../xml/index.js';

/**
 * A stanza the client never got, and the time for its XEP-0203 stamp: when stream management
 * queued it, or (without stream management) when the transport gave it back, which for a BOSH
 * queue can be up to the session's `wait` or inactivity period after it arrived. Its own module
 * (not hand-over.ts, which needs the module context) so session.ts and events.ts name it without
 * an import cycle.
 */
export interface Undelivered { readonly stanza: XmlElement; readonly at: number }

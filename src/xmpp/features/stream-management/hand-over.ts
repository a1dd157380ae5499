import { NS, x } from '../../../xml/index.js';
import { makeJid } from '../../../jid/index.js';
import type { ModuleContext } from '../../context.js';
import type { Session } from '../../session.js';
import type { Buffered } from './index.js';

/**
 * What happens to the stanzas a session sent and never saw acknowledged when
 * it ends for good (resume timeout, buffer overflow, close): XEP-0198 §5
 * asks the server to treat them as undelivered. Messages are routed again to
 * the account's bare JID — another available resource, offline storage, or
 * an error to the sender — with a delay stamp (XEP-0203) of when they first
 * arrived; IQ requests get an error reply; presence is state and is not
 * replayed. Nothing is silently dropped.
 */
export function handOver(ctx: ModuleContext, session: Session, stanzas: Buffered[]): void {
  if (stanzas.length === 0 || session.username === undefined || session.host === undefined) return;
  const bare = makeJid(session.username, session.host);
  for (const { stanza, at } of stanzas) {
    const type = stanza.attr('type');
    if (stanza.name === 'message' && type !== 'error') {
      // The same stanza object may sit in other sessions' queues: stamp a copy.
      const copy = stanza.clone();
      if (!copy.getChildren('delay', NS.DELAY).some((d) => d.attr('from') === session.host)) {
        copy.append(x('delay', { xmlns: NS.DELAY, from: session.host, stamp: new Date(at).toISOString() }, 'resent: not acknowledged by the client'));
      }
      ctx.router.route(null, copy, bare);
    } else if (stanza.name === 'iq' && (type === 'get' || type === 'set')) {
      ctx.router.bounce({ origin: null, stanza, to: bare }, 'service-unavailable', 'the recipient went away before answering');
    }
  }
}

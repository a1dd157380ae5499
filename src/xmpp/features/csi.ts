import { NS, x, type XmlElement } from '../../xml/index.js';
import { StreamErrorException } from '../errors.js';
import type { ModuleContext } from '../context.js';
import type { Session } from '../session.js';
import type { CoreEvents } from '../events.js';
import type { FilterHandler } from '../pipeline.js';
import { PRIORITY } from '../priorities.js';
import { movedElsewhere, routeWhenSettled } from './stream-management/journal.js';

interface CsiState {
  inactive: boolean;
  /** Held presence by sender full JID, oldest first; a newer one from the same JID replaces it. */
  readonly held: Map<string, XmlElement>;
  /** Serialized bytes of the held presences (MAX_HELD_BYTES). */
  heldBytes: number;
}

/** Past this many distinct senders the held presences go out anyway: held state is bounded, never dropped. */
const MAX_HELD = 1000;
/**
 * And past this many bytes of them (a presence may be as large as MAX_STANZA_SIZE: 1,000 of them held
 * 256 MB for one inactive session; found in review).
 */
export const MAX_HELD_BYTES = 256 * 1024;

/**
 * Client state indication (XEP-0352). While a client says it is inactive,
 * presence updates for it are held back and folded — only the latest
 * presence of each sender full JID is kept (XEP-0352 §4.2: "suppress
 * presence updates until the client becomes active again. On becoming
 * active, push the latest presence from each contact"). Everything else
 * goes out at once, after the held presences, so what the client sees stays
 * in a sensible order.
 *
 * A filter on stanza-out: stream management (a deliver handler) counts and
 * buffers only what is actually written, and held presence resumes the
 * pipeline after this filter when it goes out.
 */
/** What Bind2 (XEP-0386) asks of CSI. */
export interface Csi {
  /** XEP-0386 §3: the session begins inactive, as after an <inactive/>. */
  inactive(session: Session): void;
}

export function register(ctx: ModuleContext): Csi {
  const states = new WeakMap<Session, CsiState>();

  // §4.1: advertised once the client has authenticated.
  ctx.hooks.transform('stream-features', ({ session, features }) => {
    if (session.type === 'c2s') features.append(x('csi', { xmlns: NS.CSI }));
  }, PRIORITY.features.informational);

  const stateOf = (session: Session): CsiState => {
    // Like any stanza before authentication (RFC 6120 §6.4.6; Prosody ignores CSI there too).
    if (session.type !== 'c2s') throw new StreamErrorException({ condition: 'not-authorized', text: 'authenticate first' });
    let st = states.get(session);
    if (!st) states.set(session, (st = { inactive: false, held: new Map(), heldBytes: 0 }));
    return st;
  };

  const inactive = (session: Session): void => { stateOf(session).inactive = true; };
  ctx.nonzas.register(NS.CSI, 'inactive', inactive);
  // §5.1: the flush happens before anything the client sends next is processed.
  ctx.nonzas.register(NS.CSI, 'active', (session) => {
    const st = stateOf(session);
    st.inactive = false;
    flush(session, st);
  });

  const hold: FilterHandler<CoreEvents['stanza-out']> = ({ session, stanza }) => {
    const st = states.get(session);
    if (!st) return;
    if (st.inactive && foldable(session, stanza)) {
      const bytes = stanza.toString().length;
      if (st.held.size >= MAX_HELD || st.heldBytes + bytes > MAX_HELD_BYTES) flush(session, st);
      const from = stanza.attr('from')!;
      const before = st.held.get(from);
      if (before !== undefined) st.heldBytes -= before.toString().length;
      st.held.delete(from);
      st.held.set(from, stanza);
      st.heldBytes += bytes;
      return 'drop';
    }
    flush(session, st);
  };
  ctx.hooks.filter('stanza-out', hold, PRIORITY.stanzaOut.csi);

  // §5.2: a resumed stream starts active again (after stream management resent its queue).
  ctx.hooks.notify('session-resumed', ({ session }) => {
    const st = states.get(session);
    if (!st) return;
    st.inactive = false;
    flush(session, st);
  }, PRIORITY.lifecycle.csi);

  // Held presence is state, not a message: like stream management's
  // hand-over, nothing is replayed for a session that is gone. One that
  // lives on, resumed on another cluster node (XEP-0198 §5 takeover), gets
  // it there: routed to its full JID once the new owner has bound it, after
  // any stanza for it that reached this node meanwhile (routeWhenSettled).
  ctx.hooks.notify('session-destroyed', ({ session, reason }) => {
    const st = states.get(session);
    states.delete(session);
    if (!st || st.held.size === 0 || !movedElsewhere(reason) || session.jid === undefined) return;
    for (const stanza of st.held.values()) {
      routeWhenSettled(ctx, session.jid, stanza).catch((err: unknown) => ctx.log.warn({ err }, 'held presence for a moved session not routed'));
    }
    st.held.clear();
  }, PRIORITY.lifecycle.default);

  /**
   * Writes the held presences through the rest of the stanza-out pipeline
   * (stream management counts and buffers them), resumed after this filter.
   * Session.send would count them a second time in stanzasOut.
   */
  function flush(session: Session, st: CsiState): void {
    if (st.held.size === 0) return;
    const held = [...st.held.values()];
    st.held.clear();
    st.heldBytes = 0;
    for (const stanza of held) {
      if (session.destroyed) break;
      if (ctx.hooks.resume('stanza-out', { session, stanza }, hold) === 'undelivered') session.write(stanza);
    }
  }
  return { inactive };
}

/**
 * Presence that only reports state (available, unavailable) from someone
 * else. Subscription requests and errors are events the client must act
 * on, and the echo of its own presence answers what it just sent: they pass.
 */
function foldable(session: Session, stanza: XmlElement): boolean {
  if (stanza.name !== 'presence') return false;
  const type = stanza.attr('type');
  if (type !== undefined && type !== 'unavailable') return false;
  const from = stanza.attr('from');
  return from !== undefined && from !== session.full_jid;
}

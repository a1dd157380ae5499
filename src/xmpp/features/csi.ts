import { NS, x, type XmlElement } from '../../xml/index.js';
import { StreamErrorException } from '../errors.js';
import type { ModuleContext } from '../context.js';
import type { Session } from '../session.js';

interface CsiState {
  inactive: boolean;
  /** Held presence by sender full JID, oldest first; a newer one from the same JID replaces it. */
  readonly held: Map<string, XmlElement>;
  /** True while held stanzas are being written, so they pass this filter. */
  flushing: boolean;
}

/** Past this many distinct senders the held presences go out anyway: held state is bounded, never dropped. */
const MAX_HELD = 1000;

/**
 * Client state indication (XEP-0352). While a client says it is inactive,
 * presence updates for it are held back and folded — only the latest
 * presence of each sender full JID is kept (XEP-0352 §4.2: "suppress
 * presence updates until the client becomes active again. On becoming
 * active, push the latest presence from each contact"). Everything else
 * goes out at once, after the held presences, so what the client sees stays
 * in a sensible order.
 *
 * The filter sits on stanza-out at 110, above stream management (100), so
 * SM counts and buffers only what is actually written.
 */
export function register(ctx: ModuleContext): void {
  const states = new WeakMap<Session, CsiState>();

  // §4.1: advertised once the client has authenticated.
  ctx.hooks.on('stream-features', ({ session, features }) => {
    if (session.type === 'c2s') features.append(x('csi', { xmlns: NS.CSI }));
  }, 70);

  const stateOf = (session: Session): CsiState => {
    // Like any stanza before authentication (RFC 6120 §6.4.6; Prosody ignores CSI there too).
    if (session.type !== 'c2s') throw new StreamErrorException({ condition: 'not-authorized', text: 'authenticate first' });
    let st = states.get(session);
    if (!st) states.set(session, (st = { inactive: false, held: new Map(), flushing: false }));
    return st;
  };

  ctx.nonzas.register(NS.CSI, 'inactive', (session) => {
    stateOf(session).inactive = true;
  });
  // §5.1: the flush happens before anything the client sends next is processed.
  ctx.nonzas.register(NS.CSI, 'active', (session) => {
    const st = stateOf(session);
    st.inactive = false;
    flush(session, st);
  });

  ctx.hooks.on('stanza-out', ({ session, stanza }) => {
    const st = states.get(session);
    if (!st || st.flushing) return false;
    if (st.inactive && foldable(session, stanza)) {
      if (st.held.size >= MAX_HELD) flush(session, st);
      const from = stanza.attr('from')!;
      st.held.delete(from);
      st.held.set(from, stanza);
      return true;
    }
    flush(session, st);
    return false;
  }, 110);

  // §5.2: a resumed stream starts active again.
  ctx.hooks.on('session-resumed', ({ session }) => {
    const st = states.get(session);
    if (!st) return;
    st.inactive = false;
    flush(session, st);
  });

  // Held presence is state, not a message: like stream management's
  // hand-over, nothing is replayed for a session that is gone.
  ctx.hooks.on('session-destroyed', ({ session }) => {
    states.delete(session);
  });

  /**
   * Writes the held presences through the rest of the stanza-out chain —
   * stream management counts and buffers them — with this filter standing
   * aside. Session.send would count them a second time in stanzasOut and
   * bring them back here, hence the direct fire.
   */
  function flush(session: Session, st: CsiState): void {
    if (st.held.size === 0) return;
    const held = [...st.held.values()];
    st.held.clear();
    st.flushing = true;
    try {
      for (const stanza of held) {
        if (session.destroyed) break;
        if (!ctx.hooks.fire('stanza-out', { session, stanza })) session.write(stanza);
      }
    } finally {
      st.flushing = false;
    }
  }
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

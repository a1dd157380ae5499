import { NS, x, type XmlElement } from '../../../xml/index.js';
import { DETACHED } from '../../conn.js';
import type { ModuleContext } from '../../context.js';
import type { NonzaHandler } from '../../registry.js';
import type { Session } from '../../session.js';
import { parseH } from './counter.js';
import type { SmOptions, SmState } from './index.js';
import type { Flow } from './flow.js';
import type { SmRegistry } from './registry.js';

type Failed = (condition: string, h?: number, extra?: XmlElement) => XmlElement;

/**
 * XEP-0198 §5 resumption: a new stream, authenticated as the same account,
 * takes over a hibernating (or still connected) session by its smid. The new
 * transport moves under the old session; the session object that the new
 * transport created is retired. Works across transports, since a session
 * only sees the Conn interface.
 */
export function createResume(
  ctx: ModuleContext, opts: SmOptions, flow: Flow, registry: SmRegistry, states: WeakMap<Session, SmState>, failed: Failed,
): NonzaHandler {
  return (carrier, el) => {
    // Only after authentication and before binding (XEP-0198 §5).
    if (carrier.type !== 'c2s' || carrier.full_jid !== undefined || states.has(carrier)) {
      return carrier.write(failed('unexpected-request'));
    }
    const previd = el.attr('previd') ?? '';
    const h = parseH(el.attr('h'));
    if (h === undefined) return carrier.write(failed('bad-request'));
    const old = registry.get(previd);
    const st = old && states.get(old);
    // Another account's smid is answered exactly like an unknown one.
    if (!old || !st || old.destroyed || !sameAccount(carrier, old)) {
      ctx.metrics.sm('resume-failed');
      if (!opts.stale_h.enabled) return carrier.write(failed('item-not-found'));
      // The stale h is in storage, so the answer may come a turn later. A
      // client waits for <failed/> before it binds (XEP-0198 §5); one that
      // pipelines may see later replies first. Without the h, <failed/> still goes.
      return void registry.getStaleH(previd).then(
        (stale) => carrier.write(failed('item-not-found', stale)),
        (err: unknown) => { ctx.log.warn({ err }, 'stale h storage failed'); carrier.write(failed('item-not-found')); },
      );
    }
    const acked = flow.ack(old, st, h);
    if (!acked.ok) {
      return carrier.write(failed('undefined-condition', undefined,
        x('handled-count-too-high', { xmlns: NS.SM, h, 'send-count': acked.sent })));
    }
    takeOver(ctx, carrier, old, st);
    old.write(x('resumed', { xmlns: NS.SM, previd, h: st.counter_in }));
    // Resend what the client has not acknowledged, in order; it stays buffered until acked.
    // Then what waited meanwhile, as far as buffer_max allows; acks bring the rest.
    const pending = st.queue.unacked();
    for (const item of pending) old.write(item.stanza);
    flow.release(old, st);
    if (st.queue.buffer_size > 0 && opts.ack) flow.requestAck(old, st);
    ctx.hooks.fire('session-resumed', { session: old });
    ctx.metrics.sm('resumed');
    ctx.log.info({ event: 'session-resumed', session: old.logId, jid: old.full_jid, transport: old.transport, resent: pending.length }, 'session resumed');
  };
}

/** Moves the carrier's transport under `old`, closing whatever transport `old` still had. */
function takeOver(ctx: ModuleContext, carrier: Session, old: Session, st: SmState): void {
  const conn = carrier.conn!;
  if (st.hibernation) clearTimeout(st.hibernation);
  st.hibernation = undefined;
  if (old.conn) {
    // XEP-0198 §5: the old connection may still look alive; it is replaced.
    const previous = old.conn;
    previous.attach(DETACHED);
    previous.close({ condition: 'conflict', text: 'the session was resumed elsewhere' });
  }
  carrier.conn = null;
  conn.attach(old);
  old.conn = conn;
  old.secure = conn.secure;
  old.ip = conn.ip;
  old.transport = conn.transport;
  old.streamId = carrier.streamId;
  old.notopen = false;
  st.peer = carrier.logId;
  ctx.retire(carrier, `resumed into ${old.logId}`);
}

/**
 * Whether `carrier` may resume `old`: the same account, or — for SASL
 * ANONYMOUS, where every login is a new random account — an anonymous
 * session on the same host, the unguessable smid being the only secret
 * (which is what resumption relies on for everyone).
 */
function sameAccount(carrier: Session, old: Session): boolean {
  if (old.host !== carrier.host) return false;
  if (old.anonymous) return carrier.anonymous;
  return !carrier.anonymous && old.username === carrier.username;
}

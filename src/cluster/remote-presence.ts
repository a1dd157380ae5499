/**
 * RFC 6121 §4.2.2 / §4.4.2 / §4.5.2 across nodes: a resource's presence
 * broadcast reaches its contacts' and its own account's available
 * resources wherever they are bound, as within one process.
 *
 * Within one process a resource's broadcast and what a newly available
 * resource is sent of the others (§4.2.1 probes answered, §4.2.2 the
 * account's other resources) are ordered: of two resources becoming
 * available at once each gets the other's presence, and one that becomes
 * available as another goes unavailable gets both or neither. On two nodes
 * each node acts on its own view of the other's resource, which the
 * directory updates a moment later: both broadcasts missed the other
 * resource, or the new one got a presence whose unavailable went to
 * nobody. So the node of a receiving resource also gives it what the
 * directory shows of another node's resource ('remote-presence':
 * presence.ts broadcasts it again to this node's sessions alone), and a
 * filter on what goes out to a local session keeps one copy: the same
 * available presence from the same remote resource again is dropped, an
 * unavailable from one it has no available presence of is dropped, and
 * nothing from a remote resource goes to a session that is not available
 * (a broadcast reaches available resources only; directed presence goes
 * to any). The owner's broadcast mostly comes after the directory change
 * (its write goes to Redis first); either way one copy is written.
 */
import { createHash } from 'node:crypto';
import { NS, WRITTEN_LIMITS, parseXml, serialize, x, type XmlElement } from '../xml/index.js';
import { tryParseJid } from '../jid/index.js';
import type { ModuleContext } from '../xmpp/context.js';
import type { Session } from '../xmpp/session.js';
import { PRIORITY } from '../xmpp/priorities.js';

export interface RemotePresence {
  /** The directory shows a new available presence of `stub` (another node's resource). */
  available(stub: Session): void;
  /** The directory shows `stub` unavailable or gone; `stanza`: the unavailable presence its client sent, serialized, if any. */
  unavailable(stub: Session, stanza: string | undefined): void;
}

/**
 * The presence as compared: without its `to`, which differs per recipient. Kept per recipient session
 * and sender resource, so a digest (22 characters) rather than the stanza (hundreds of bytes, a vCard
 * or caps hash in it): a session with a hundred contacts online would hold tens of KiB of them.
 */
function content(stanza: XmlElement): string {
  return createHash('md5').update(serialize(stanza.clone().setAttr('to', undefined))).digest('base64');
}

export function registerRemotePresence(ctx: ModuleContext): RemotePresence {
  /**
   * Per local session: the last available presence it got from each full JID, until that one's
   * unavailable, and the session that JID was then (a new login on the resource is another sender).
   * From a sender of this node, a mark without a digest: it sends once, in order, but a session that
   * moves to another node (XEP-0198 takeover) sends its unavailable from there.
   */
  const got = new WeakMap<Session, Map<string, { presence: string; sender: Session | undefined }>>();
  /** The digest of a remote resource's presence as the directory shows it, per parsed presence. */
  const shown = new WeakMap<XmlElement, string>();
  const shownContent = (presence: XmlElement): string => {
    let digest = shown.get(presence);
    if (digest === undefined) shown.set(presence, digest = content(presence));
    return digest;
  };

  ctx.hooks.filter('stanza-out', ({ session, stanza }) => {
    if (stanza.name !== 'presence' || session.full_jid === undefined) return undefined;
    const type = stanza.attr('type');
    const from = tryParseJid(stanza.attr('from'));
    if ((type !== undefined && type !== 'unavailable') || !from || from.resource === '' || from.full === session.full_jid) return undefined;
    // A session of this node sends once, in order: only another node's sessions come by two ways.
    const remote = ctx.sessions.getLocal(from.domain, from.local, from.resource) === undefined;
    const sender = ctx.sessions.get(from.domain, from.local, from.resource);
    // A broadcast (to the bare JID, or to the account's own resources) reaches available resources only; directed presence any.
    const to = tryParseJid(stanza.attr('to'));
    const broadcast = to !== null && (to.resource === '' || to.bare === from.bare);
    if (remote && broadcast && session.presence === undefined) return 'drop';
    // A remote resource's available presence to a bare JID passes only as the directory shows it now. Its
    // two ways (the owner's broadcast through this node's inbox, this node's own from the directory) each
    // keep their order, not one with the other: a sender that changes fast had an older presence come last
    // by one way, and its contacts kept it. The directory's view is the newest this node knows, and each
    // change of it is broadcast here again (remote-presence), so what passes ends at the newest.
    // Unavailable keeps the rule below: the server also sends it for a subscription that ends (RFC 6121
    // §3.2.2, §3.3.3) from resources that stay available. And a resource the directory does not show
    // available yet passes: its first presence is re-broadcast here only once its account is held here
    // (a read of storage after the bind), and it would be lost if it came first by the inbox.
    const digest = remote && type === undefined ? content(stanza) : '';
    if (remote && broadcast && type === undefined) {
      const current = sender?.presence;
      if (current !== undefined && shownContent(current) !== digest) return 'drop';
    }
    let seen = got.get(session);
    if (type === 'unavailable') {
      if (seen?.delete(from.full) === true || !remote) return undefined;
      return 'drop';
    }
    const now = { presence: digest, sender };
    const before = seen?.get(from.full);
    if (remote && before?.presence === now.presence && before.sender === now.sender) return 'drop';
    if (seen === undefined) got.set(session, seen = new Map());
    seen.set(from.full, now);
    return undefined;
  }, PRIORITY.stanzaOut.clusterRemotePresence);

  // A session that goes unavailable is sent every other one's presence again when it comes back (§4.2.1, §4.2.2).
  ctx.hooks.notify('resource-changed', ({ session }) => {
    if (session.presence === undefined) got.delete(session);
  }, PRIORITY.lifecycle.default);

  const broadcast = (stub: Session, stanza: XmlElement): void => {
    const done = ctx.hooks.run('remote-presence', { session: stub, stanza });
    if (done instanceof Promise) done.catch((err: unknown) => ctx.log.warn({ err, jid: stub.full_jid }, 'presence of another node\'s session to this node\'s sessions failed'));
  };

  return {
    available(stub) {
      if (stub.presence !== undefined) broadcast(stub, stub.presence.clone());
    },
    unavailable(stub, stanza) {
      let el: XmlElement | undefined;
      try {
        if (stanza !== undefined) el = parseXml(stanza, WRITTEN_LIMITS, NS.CLIENT);
      } catch {
        el = undefined;
      }
      broadcast(stub, el ?? x('presence', { xmlns: NS.CLIENT, type: 'unavailable', from: stub.full_jid }));
    },
  };
}

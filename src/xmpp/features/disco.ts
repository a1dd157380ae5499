import { NS, x, type XmlElement } from '../../xml/index.js';
import type { Jid } from '../../jid/index.js';
import { StanzaErrorException } from '../errors.js';
import type { ModuleContext } from '../context.js';
import type { Session } from '../session.js';
import { run } from './iq.js';
import { delivered } from '../pipeline.js';
import { PRIORITY } from '../priorities.js';

export interface DiscoOptions {
  readonly name: string;
  /**
   * True when `account` has a presence subscription to `contact` of type
   * "from" or "both", i.e. `contact` may see the account's presence. The
   * roster feature provides it; without it only the account itself may
   * discover the account (XEP-0030 §8 then denies everyone else).
   */
  readonly isSubscribed?: (account: Jid, contact: Jid) => Promise<boolean>;
  /** Whether an account is a SASL ANONYMOUS one (its identity and features differ: accountInfo). */
  readonly isAnonymous?: (account: Jid) => Promise<boolean>;
}

/**
 * XEP-0030 service discovery of the server (disco#info lists every
 * registered feature) and of accounts, answered by the server on their
 * behalf (XEP-0030 §3.1, §4.1; RFC 6121 §8.5.2.1.3).
 */
export function register(ctx: ModuleContext, opts: DiscoOptions): void {
  const isSubscribed = opts.isSubscribed ?? (async () => false);
  const isAnonymous = opts.isAnonymous ?? (async () => false);

  const info = (features: Iterable<string>, identity: XmlElement, node: string | undefined, more: Iterable<string> = []): XmlElement => {
    // XEP-0030 §3.1: a node we do not know is item-not-found.
    if (node !== undefined) throw new StanzaErrorException('item-not-found');
    const query = x('query', { xmlns: NS.DISCO_INFO }, identity);
    for (const i of more) query.append(x('identity', { category: i.slice(0, i.indexOf('/')), type: i.slice(i.indexOf('/') + 1) }));
    for (const f of [...features].sort()) query.append(x('feature', { var: f }));
    return query;
  };
  // XEP-0030 §3 / XEP-0313 §8: an anonymous account is told only of what it has (no archive, no PEP service).
  const accountInfo = (node: string | undefined, anonymous: boolean): XmlElement =>
    info(anonymous ? [...ctx.disco.accountFeatures].filter((f) => !ctx.disco.registeredOnlyFeatures.has(f)) : ctx.disco.accountFeatures,
      x('identity', { category: 'account', type: anonymous ? 'anonymous' : 'registered' }), node,
      anonymous ? [] : ctx.disco.accountIdentities);
  /**
   * XEP-0030 §4.1: an account's items are its available resources (to whom may see its presence:
   * `resources`), then what other features list (XEP-0163 §6.2: the PEP nodes `requester` may see).
   */
  const accountItems = async (account: Jid, requester: Jid, node: string | undefined, resources: boolean): Promise<XmlElement> => {
    if (node !== undefined) throw new StanzaErrorException('item-not-found');
    const query = x('query', { xmlns: NS.DISCO_ITEMS });
    if (resources) for (const s of ctx.sessions.available(account.domain, account.local)) query.append(x('item', { jid: s.full_jid }));
    for (const source of ctx.disco.accountItemSources) for (const item of await source(account, requester)) query.append(item);
    return query;
  };

  ctx.iq.register('host', 'get', NS.DISCO_INFO, (_s, _iq, payload) =>
    info(ctx.disco.features, x('identity', { category: 'server', type: 'im', name: opts.name }), payload.attr('node')));
  // XEP-0030 §4.1: the server's items are its components (a group chat service, say).
  ctx.iq.register('host', 'get', NS.DISCO_ITEMS, (_s, _iq, payload) => {
    if (payload.attr('node') !== undefined) throw new StanzaErrorException('item-not-found');
    const items = [...ctx.components.all].sort((a, b) => (a.address < b.address ? -1 : 1));
    return x('query', { xmlns: NS.DISCO_ITEMS }, ...items.map((c) => x('item', { jid: c.address, name: c.name })));
  });
  /** XEP-0030 §3.2 / XEP-0060 §5.3: a node of an account (a PEP node) as `requester` may see it; else item-not-found. */
  const accountNodeInfo = async (account: Jid, requester: Jid, node: string): Promise<XmlElement> => {
    for (const source of ctx.disco.accountNodeInfoSources) {
      const query = await source(account, requester, node);
      if (query) return query;
    }
    throw new StanzaErrorException('item-not-found');
  };
  // XEP-0030 §3.1 / RFC 6121: one's own account answers with the account identity.
  ctx.iq.register('self', 'get', NS.DISCO_INFO, (session, _iq, payload) => {
    const node = payload.attr('node');
    if (node !== undefined) return accountNodeInfo(session.jid!.bareJid(), session.jid!.bareJid(), node);
    return accountInfo(undefined, session.anonymous);
  });
  ctx.iq.register('self', 'get', NS.DISCO_ITEMS, (session, _iq, payload) =>
    accountItems(session.jid!.bareJid(), session.jid!.bareJid(), payload.attr('node'), true));

  // Another account's bare JID, above the default bare-JID IQ handler (-100).
  ctx.hooks.deliver('iq/bare', (event) => {
    const { origin, stanza, to } = event;
    const payload = stanza.firstElement;
    if (!origin || stanza.attr('type') !== 'get' || isSelf(origin, to)) return;
    if (payload?.ns !== NS.DISCO_INFO && payload?.ns !== NS.DISCO_ITEMS) return;
    return delivered(run(origin, stanza, async () => {
      const allowed = await isSubscribed(to, origin.jid!.bareJid());
      if (payload.ns === NS.DISCO_INFO) {
        // XEP-0030 §8: service-unavailable when the account does not exist
        // or the requester may not see its presence — one answer for both,
        // as Prosody gives. A subscription implies the account exists.
        if (!allowed) throw new StanzaErrorException('service-unavailable');
        const node = payload.attr('node');
        if (node !== undefined) return accountNodeInfo(to.bareJid(), origin.jid!.bareJid(), node);
        // The account as it is: a guest's contacts see account/anonymous and no MAM or PEP, as the guest does.
        return accountInfo(undefined, await isAnonymous(to));
      }
      // XEP-0030 §8: "MUST return an empty result set" in those cases (for a node too), "However, the
      // server MAY return items other than available resources": the nodes the requester may see.
      if (!allowed && payload.attr('node') !== undefined) return x('query', { xmlns: NS.DISCO_ITEMS, node: payload.attr('node') });
      return accountItems(to.bareJid(), origin.jid!.bareJid(), payload.attr('node'), allowed);
    }));
  }, PRIORITY.route.onBehalf);
}

function isSelf(session: Session, to: Jid): boolean {
  return session.username === to.local && session.host === to.domain;
}

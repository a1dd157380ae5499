import { NS, x, type XmlElement } from '../../../xml/index.js';
import { JidError, parseJid, tryParseJid, type Jid } from '../../../jid/index.js';
import type { ModuleContext } from '../../context.js';
import { resourceChanged, type RouteEvent } from '../../events.js';
import { veto, type FilterResult } from '../../pipeline.js';
import { PRIORITY } from '../../priorities.js';
import type { Session } from '../../session.js';
import { StanzaErrorException } from '../../errors.js';
import type { Account, AccountsService } from '../accounts/index.js';
import { hasFrom, isSubscriptionType } from '../accounts/subscription.js';
import type { Blocklists } from './blocklist.js';
import type { DirectedPresence } from '../presence.js';
import { randomId } from '../../../util/random.js';

export { Blocklists, blocks, type BlocklistStores } from './blocklist.js';

export interface BlockingOptions {
  /** Entries one blocklist may hold (MAX_BLOCKLIST_ITEMS); a block beyond gets not-allowed. */
  readonly maxItems: number;
}

export interface BlockingDeps {
  /** The accounts in memory and presence relaying (accounts.register). */
  readonly accounts: AccountsService;
  /** The blocklists, loaded with each account (the same object is a part given to the accounts service). */
  readonly blocklists: Blocklists;
  /** Directed presence (presence.ts): a JID the user sent it to and now blocks is told the user is unavailable. */
  readonly directed?: DirectedPresence;
}

/**
 * XEP-0191 Blocking Command: the blocklist (get, block, unblock,
 * unblock-all, pushes to the resources that asked for it, on every node of
 * a cluster: Session.blocklistRequested), and its effect
 * on stanzas both ways. Blocking is "polite" (§Implementation Notes):
 * subscriptions are kept, the blocked JID just sees the user offline.
 * The unavailable presence sent on blocking goes to subscribers' available
 * resources and to the JIDs the user's sessions sent directed presence to
 * (kept by presence.ts, which then owes them nothing at the session's end).
 */
export function register(ctx: ModuleContext, opts: BlockingOptions, deps: BlockingDeps): void {
  const { accounts: svc, blocklists: lists } = deps;
  const blocks = lists.isBlocked;
  ctx.disco.addFeature(NS.BLOCKING);

  ctx.iq.register('self', 'get', NS.BLOCKING, (session, _iq, payload) => {
    if (!payload.is('blocklist', NS.BLOCKING)) throw new StanzaErrorException('bad-request', 'expected <blocklist/>');
    // §3.3: pushes go to "resources that have requested the blocklist". Session.blocklistRequested, not
    // a set of this process: a resource bound on another cluster node is a stub here, and carries it.
    // Answered once every node knows, as a roster get (roster/index.ts).
    const answer = (): XmlElement => x('blocklist', { xmlns: NS.BLOCKING }, ...[...lists.of(svc.accountOf(session))].sort().map((jid) => x('item', { jid })));
    if (!session.blocklistRequested) {
      session.blocklistRequested = true;
      const written = resourceChanged(ctx.hooks, session);
      if (written) return written.then(answer);
    }
    return answer();
  });

  ctx.iq.register('self', 'set', NS.BLOCKING, (session, _iq, payload) => {
    const block = payload.is('block', NS.BLOCKING);
    if (!block && !payload.is('unblock', NS.BLOCKING)) throw new StanzaErrorException('bad-request', 'expected <block/> or <unblock/>');
    const jids = itemJids(payload, session, block);
    // XEP-0191 §3.3: a block names at least one JID.
    if (block && jids.length === 0) throw new StanzaErrorException('bad-request', '<block/> needs at least one <item/>');
    // On the account's queue: changes from several of its sessions take effect in the order they came.
    return ctx.queues.account(session.jid!.bare, async () => {
      const account = svc.accountOf(session);
      await (block ? doBlock(account, jids) : doUnblock(account, jids));
      push(account, payload.local, jids);
    });
  });

  async function doBlock(account: Account, jids: Jid[]): Promise<void> {
    const list = lists.of(account);
    const added = jids.filter((j) => !list.has(j.full));
    if (list.size + added.length > opts.maxItems) {
      ctx.metrics.limitRefused('blocklist');
      throw new StanzaErrorException('not-allowed', `the blocklist is full (at most ${opts.maxItems} entries)`);
    }
    const open = watchers(account).filter((to) => !blocks(account, to));
    await stored(lists.block(account, added.map((j) => j.full)));
    // §3.3: "the user's server MUST send unavailable presence information to the JID" (if it may see presence).
    for (const to of open) {
      if (!blocks(account, to)) continue;
      for (const s of svc.relay.available(account)) {
        svc.relay.deliver(to, x('presence', { xmlns: NS.CLIENT, type: 'unavailable', from: s.full_jid, to: to.full }));
      }
    }
    // RFC 6121 §4.6: a directed-presence recipient may see presence too (its session-end unavailable
    // would be refused by the block, and it would see the user online for good).
    for (const s of ctx.sessions.resources(account.host, account.username)) deps.directed?.withdraw(s, (to) => blocks(account, to));
  }

  async function doUnblock(account: Account, jids: Jid[]): Promise<void> {
    const closed = watchers(account).filter((to) => blocks(account, to));
    await stored(jids.length === 0 ? lists.unblockAll(account) : lists.unblock(account, jids.map((j) => j.full)));
    const probed = new Set<string>();
    for (const to of closed) {
      if (blocks(account, to)) continue;
      // §3.4: "the user's server MUST send the user's current presence information to the JID".
      svc.relay.sendCurrent(account, to);
      // The contact's presence was dropped while it was blocked: answer the probe the user could not send.
      const contact = svc.accounts.peek(to.domain, to.local);
      if (!contact || probed.has(contact.bare) || !hasFrom(contact.state(account.bare).subscription)) continue;
      probed.add(contact.bare);
      for (const s of svc.relay.available(account)) svc.relay.sendCurrent(contact, s.jid!);
    }
  }

  /** The available resources of local subscribers: who sees the user's presence, blocking aside. */
  function watchers(account: Account): Jid[] {
    const out: Jid[] = [];
    for (const item of account.items.values()) {
      if (!hasFrom(item.subscription)) continue;
      const contact = account.contact(item.jid);
      for (const s of ctx.sessions.available(contact.domain, contact.local)) out.push(s.jid!);
    }
    return out;
  }

  function push(account: Account, action: string, jids: Jid[]): void {
    for (const s of ctx.sessions.resources(account.host, account.username)) {
      if (!s.blocklistRequested) continue;
      s.send(x('iq', { xmlns: NS.CLIENT, type: 'set', id: `block-${randomId(6)}`, to: s.full_jid },
        x(action, { xmlns: NS.BLOCKING }, ...jids.map((j) => x('item', { jid: j.full })))));
    }
  }

  registerOutbound(ctx, svc, lists);
  registerInbound(ctx, svc, lists);
}

/** The <item jid/> children as JIDs (XEP-0191 §JID Matching allows any JID form). */
function itemJids(payload: XmlElement, session: Session, block: boolean): Jid[] {
  const out = new Map<string, Jid>();
  for (const item of payload.getChildren('item', NS.BLOCKING)) {
    const raw = item.attr('jid');
    if (raw === undefined) throw new StanzaErrorException('bad-request', "an <item/> without 'jid'");
    let jid: Jid;
    try { jid = parseJid(raw); } catch (err) {
      if (err instanceof JidError) throw new StanzaErrorException('jid-malformed', `'${raw.slice(0, 64)}' is not a JID`);
      throw err;
    }
    // A user's own resources are never blocked from each other (XEP-0191 §5).
    if (block && jid.local === session.username && jid.domain === session.host) throw new StanzaErrorException('not-acceptable', 'you cannot block yourself');
    out.set(jid.full, jid);
  }
  return [...out.values()];
}

async function stored(write: Promise<void>): Promise<void> {
  try { await write; } catch { throw new StanzaErrorException('internal-server-error', 'the blocklist could not be stored'); }
}

/**
 * XEP-0191 §3.3: a stanza the user sends to a blocked JID is not routed
 * but answered with not-acceptable and <blocked xmlns='urn:xmpp:blocking:errors'/>
 * (the core's answer to a veto; errors and IQ results get none).
 */
function registerOutbound(ctx: ModuleContext, svc: AccountsService, lists: Blocklists): void {
  ctx.hooks.filter('stanza-in', ({ session, stanza }) => {
    // The account is loaded before the session's first stanza after bind (accounts/index.ts).
    const account = svc.peekAccount(session);
    if (!account || lists.of(account).size === 0) return; // the usual case: nothing to check, no JID to parse
    const to = tryParseJid(stanza.attr('to'));
    if (!to || (to.local === session.username && to.domain === session.host)) return;
    // The server itself is never blocked, whatever domain entry the list holds.
    if (to.local === '' && ctx.router.isLocal(to.domain)) return;
    // type='cancel' as §3.3's example: no change to the stanza makes it pass (RFC 6120 §8.3.2 'modify' would say so).
    if (lists.isBlocked(account, to)) return veto('not-acceptable', undefined, x('blocked', { xmlns: NS.BLOCKING_ERRORS }), 'cancel');
  }, PRIORITY.stanzaIn.blocking);
}

/**
 * XEP-0191 §3.3: what a blocked JID sends the user is not delivered:
 * presence silently, messages and IQ get/set with service-unavailable (so
 * the user looks offline), other IQs dropped. Stanzas to an offline user
 * wait for that user's blocklist to load (the filter awaits it).
 */
function registerInbound(ctx: ModuleContext, svc: AccountsService, lists: Blocklists): void {
  const check = (event: RouteEvent): FilterResult | Promise<FilterResult> => {
    const { stanza, to, origin } = event;
    // A local user's subscription stanzas and probes first change the sender's own roster (RFC 6121 A.2);
    // the roster and presence features then apply the block to the recipient's half themselves.
    if (origin && stanza.name === 'presence' && (isSubscriptionType(stanza.attr('type')) || stanza.attr('type') === 'probe')) return;
    const account = svc.accounts.peek(to.domain, to.local);
    if (account && lists.of(account).size === 0) return; // the usual case: nothing to check, no JID to parse
    const from = tryParseJid(stanza.attr('from'));
    if (!from || (from.local === to.local && from.domain === to.domain)) return;
    if (account) return lists.isBlocked(account, from) ? refusal(event) : undefined;
    return svc.use(to.bareJid(), (loaded) => (lists.isBlocked(loaded, from) ? refusal(event) : undefined));
  };
  for (const name of ['message/full', 'message/bare', 'presence/full', 'presence/bare', 'iq/full', 'iq/bare'] as const) {
    ctx.hooks.filter(name, check, PRIORITY.route.blocking);
  }
  // A client's message the recipient refuses: answered here, before any delivery or offline storage.
  const refused = (event: RouteEvent): 'delivered' | undefined => {
    if (!event.refusedByRecipient) return undefined;
    ctx.router.bounce(event, 'service-unavailable');
    return 'delivered';
  };
  for (const name of ['message/full', 'message/bare'] as const) ctx.hooks.deliver(name, refused, PRIORITY.route.blocking);
}

/**
 * Messages and IQ get/set from a blocked JID get service-unavailable (the user looks offline); the
 * rest is dropped. A client's message is not stopped here but marked refused (RouteEvent
 * refusedByRecipient): it was sent, and its sender's archive and other resources see it as they see
 * one to an account that does not exist; the deliver handler above answers it.
 */
function refusal(event: RouteEvent): FilterResult {
  const { stanza, origin } = event;
  const type = stanza.attr('type');
  if (stanza.name === 'message' && origin) {
    event.refusedByRecipient = true;
    return undefined;
  }
  if (stanza.name === 'message' || (stanza.name === 'iq' && (type === 'get' || type === 'set'))) return veto('service-unavailable');
  return 'drop';
}

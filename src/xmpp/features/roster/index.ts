import { NS, x, type XmlElement } from '../../../xml/index.js';
import { type Jid } from '../../../jid/index.js';
import type { ModuleContext } from '../../context.js';
import type { RosterItem } from '../../../storage/types.js';
import type { Session } from '../../session.js';
import { StanzaErrorException } from '../../errors.js';
import type { Account } from '../accounts/account.js';
import type { AccountsService } from '../accounts/index.js';
import { itemElement, parseRosterSet, type RosterSetRequest } from './items.js';
import { itemBytes, type RosterLimits } from '../accounts/quota.js';
import { PRIORITY } from '../../priorities.js';
import { resourceChanged } from '../../events.js';
import { RosterService } from './service.js';
import { hasFrom, hasTo } from '../accounts/subscription.js';
import { Subscriptions } from './subscriptions.js';
import { registerDeletedContacts } from './deleted-contact.js';

export interface RosterDeps {
  /** The accounts in memory and presence between them (accounts/). */
  readonly accounts: AccountsService;
}

/**
 * Rosters (RFC 6121 §2) with versioning (XEP-0237, §2.6) and presence
 * subscriptions (§3, pre-approval §3.4), on the accounts the accounts
 * service keeps in memory.
 */
export function register(ctx: ModuleContext, opts: RosterLimits, deps: RosterDeps): void {
  const { accounts } = deps;
  const svc = new RosterService(ctx, opts);
  const subscriptions = new Subscriptions(ctx, svc, accounts);
  subscriptions.register();
  registerDeletedContacts(ctx, svc, accounts);

  ctx.hooks.transform('stream-features', ({ session, features }) => {
    if (session.type !== 'c2s') return;
    // XEP-0237 §2.1 / RFC 6121 §2.6.1: offered at the latest with resource binding.
    features.append(x('ver', { xmlns: NS.ROSTERVER }));
    // RFC 6121 §3.4.1: pre-approvals are supported.
    features.append(x('sub', { xmlns: NS.PRE_APPROVAL }));
  }, PRIORITY.features.informational);

  ctx.iq.register('self', 'get', NS.ROSTER, (session, _iq, payload) => {
    // RFC 6121 §2.2: a resource that asks for the roster is an interested resource. Answered once
    // every node knows (a cluster's directory), so a change after the answer is pushed to it.
    if (session.interested !== true) {
      session.interested = true;
      const written = resourceChanged(ctx.hooks, session);
      if (written) return written.then(() => get(accounts.accountOf(session), payload));
    }
    return get(accounts.accountOf(session), payload);
  });
  // On the account's queue: sets from several of its sessions take effect in the order they came.
  ctx.iq.register('self', 'set', NS.ROSTER, (session, _iq, payload) =>
    ctx.queues.account(session.jid!.bare, () => set(svc, subscriptions, accounts, session, payload)));

  // RFC 6121 §2.1.5 / §2.3.3: another account's roster is forbidden (rather than iq.ts's service-unavailable).
  ctx.hooks.deliver('iq/bare', (event) => {
    const { origin, stanza, to } = event;
    const ns = stanza.firstElement?.ns;
    if (!origin || ns !== NS.ROSTER || (to.local === origin.username && to.domain === origin.host)) return;
    const type = stanza.attr('type');
    if (type === 'get' || type === 'set') ctx.router.bounce(event, 'forbidden');
    return 'delivered';
  }, PRIORITY.route.onBehalf);
}

/** RFC 6121 §2.2 roster get; XEP-0237 §3: an up-to-date `ver` gets an empty result. */
function get(account: Account, payload: XmlElement): XmlElement | undefined {
  const version = String(account.version);
  if (payload.attr('ver') === version) return undefined;
  return x('query', { xmlns: NS.ROSTER, ver: version }, ...[...account.items.values()].map(itemElement));
}

/** RFC 6121 §2.3–2.5 roster set: add, update or remove one item. */
async function set(svc: RosterService, subscriptions: Subscriptions, accounts: AccountsService, session: Session, payload: XmlElement): Promise<void> {
  const account = accounts.accountOf(session);
  const request = parseRosterSet(payload, account.jid);
  if (request.kind === 'remove') return remove(svc, subscriptions, accounts, session, account, request.jid);
  await update(svc, session, account, request);
}

async function update(svc: RosterService, session: Session, account: Account, request: Extract<RosterSetRequest, { kind: 'update' }>): Promise<void> {
  const jid = request.jid.bare;
  svc.checkItemSize(request.name, request.groups);
  // Only name and groups come from the client; the subscription state is the server's (§2.1.2.5).
  const current = account.items.get(jid);
  const next: RosterItem = {
    jid, name: request.name, groups: request.groups,
    subscription: current?.subscription ?? 'none', ask: current?.ask ?? false, approved: current?.approved ?? false,
  };
  svc.checkRoom(account, jid, itemBytes(next) - (current ? itemBytes(current) : 0));
  const write = account.saveItem(next);
  // §2.3.2 / §2.4.2: a push to every interested resource, the one that sent the set included.
  write.catch(() => undefined); // reported by stored() below, after the pushes
  const pushed = svc.push(account, jid, session);
  if (pushed) await pushed;
  await stored(write);
}

/**
 * RFC 6121 §2.5.2: removing an item ends the subscriptions both ways, as
 * if the user had sent unsubscribe (for To or Pending Out) and unsubscribed
 * (for From or Pending In), and forgets a pending request.
 */
async function remove(svc: RosterService, subscriptions: Subscriptions, accounts: AccountsService, session: Session, account: Account, contact: Jid): Promise<void> {
  const jid = contact.bare;
  // §2.5.3: an item that is not on the roster is item-not-found.
  if (!account.items.has(jid)) throw new StanzaErrorException('item-not-found', `${jid} is not on the roster`);
  const before = account.state(jid);
  const write = account.deleteItem(jid);
  write.catch(() => undefined); // reported by stored() below, after the pushes
  void account.dropPending(jid);
  const pushed = svc.push(account, jid, session);
  if (pushed) await pushed;
  const stamp = (type: string) => x('presence', { xmlns: NS.CLIENT, type, from: account.bare, to: jid });
  if (hasFrom(before.subscription)) accounts.relay.sendUnavailable(account, contact);
  if (hasFrom(before.subscription) || before.pendingIn) await subscriptions.inbound('unsubscribed', account.jid, contact, stamp('unsubscribed'), session);
  if (hasTo(before.subscription) || before.ask) await subscriptions.inbound('unsubscribe', account.jid, contact, stamp('unsubscribe'), session);
  await stored(write);
}

/** A roster set is answered once stored; a failed write is the server's error, not the session's end. */
async function stored(write: Promise<void>): Promise<void> {
  try {
    await write;
  } catch {
    throw new StanzaErrorException('internal-server-error', 'the roster could not be stored');
  }
}

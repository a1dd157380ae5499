import { NS, x, type XmlElement } from '../../../xml/index.js';
import { StanzaErrorException } from '../../errors.js';
import { iqResult } from '../../registry.js';
import type { ModuleContext } from '../../context.js';
import type { Session } from '../../session.js';
import type { PepStore } from '../../../storage/ports/pep.js';
import type { AccountsService } from '../accounts/index.js';
import type { Caps } from '../caps/index.js';
import { PRIORITY } from '../../priorities.js';
import { delivered } from '../../pipeline.js';
import { pubsubErrorReply, unsupported } from './errors.js';
import { createNotifier } from './notify.js';
import { createOwnerOps, type PepLimits } from './owner.js';
import { retrieve } from './retrieve.js';
import { denial, mayView } from './access.js';
import { COMPAT_FEATURE } from './bookmarks-compat.js';

export type { PepLimits } from './owner.js';

export interface PepDeps {
  readonly pep: PepStore;
  readonly accounts: AccountsService;
  readonly caps: Caps;
}

/** XEP-0163 §6 / XEP-0060 §10: the pubsub features this service implements, advertised on accounts. */
const FEATURES = [
  'access-open', 'access-presence', 'access-roster', 'access-whitelist', 'auto-create', 'auto-subscribe',
  'config-node', 'config-node-max', 'create-and-configure', 'create-nodes', 'delete-items', 'delete-nodes', 'filtered-notifications',
  'item-ids', 'last-published', 'member-affiliation', 'modify-affiliations', 'multi-items', 'outcast-affiliation', 'persistent-items', 'presence-notifications', 'publish', 'publish-options',
  'purge-nodes', 'retract-items', 'retrieve-items',
].map((f) => `${NS.PUBSUB}#${f}`);

/**
 * Personal Eventing Protocol (XEP-0163): a pubsub service (XEP-0060, the
 * subset PEP clients use) on each account's bare JID. The owner publishes,
 * retracts, configures, purges and deletes its nodes (owner.ts); anyone the
 * node's access model admits retrieves items (retrieve.ts); changes go out
 * as notifications (notify.ts). Bookmarks (XEP-0402), avatars (XEP-0084),
 * nicknames (XEP-0172) and OMEMO device lists all live here.
 */
export function register(ctx: ModuleContext, limits: PepLimits, deps: PepDeps): void {
  // Anonymous accounts have no PEP service (below): not announced to them.
  ctx.disco.addAccountFeature(NS.PUBSUB, { anonymous: false });
  for (const f of FEATURES) ctx.disco.addAccountFeature(f, { anonymous: false });
  ctx.disco.addAccountIdentity('pubsub', 'pep');
  ctx.disco.addAccountFeature(COMPAT_FEATURE, { anonymous: false });
  // XEP-0163 §6.2 / XEP-0060 §5.2: the nodes listed in the account's disco#items, "only those nodes to
  // which the contact is allowed to subscribe or from which the contact is allowed to retrieve items".
  // The owner's account is loaded once for all its nodes (up to PEP_MAX_NODES_PER_ACCOUNT), not once per node.
  ctx.disco.addAccountItems(async (account, requester) => {
    const nodes = (await deps.pep.nodes(account.domain, account.local)).sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
    if (nodes.length === 0) return [];
    const visible = await deps.accounts.accounts.use(account.bareJid(),
      (owner) => nodes.filter(({ config }) => denial(deps.accounts, owner, requester, config) === undefined));
    return visible.map(({ node }) => x('item', { jid: account.bare, node }));
  });
  // XEP-0060 §5.3-5.4: disco#info on a node: a leaf, with its metadata, to whom may see it (as listed above).
  ctx.disco.addAccountNodeInfo(async (account, requester, node) => {
    const config = await deps.pep.node(account.domain, account.local, node);
    if (!config || await mayView(deps.accounts, account, requester, config) !== undefined) return undefined;
    return x('query', { xmlns: NS.DISCO_INFO, node },
      x('identity', { category: 'pubsub', type: 'leaf' }),
      x('feature', { var: NS.PUBSUB }),
      x('x', { xmlns: NS.DATA_FORMS, type: 'result' },
        x('field', { var: 'FORM_TYPE', type: 'hidden' }, x('value', {}, `${NS.PUBSUB}#meta-data`)),
        x('field', { var: 'pubsub#access_model', type: 'list-single' }, x('value', {}, config.accessModel))));
  });
  const notifier = createNotifier(ctx, deps);
  const owner = createOwnerOps(ctx, limits, { pep: deps.pep, notifier });

  ctx.hooks.deliver('iq/bare', (event) => {
    const { origin, stanza, to } = event;
    const payload = stanza.firstElement;
    const type = stanza.attr('type');
    if (!origin || (payload?.ns !== NS.PUBSUB && payload?.ns !== NS.PUBSUB_OWNER) || (type !== 'get' && type !== 'set')) return;
    const service = to.bareJid();
    const self = origin.username === to.local && origin.host === to.domain;
    return delivered(answer(origin, stanza, async () => {
      if (!self) {
        // XEP-0060 §6.1.3.9: subscriptions are not part of this service (PEP subscribes through
        // presence and caps, XEP-0163 §4): answered as they are to the owner, not as forbidden.
        const request = payload.firstElement?.local;
        if (payload.ns === NS.PUBSUB && type === 'set' && (request === 'subscribe' || request === 'unsubscribe' || request === 'options')) {
          throw unsupported(payload.ns, payload.firstElement);
        }
        // XEP-0060 §7.1.3.1 / §8: only the owner publishes to or manages its PEP service.
        if (type === 'set' || payload.ns === NS.PUBSUB_OWNER) throw new StanzaErrorException('forbidden', 'only the account itself may change its PEP nodes');
        return retrieve(deps, service, origin.jid!.bareJid(), payload);
      }
      // A throw-away (SASL ANONYMOUS) account has no row to keep nodes in.
      if (origin.anonymous) throw new StanzaErrorException('not-allowed', 'anonymous accounts have no PEP service');
      if (type === 'get' && payload.ns === NS.PUBSUB) return retrieve(deps, service, service, payload);
      return ctx.queues.account(service.bare, () => owner.handle(service, type, payload));
    }));
  }, PRIORITY.route.onBehalf);

  // XEP-0163 §4.3.2: a new subscriber (a contact given a presence subscription) gets the last items.
  ctx.hooks.notify('subscriber-added', ({ account, contact }) => {
    notifier.newSubscriber(account, contact).catch((err: unknown) => ctx.log.error({ err }, 'PEP: last items to a new subscriber failed'));
  }, PRIORITY.lifecycle.default);

  // XEP-0163 §4.3.3: a resource's initial presence brings it the last items it is interested in;
  // §4.3.2 / §9: so does a later presence whose caps (a new ver) add interests.
  ctx.hooks.deliver('presence/broadcast', ({ origin, stanza }) => {
    if (!origin || origin.anonymous || stanza.attr('type') !== undefined) return undefined;
    const c = stanza.getChild('c', NS.CAPS);
    const before = origin.presence?.getChild('c', NS.CAPS);
    if (origin.presence !== undefined && (c === undefined || sameCaps(before, c))) return undefined;
    ctx.guard(origin, undefined, () => notifier.lastItems(origin, c, origin.presence === undefined ? undefined : before));
    return undefined;
  }, PRIORITY.route.onBehalf);
}

/** XEP-0115 §5.4: a caps element names its features by hash and ver; the same pair means the same features. */
function sameCaps(a: XmlElement | undefined, b: XmlElement): boolean {
  return a !== undefined && a.attr('hash') === b.attr('hash') && a.attr('ver') === b.attr('ver');
}

/** Runs a handler and answers the IQ with its result or its error, pubsub#errors included. */
async function answer(session: Session, iq: XmlElement, handler: () => Promise<XmlElement | void>): Promise<void> {
  let reply: XmlElement;
  try {
    reply = iqResult(iq, await handler());
  } catch (err) {
    if (!(err instanceof StanzaErrorException)) throw err;
    reply = pubsubErrorReply(iq, err);
  }
  if (!session.destroyed) session.send(reply);
}

/**
 * PEP notifications (XEP-0163 §4.3): each change of a node goes to every
 * available resource, the owner's and those of contacts that may see the
 * node, whose entity capabilities (XEP-0115) list `<node>+notify` (§4.3.1
 * filtered notifications; the owner is subscribed like any other). A
 * resource's initial presence brings it the last item of each node it is
 * interested in (§4.3.3), and a presence whose caps change brings the last
 * item of each node the new caps add (§4.3.2 / §9: interest is read from
 * the current caps). Delivery goes through the router, so a resource on
 * another node of a cluster gets it too.
 */
import { WRITTEN_LIMITS, NS, parseXml, x, type XmlElement } from '../../../xml/index.js';
import type { Jid } from '../../../jid/index.js';
import type { ModuleContext } from '../../context.js';
import type { Session } from '../../session.js';
import type { PepItem, PepNodeConfig, PepStore } from '../../../storage/ports/pep.js';
import type { AccountsService } from '../accounts/index.js';
import { hasFrom, hasTo } from '../accounts/subscription.js';
import type { Caps } from '../caps/index.js';
import { randomId } from '../../../util/random.js';
import { denial } from './access.js';

// Read back what the server wrote: not bound by a client's input limits (xml/limits.ts).
const STORED_LIMITS = WRITTEN_LIMITS;

export interface NotifierDeps {
  readonly pep: PepStore;
  readonly accounts: AccountsService;
  readonly caps: Caps;
}

export interface Notifier {
  /** Sends `change` (the child of `<event/>`) about `node` of `owner` to every interested resource allowed to see it. */
  broadcast(owner: Jid, node: string, config: PepNodeConfig, change: XmlElement): Promise<void>;
  /**
   * A resource sent initial presence (`before` undefined): the last item of each node it is
   * interested in; or it changed its caps from `before` to `c`: of each node only `c` asks for.
   */
  lastItems(session: Session, c: XmlElement | undefined, before?: XmlElement): Promise<void>;
  /** XEP-0163 §4.3.2 ("MUST send the last published item to all new subscribers"): `contact` may now see `owner`'s nodes. */
  newSubscriber(owner: Jid, contact: Jid): Promise<void>;
}

/** An item as it travels in an event or a result: `<item id>` with its payload. */
export function itemElement(item: PepItem): XmlElement {
  return x('item', { id: item.id }, parseXml(item.payload, STORED_LIMITS));
}

export function createNotifier(ctx: ModuleContext, { pep, accounts: svc, caps }: NotifierDeps): Notifier {
  const send = (owner: Jid, to: Session, change: XmlElement): void => {
    const message = x('message', { xmlns: NS.CLIENT, type: 'headline', id: randomId(9), from: owner.bare, to: to.full_jid },
      x('event', { xmlns: NS.PUBSUB_EVENT }, change));
    void ctx.router.route(null, message, to.jid!);
  };
  const features = (s: Session): Promise<ReadonlySet<string> | undefined> => {
    const c = s.presence?.getChild('c', NS.CAPS);
    const known = caps.known(c);
    return known ? Promise.resolve(known) : caps.resolve(s.jid!, c);
  };

  /** The available resources of the owner and of the contacts allowed to see the node. */
  const audience = async (owner: Jid, config: PepNodeConfig): Promise<Session[]> => {
    const contacts = await svc.accounts.use(owner.bareJid(), (account) =>
      [...account.items.values()].filter((i) => hasFrom(i.subscription)).map((i) => account.contact(i.jid))
        .filter((j) => ctx.router.isLocal(j.domain) && denial(svc, account, j, config) === undefined));
    return [owner, ...contacts].flatMap((j) => [...ctx.sessions.available(j.domain, j.local)]);
  };

  return {
    async broadcast(owner, node, config, change) {
      const sessions = await audience(owner, config);
      const interest = `${node}+notify`;
      await Promise.all(sessions.map(async (s) => {
        if ((await features(s))?.has(interest) && !s.destroyed) send(owner, s, change.clone());
      }));
    },

    async lastItems(session, c, before) {
      const now = await caps.resolve(session.jid!, c);
      // Features of the old caps are known (learnt when they came); unknown ones count as none.
      const old = before === undefined ? undefined : caps.known(before);
      const wanted = old && now ? new Set([...now].filter((f) => !old.has(f))) : now;
      if (!wanted || wanted.size === 0 || session.destroyed) return;
      const me = session.jid!.bareJid();
      // The PEP services whose presence the resource receives (RFC 6121 "to"), and its own.
      const services = [me, ...await svc.accounts.use(me, (account) => [...account.items.values()]
        .filter((i) => hasTo(i.subscription)).map((i) => account.contact(i.jid)).filter((j) => ctx.router.isLocal(j.domain)))];
      for (const owner of services) await sendLast(owner, session, wanted);
    },

    async newSubscriber(owner, contact) {
      await Promise.all([...ctx.sessions.available(contact.domain, contact.local)].map(async (s) => {
        const wanted = await features(s);
        if (wanted && wanted.size > 0) await sendLast(owner, s, wanted);
      }));
    },
  };

  /** The last item of each node of `owner` that `session` wants (`<node>+notify`) and may see. */
  async function sendLast(owner: Jid, session: Session, wanted: ReadonlySet<string>): Promise<void> {
    const me = session.jid!.bareJid();
    const nodes = (await pep.nodes(owner.domain, owner.local)).filter((n) => wanted.has(`${n.node}+notify`));
    if (nodes.length === 0) return;
    const visible = await svc.accounts.use(owner, (account) => nodes.filter((n) => denial(svc, account, me, n.config) === undefined));
    for (const { node } of visible) {
      const [last] = await pep.items(owner.domain, owner.local, node, { max: 1 });
      if (!last || session.destroyed) continue;
      let item: XmlElement;
      try {
        item = itemElement(last);
      } catch (err) {
        // One unreadable item (stored by an older version) does not keep the other nodes' items back.
        ctx.log.error({ err, node }, 'PEP: a stored item cannot be read');
        continue;
      }
      send(owner, session, x('items', { node }, item));
    }
  }
}

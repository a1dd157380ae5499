/** XEP-0060 §6.5: retrieving a PEP node's items, by whoever its access model admits. */
import { NS, x, type XmlElement } from '../../../xml/index.js';
import type { Jid } from '../../../jid/index.js';
import { StanzaErrorException } from '../../errors.js';
import type { PepStore } from '../../../storage/ports/pep.js';
import type { AccountsService } from '../accounts/index.js';
import { notPersistent, unsupported } from './errors.js';
import { mayView } from './access.js';
import { itemElement } from './notify.js';
import { nodeOf, pubsub } from './wire.js';

export interface RetrieveDeps {
  readonly pep: PepStore;
  readonly accounts: AccountsService;
}

/** `<pubsub><items node max_items?>(<item id/>…)</items></pubsub>` from `viewer` to `service`. */
export async function retrieve({ pep, accounts }: RetrieveDeps, service: Jid, viewer: Jid, payload: XmlElement): Promise<XmlElement> {
  const request = payload.firstElement;
  // XEP-0060 §6.1 subscriptions and the rest: PEP subscribes by presence and caps instead (XEP-0163 §4.3).
  if (request?.local !== 'items') {
    throw unsupported(NS.PUBSUB, request, 'only items may be retrieved here');
  }
  const node = nodeOf(request);
  const config = await pep.node(service.domain, service.local, node);
  // XEP-0060 §6.5.9.11: no such node.
  if (!config) throw new StanzaErrorException('item-not-found');
  const denied = await mayView(accounts, service, viewer, config);
  if (denied) throw denied;
  // §6.5.9.4: no items kept, and the last published one is not either.
  if (!config.persistItems) throw notPersistent();
  const ids = request.getChildren('item').map((i) => i.attr('id') ?? '');
  if (ids.some((id) => id === '')) throw new StanzaErrorException('bad-request', 'an <item/> without id');
  const max = request.attr('max_items');
  // XEP-0060 §6.5.7: max_items asks for the N most recent.
  if (max !== undefined && !/^[1-9][0-9]{0,8}$/.test(max)) throw new StanzaErrorException('bad-request', 'max_items must be a positive integer');
  const items = await pep.items(service.domain, service.local, node, ids.length > 0 ? { ids } : { max: max === undefined ? undefined : Number(max) });
  return pubsub(NS.PUBSUB, x('items', { node }, ...items.map(itemElement)));
}

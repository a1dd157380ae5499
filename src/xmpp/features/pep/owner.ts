/** What only the owner of a PEP service does (XEP-0060 §7 publisher and §8 owner use cases, as XEP-0163 needs them). */
import { NS, standalone, x, type XmlElement } from '../../../xml/index.js';
import type { Jid } from '../../../jid/index.js';
import { StanzaErrorException } from '../../errors.js';
import type { ModuleContext } from '../../context.js';
import type { PepNodeConfig, PepStore } from '../../../storage/ports/pep.js';
import { affiliationsElement, applyAffiliations } from './affiliations.js';
import { randomId } from '../../../util/random.js';
import { notPersistent, PubsubError, unsupported } from './errors.js';
import { checkPreconditions, configForm, DEFAULT_CONFIG, NODE_CONFIG, parseConfigForm, PUBLISH_OPTIONS } from './config.js';
import type { Notifier } from './notify.js';
import { itemElement } from './notify.js';
import { nodeOf, pubsub } from './wire.js';
import { mirrorBookmarks, otherBookmarksNode } from './bookmarks-compat.js';

export interface PepLimits {
  /** Items a node keeps at most; also what pubsub#max_items 'max' means. */
  readonly maxItemsPerNode: number;
  /** Largest item payload, serialized. */
  readonly maxItemBytes: number;
  readonly maxNodesPerAccount: number;
}

export interface OwnerDeps {
  readonly pep: PepStore;
  readonly notifier: Notifier;
}

export interface OwnerOps {
  /** An owner's get or set in the pubsub or pubsub#owner namespace (not item retrieval). */
  handle(service: Jid, type: 'get' | 'set', payload: XmlElement): Promise<XmlElement | void>;
}

export function createOwnerOps(ctx: ModuleContext, limits: PepLimits, { pep, notifier }: OwnerDeps): OwnerOps {
  const notify = (service: Jid, node: string, config: PepNodeConfig, change: XmlElement): void => {
    notifier.broadcast(service, node, config, change).catch((err: unknown) => ctx.log.error({ err, node }, 'a PEP notification failed'));
  };
  /** XEP-0402 §5.3: a change to one bookmarks node is written to the other, and notified. */
  const mirror = async (service: Jid, node: string): Promise<void> => {
    const other = await mirrorBookmarks(pep, service, node, limits.maxItemsPerNode);
    if (other) notify(service, other.node, other.config, x('items', { node: other.node }, ...other.items.map(itemElement)));
  };
  const existing = async (service: Jid, node: string): Promise<PepNodeConfig> => {
    const config = await pep.node(service.domain, service.local, node);
    if (!config) throw new StanzaErrorException('item-not-found');
    return config;
  };
  /**
   * Refuses a change that would create nodes past the account's limit: `node` when it does not
   * exist, and the other bookmarks node that mirroring it creates (XEP-0402 §5.3), checked before
   * anything is written.
   */
  const roomFor = async (service: Jid, node: string): Promise<void> => {
    const existing = new Set((await pep.nodes(service.domain, service.local)).map((n) => n.node));
    const other = otherBookmarksNode(node);
    const created = [node, ...(other === undefined ? [] : [other])].filter((n) => !existing.has(n)).length;
    if (created > 0 && existing.size + created > limits.maxNodesPerAccount) {
      throw new PubsubError('policy-violation', 'max-nodes-exceeded', undefined, `at most ${limits.maxNodesPerAccount} nodes`);
    }
  };
  /** Creates `node`; XEP-0060 §7.1.4 auto-create and §8.1 create both stop at the account's node limit. */
  const create = async (service: Jid, node: string, config: PepNodeConfig): Promise<void> => {
    await roomFor(service, node);
    await pep.configure(service.domain, service.local, node, config);
  };

  /** XEP-0060 §7.1: one item, its payload within the size limit; §7.1.5 publish-options. */
  async function publish(service: Jid, request: XmlElement, payload: XmlElement): Promise<XmlElement> {
    const node = nodeOf(request);
    const items = request.getChildren('item');
    if (items.length !== 1) throw new PubsubError('bad-request', items.length === 0 ? 'item-required' : 'invalid-payload');
    const content = items[0]!.getChildren();
    if (content.length !== 1) throw new PubsubError('bad-request', content.length === 0 ? 'payload-required' : 'invalid-payload');
    // Stored alone: the namespaces it uses from <item/> or above are declared on it (a prefix bound
    // on <item xmlns:p=…>, legal XML), so it parses when read back; what cannot be is refused.
    const alone = standalone(content[0]!);
    if (!alone) throw new PubsubError('bad-request', 'invalid-payload', undefined, 'the payload uses a namespace prefix it does not declare');
    const text = alone.toString();
    // XEP-0060 §7.1.3.4: payload-too-big.
    if (Buffer.byteLength(text) > limits.maxItemBytes) {
      throw new PubsubError('not-acceptable', 'payload-too-big', undefined, `an item may be at most ${limits.maxItemBytes} bytes`);
    }
    const form = payload.getChild('publish-options', NS.PUBSUB)?.getChild('x', NS.DATA_FORMS);
    const options = form ? parseConfigForm(form, PUBLISH_OPTIONS, limits.maxItemsPerNode) : {};
    let config = await pep.node(service.domain, service.local, node);
    if (config) {
      checkPreconditions(config, options);
      // Publishing to an existing bookmarks node may create its mirror.
      if (config.persistItems && otherBookmarksNode(node) !== undefined) await roomFor(service, node);
    } else await create(service, node, (config = { ...DEFAULT_CONFIG, ...options }));
    const item = { id: items[0]!.attr('id') || randomId(12), payload: text };
    if (config.persistItems) {
      await pep.publish(service.domain, service.local, node, item, config.maxItems);
      await mirror(service, node);
    }
    notify(service, node, config, x('items', { node }, itemElement(item)));
    return pubsub(NS.PUBSUB, x('publish', { node }, x('item', { id: item.id })));
  }

  /** XEP-0060 §7.2: retract, notifying when asked (notify='true'). */
  async function retract(service: Jid, request: XmlElement): Promise<void> {
    const node = nodeOf(request);
    const config = await existing(service, node);
    // §7.2.3.5: a node that keeps no items has none to retract.
    if (!config.persistItems) throw notPersistent();
    const ids = request.getChildren('item').map((i) => i.attr('id'));
    if (ids.length === 0 || ids.some((id) => !id)) throw new PubsubError('bad-request', 'item-required');
    if (otherBookmarksNode(node) !== undefined) await roomFor(service, node);
    const gone: string[] = [];
    for (const id of ids as string[]) if (await pep.retract(service.domain, service.local, node, id)) gone.push(id);
    if (gone.length === 0) throw new StanzaErrorException('item-not-found');
    await mirror(service, node);
    const flag = request.attr('notify');
    if (flag === 'true' || flag === '1') notify(service, node, config, x('items', { node }, ...gone.map((id) => x('retract', { id }))));
  }

  /** XEP-0060 §8.1.3: create with a configuration. */
  async function createNode(service: Jid, request: XmlElement, payload: XmlElement): Promise<void> {
    // §8.1.1: "If the node creator does not specify a NodeID but the service does not support instant
    // nodes, the service MUST return a <not-acceptable/> error" with <nodeid-required/>.
    if (!request.attr('node')) throw new PubsubError('not-acceptable', 'nodeid-required', undefined, 'instant nodes are not supported: name the node');
    const node = nodeOf(request);
    if (await pep.node(service.domain, service.local, node)) throw new StanzaErrorException('conflict', 'the node exists');
    const form = payload.getChild('configure', NS.PUBSUB)?.getChild('x', NS.DATA_FORMS);
    await create(service, node, { ...DEFAULT_CONFIG, ...(form ? parseConfigForm(form, NODE_CONFIG, limits.maxItemsPerNode) : {}) });
  }

  /** XEP-0060 §8.2: the configuration form, and a submitted one (a cancelled one changes nothing). */
  async function configure(service: Jid, type: 'get' | 'set', request: XmlElement): Promise<XmlElement | void> {
    const node = nodeOf(request);
    const config = await existing(service, node);
    if (type === 'get') return pubsub(NS.PUBSUB_OWNER, x('configure', { node }, configForm(config)));
    const form = request.getChild('x', NS.DATA_FORMS);
    if (!form) throw new StanzaErrorException('bad-request', 'expected a data form');
    if (form.attr('type') === 'cancel') return;
    await pep.configure(service.domain, service.local, node, { ...config, ...parseConfigForm(form, NODE_CONFIG, limits.maxItemsPerNode) });
  }

  /** XEP-0060 §8.4 delete and §8.5 purge, each notified; on a bookmarks node, done to its mirror too (XEP-0402 §5.3). */
  async function remove(service: Jid, request: XmlElement): Promise<void> {
    const node = nodeOf(request);
    const config = await existing(service, node);
    // §8.5.3.3: a node that keeps no items cannot be purged.
    if (request.local === 'purge' && !config.persistItems) throw notPersistent();
    const targets: Array<[string, PepNodeConfig]> = [[node, config]];
    const other = otherBookmarksNode(node);
    const otherConfig = other === undefined ? undefined : await pep.node(service.domain, service.local, other);
    if (otherConfig) targets.push([other!, otherConfig]);
    for (const [n, c] of targets) {
      if (request.local === 'delete') await pep.deleteNode(service.domain, service.local, n);
      else await pep.purgeNode(service.domain, service.local, n);
      notify(service, n, c, x(request.local, { node: n }));
    }
  }

  return {
    async handle(service, type, payload) {
      const request = payload.firstElement;
      const what = `${payload.ns === NS.PUBSUB ? '' : 'owner:'}${type}:${request?.local ?? ''}`;
      switch (what) {
        case 'set:publish': return publish(service, request!, payload);
        case 'set:retract': return retract(service, request!);
        case 'set:create': return createNode(service, request!, payload);
        case 'owner:get:configure': case 'owner:set:configure': return configure(service, type, request!);
        case 'owner:set:delete': case 'owner:set:purge': return remove(service, request!);
        case 'owner:get:affiliations': {
          const node = nodeOf(request!);
          return affiliationsElement(service, node, await existing(service, node));
        }
        case 'owner:set:affiliations': {
          const node = nodeOf(request!);
          const config = await existing(service, node);
          await pep.configure(service.domain, service.local, node, { ...config, affiliations: applyAffiliations(service, request!, config) });
          return;
        }
        default:
          // XEP-0060 §10: subscriptions, affiliations and the rest are not part of this PEP service.
          throw unsupported(payload.ns, request);
      }
    },
  };
}

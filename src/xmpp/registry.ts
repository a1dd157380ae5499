import { NS, x, type XmlElement } from '../xml/index.js';
import type { Jid } from '../jid/index.js';
import type { Session } from './session.js';
import type { RouteEvent } from './events.js';

/**
 * Handler of an IQ get/set addressed to the server or to the account itself.
 * Returns the payload of the result (or nothing for an empty result), or
 * throws StanzaErrorException. May be async.
 */
export type IqHandler = (session: Session, iq: XmlElement, payload: XmlElement) => XmlElement | void | Promise<XmlElement | void>;

/** Where an IQ handler answers: the server's domain, the sender's own account (no `to` or own bare JID), or both. */
export type IqScope = 'host' | 'self' | 'both';

interface IqEntry { readonly handler: IqHandler; readonly beforeBind: boolean }

/** IQ handlers keyed by type and payload namespace (RFC 6120 §8.2.3: one payload child). */
export class IqRegistry {
  readonly #host = new Map<string, IqEntry>();
  readonly #self = new Map<string, IqEntry>();

  register(scope: IqScope, type: 'get' | 'set', ns: string, handler: IqHandler, opts: { beforeBind?: boolean } = {}): void {
    const entry = { handler, beforeBind: opts.beforeBind === true };
    if (scope !== 'self') this.#host.set(`${type} ${ns}`, entry);
    if (scope !== 'host') this.#self.set(`${type} ${ns}`, entry);
  }

  lookup(scope: 'host' | 'self', type: string, ns: string): IqEntry | undefined {
    return (scope === 'host' ? this.#host : this.#self).get(`${type} ${ns}`);
  }
}

/** The result reply to an IQ (RFC 6120 §8.2.3). */
export function iqResult(iq: XmlElement, payload?: XmlElement | void): XmlElement {
  return x('iq', { xmlns: NS.CLIENT, type: 'result', id: iq.attr('id'), from: iq.attr('to'), to: iq.attr('from') }, payload ?? undefined);
}

/**
 * Handler of a first-level non-stanza element (SASL, stream management…).
 * May be async: the session's next element waits for it, and what it
 * throws becomes a stream error (core.ts).
 */
export type NonzaHandler = (session: Session, el: XmlElement) => void | Promise<unknown>;

/** Nonza handlers keyed by namespace and local name. */
export class NonzaRegistry {
  readonly #handlers = new Map<string, NonzaHandler>();

  register(ns: string, local: string, handler: NonzaHandler): void {
    this.#handlers.set(`${ns} ${local}`, handler);
  }

  lookup(el: XmlElement): NonzaHandler | undefined {
    return this.#handlers.get(`${el.ns} ${el.local}`);
  }
}

/** Features and identities the server announces in disco#info (XEP-0030). */
export class DiscoRegistry {
  readonly features = new Set<string>([NS.DISCO_INFO, NS.DISCO_ITEMS]);
  readonly accountFeatures = new Set<string>([NS.DISCO_INFO, NS.DISCO_ITEMS]);
  addFeature(ns: string): void { this.features.add(ns); }
  /** Of accountFeatures, those an anonymous account does not have (no archive, no PEP service): not announced to it. */
  readonly registeredOnlyFeatures = new Set<string>();
  addAccountFeature(ns: string, opts: { readonly anonymous?: boolean } = {}): void {
    this.accountFeatures.add(ns);
    if (opts.anonymous === false) this.registeredOnlyFeatures.add(ns);
  }
  /** Identities registered accounts have besides account/registered (XEP-0163 §6.1: pubsub/pep), as 'category/type'. */
  readonly accountIdentities = new Set<string>();
  addAccountIdentity(category: string, type: string): void { this.accountIdentities.add(`${category}/${type}`); }
  /**
   * What an account's disco#items lists besides its available resources (XEP-0163 §6.2: its PEP
   * nodes), each source giving the <item/>s `requester` may see of `account`'s.
   */
  readonly accountItemSources: AccountItemSource[] = [];
  addAccountItems(source: AccountItemSource): void { this.accountItemSources.push(source); }
  /** Who answers disco#info on a node of an account (XEP-0060 §5.3: a PEP node); none that knows it: item-not-found. */
  readonly accountNodeInfoSources: AccountNodeInfoSource[] = [];
  addAccountNodeInfo(source: AccountNodeInfoSource): void { this.accountNodeInfoSources.push(source); }
}

/** The disco#info <query node/> of `account`'s `node` as `requester` may see it, or undefined when it may not or there is none. */
export type AccountNodeInfoSource = (account: Jid, requester: Jid, node: string) => Promise<XmlElement | undefined>;

/** The <item/>s of `account` (a bare JID) that `requester` (a bare JID) may discover. */
export type AccountItemSource = (account: Jid, requester: Jid) => Promise<XmlElement[]>;

/**
 * A local component: a module that serves its own address (a subdomain
 * such as `conference.example.org`, or one JID) and answers every stanza
 * sent there itself, as an XEP-0114 component would, without changes to
 * the core. It replies through `ctx.router.route`.
 */
export interface Component {
  /** The domain or bare JID it serves, normalised. */
  readonly address: string;
  /** For server disco#items (XEP-0030 §4). */
  readonly name: string;
  handle(event: RouteEvent): void | Promise<unknown>;
}

/** The components of this server, by address; server disco#items lists them. */
export class ComponentRegistry {
  readonly #byAddress = new Map<string, Component>();

  /** Adds a component; returns a function that removes it. */
  register(component: Component): () => void {
    if (this.#byAddress.has(component.address)) throw new Error(`a component already serves ${component.address}`);
    this.#byAddress.set(component.address, component);
    return () => { if (this.#byAddress.get(component.address) === component) this.#byAddress.delete(component.address); };
  }

  /** The component serving `to`: one registered for its bare JID, else for its domain. */
  lookup(to: Jid): Component | undefined {
    if (this.#byAddress.size === 0) return undefined;
    return (to.local === '' ? undefined : this.#byAddress.get(to.bare)) ?? this.#byAddress.get(to.domain);
  }

  get all(): Iterable<Component> {
    return this.#byAddress.values();
  }
}

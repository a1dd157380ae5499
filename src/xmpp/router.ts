import { NS, type XmlElement } from '../xml/index.js';
import { makeJid, tryParseJid, type Jid } from '../jid/index.js';
import { isPromise, isVeto, type Pipeline, type Outcome } from './pipeline.js';
import type { CoreEvents, RouteEvent } from './events.js';
import type { Session } from './session.js';
import type { SessionsView } from './session-manager.js';
import type { ComponentRegistry } from './registry.js';
import { stanzaErrorReply, type StanzaErrorCondition, type StanzaErrorType } from './errors.js';
import { handledAsBareWithoutResource, messageType } from './message-types.js';

export type StanzaKind = 'message' | 'presence' | 'iq';

/** The route events: one per stanza kind and kind of address, and the two that leave the server's own domains. */
export type RouteEventName = Extract<keyof CoreEvents, `${StanzaKind}/${string}` | 'route/component' | 'route/remote'>;

/** What becomes of a handler's failure while routing (the core answers it as a stanza or stream error). */
export type RouteErrorSink = (event: RouteEvent, err: unknown) => void;

/** How a bounce's error reply is shaped beyond its condition and text. */
export interface BounceOptions {
  /** Extra children for the <error/> (a veto's: XEP-0191's <blocked/>). */
  readonly appCondition?: XmlElement;
  /** The <error/>'s type when not the condition's usual one (RFC 6120 §8.3.2). */
  readonly errorType?: StanzaErrorType;
  /** The reply carries the stanza's child elements before the <error/> (the original XML RFC 6120 §8.3.1 allows). */
  readonly withPayload?: boolean;
}

/**
 * Classifies a stanza by its `to` (RFC 6120 §10.3–10.5) and runs
 * `<kind>/<full|bare|host>` for local domains, `route/component` for a
 * local component, or `route/remote` for others. What happens then is up
 * to the features: the IM rules of RFC 6121 and the fallbacks live in
 * features/, not here. A filter's veto is answered here, so it is the same
 * whoever routed the stanza. Returns a promise only while a handler awaits.
 */
export class Router {
  /** Routes still awaiting a handler, so shutdown can wait for them (idle()). */
  readonly #inFlight = new Set<Promise<void>>();

  constructor(
    private readonly hooks: Pipeline<CoreEvents>,
    private readonly hosts: ReadonlySet<string>,
    private readonly components: ComponentRegistry,
    private readonly sessions: Pick<SessionsView, 'get'>,
    private readonly onError: RouteErrorSink,
  ) {}

  isLocal(domain: string): boolean { return this.hosts.has(domain); }

  /** Routes a stanza from `origin` (null = the server) to `to`. */
  route(origin: Session | null, stanza: XmlElement, to: Jid): void | Promise<void> {
    const event: RouteEvent = { origin, stanza, to };
    if (this.components.lookup(to)) return this.run('route/component', event);
    if (!this.hosts.has(to.domain)) return this.run('route/remote', event);
    const kind = stanza.name as StanzaKind;
    const target = to.local === '' ? 'host' : to.resource === '' || this.#asBare(kind, stanza, to) ? 'bare' : 'full';
    return this.run(`${kind}/${target}`, event);
  }

  /**
   * RFC 6121 §8.5.3.2.1: a chat or normal message to a full JID whose
   * resource is not connected is handled as if sent to the bare JID
   * (offline storage and carbons then take part); `to` keeps the resource.
   */
  #asBare(kind: StanzaKind, stanza: XmlElement, to: Jid): boolean {
    return kind === 'message' && this.sessions.get(to.domain, to.local, to.resource) === undefined && handledAsBareWithoutResource(messageType(stanza));
  }

  /**
   * Routes a stanza the client sent without `to`: RFC 6120 §10.3.3 — the
   * server handles it on behalf of the account (an IQ, a message to
   * oneself) or, for presence, broadcasts it (RFC 6121 §4.2).
   */
  routeNoTo(origin: Session, stanza: XmlElement): void | Promise<void> {
    const bare = makeJid(origin.username ?? '', origin.host ?? '');
    if (stanza.name === 'presence') return this.run('presence/broadcast', { origin, stanza, to: bare });
    return this.route(origin, stanza, bare);
  }

  /**
   * Runs one route event and answers what its handlers left: a veto, a
   * failure, or nothing delivered (RFC 6120 §8.3: service-unavailable, so
   * nothing the server accepted vanishes without a word).
   */
  run(name: RouteEventName, event: RouteEvent): void | Promise<void> {
    let outcome: Outcome | Promise<Outcome>;
    try {
      outcome = this.hooks.run(name, event);
    } catch (err) {
      this.onError(event, err);
      return;
    }
    if (isPromise(outcome)) return this.#track(outcome.then((o) => this.#settle(event, o), (err: unknown) => this.onError(event, err)));
    this.#settle(event, outcome);
  }

  /** Routes that went async and have not settled. */
  get pending(): number { return this.#inFlight.size; }

  /** Resolves once every route that went async has settled, including routes started meanwhile. */
  async idle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight]);
  }

  #track(route: Promise<void>): Promise<void> {
    this.#inFlight.add(route);
    const done = (): void => { this.#inFlight.delete(route); };
    route.then(done, done);
    return route;
  }

  #settle(event: RouteEvent, outcome: Outcome): void {
    if (isVeto(outcome)) this.bounce(event, outcome.veto, outcome.text, { appCondition: outcome.appCondition, errorType: outcome.errorType });
    else if (outcome === 'undelivered' && event.stanza.name !== 'presence') this.bounce(event, 'service-unavailable');
  }

  /**
   * Sends an error reply for `stanza` back to whoever sent it, unless it is
   * itself an error or an IQ result (RFC 6120 §8.3.1: never answer an error
   * with an error; §8.2.3: results are not answered).
   */
  bounce(event: RouteEvent, condition: StanzaErrorCondition, text?: string, options: BounceOptions = {}): void {
    const { stanza, origin } = event;
    const { appCondition, errorType, withPayload = false } = options;
    const type = stanza.attr('type');
    if (type === 'error' || (stanza.name === 'iq' && type === 'result')) return;
    const reply = stanzaErrorReply(stanza, condition, text, errorType);
    if (appCondition) reply.getChild('error')!.append(appCondition);
    if (withPayload) reply.children.unshift(...stanza.getChildren().map((c) => c.clone()));
    if (this.hooks.has('route-bounced')) this.hooks.run('route-bounced', { event, condition });
    if (origin && !origin.destroyed) {
      origin.send(reply);
      return;
    }
    // The sender's session is gone (or the server re-routes on its behalf):
    // address the error to the sender's JID like any other stanza.
    const to = tryParseJid(reply.attr('to'));
    if (to) void this.route(null, reply, to);
  }
}

/** True for the three stanza kinds of jabber:client (RFC 6120 §8). */
export function isClientStanza(el: XmlElement): boolean {
  return el.ns === NS.CLIENT && (el.name === 'message' || el.name === 'presence' || el.name === 'iq');
}

import { NS, x, type XmlElement } from '../../../xml/index.js';
import { StanzaErrorException, stanzaErrorReply, type StanzaErrorCondition } from '../../errors.js';

/** XEP-0060 §7–8 application conditions (pubsub#errors), and XEP-0060 §6.5.9's presence/roster ones. */
export type PubsubCondition =
  | 'payload-too-big' | 'precondition-not-met' | 'invalid-payload' | 'item-required' | 'nodeid-required'
  | 'presence-subscription-required' | 'not-in-roster-group' | 'closed-node' | 'max-nodes-exceeded'
  | 'unsupported' | 'invalid-options' | 'payload-required' | 'unsupported-access-model';

/** A stanza error with the pubsub#errors element XEP-0060 pairs with the condition. */
export class PubsubError extends StanzaErrorException {
  constructor(condition: StanzaErrorCondition, readonly app: PubsubCondition, readonly feature?: string, text?: string) {
    super(condition, text);
  }

  element(): XmlElement {
    return x(this.app, { xmlns: NS.PUBSUB_ERRORS, feature: this.feature });
  }
}

/** The error reply to `iq`, with the pubsub#errors element when there is one. */
export function pubsubErrorReply(iq: XmlElement, err: StanzaErrorException): XmlElement {
  const reply = stanzaErrorReply(iq, err.condition, err.text, err.type);
  if (err instanceof PubsubError) reply.getChild('error')!.append(err.element());
  return reply;
}

/**
 * The feature a request needs, by its namespace and element, as XEP-0060 names it in its
 * <unsupported feature/> errors (§5.6, §5.7, §6.3.4.6, §6.4.3.2, §8.3.4.2, §8.8.1); otherwise the
 * element's name.
 */
const FEATURE_OF: Readonly<Record<string, string>> = {
  [`${NS.PUBSUB} subscriptions`]: 'retrieve-subscriptions',
  [`${NS.PUBSUB} affiliations`]: 'retrieve-affiliations',
  [`${NS.PUBSUB} options`]: 'subscription-options',
  [`${NS.PUBSUB} default`]: 'retrieve-default-sub',
  [`${NS.PUBSUB_OWNER} default`]: 'retrieve-default',
  [`${NS.PUBSUB_OWNER} subscriptions`]: 'manage-subscriptions',
};

/** feature-not-implemented with <unsupported/> for a request (the pubsub element's first child) this service lacks. */
export function unsupported(ns: string, request: XmlElement | undefined, text?: string): PubsubError {
  const local = request?.local ?? 'pubsub';
  return new PubsubError('feature-not-implemented', 'unsupported', FEATURE_OF[`${ns} ${local}`] ?? local, text);
}

/**
 * XEP-0060 §6.5.9.4, §7.2.3.5, §8.5.3.3: a node that does not persist items (pubsub#persist_items
 * false) has no items to retrieve, retract or purge.
 */
export function notPersistent(): PubsubError {
  return new PubsubError('feature-not-implemented', 'unsupported', 'persistent-items', 'this node does not keep items');
}

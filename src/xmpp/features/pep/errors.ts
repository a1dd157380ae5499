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

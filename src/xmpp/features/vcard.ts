import { WRITTEN_LIMITS, NS, parseXml, standalone, x, type XmlElement } from '../../xml/index.js';
import { StanzaErrorException } from '../errors.js';
import type { ModuleContext } from '../context.js';
import type { VcardStore } from '../../storage/ports/vcard.js';
import type { Session } from '../session.js';
import { run } from './iq.js';
import { delivered } from '../pipeline.js';
import { PRIORITY } from '../priorities.js';

export interface VcardOptions {
  /** Largest vCard an account may store, in bytes of its serialized XML. */
  readonly maxSize: number;
}

export interface VcardDeps {
  readonly vcards: VcardStore;
}

// Read back what the server wrote: not bound by a client's input limits (xml/limits.ts).
const STORED_LIMITS = WRITTEN_LIMITS;

/**
 * vCard-temp (XEP-0054): an account gets and sets its own vCard; anyone
 * gets another account's vCard from its bare JID, answered by the server
 * on the account's behalf (RFC 6121 §8.5.2.1.3 / §8.5.2.2.3).
 */
export function register(ctx: ModuleContext, opts: VcardOptions, { vcards }: VcardDeps): void {
  ctx.disco.addFeature(NS.VCARD);

  // §3.1: one's own vCard (no `to`, or one's own bare JID).
  ctx.iq.register('self', 'get', NS.VCARD, async (session, _iq, payload) => {
    requireVcard(payload);
    const stored = session.anonymous ? undefined : await vcards.get(session.host!, session.username!);
    // "MUST return a stanza error (which SHOULD be item-not-found) or an
    // IQ-result containing an empty <vCard/>": the empty result, as ejabberd
    // does; clients (Converse, Gajim) then offer to fill it in rather than
    // showing an error.
    return stored === undefined ? x('vCard', { xmlns: NS.VCARD }) : parseStored(stored);
  });

  // §3.2: the whole vCard is replaced.
  ctx.iq.register('self', 'set', NS.VCARD, async (session, _iq, payload) => {
    requireVcard(payload);
    // A throw-away (SASL ANONYMOUS) account has no row to keep it in.
    if (session.anonymous) throw new StanzaErrorException('not-allowed', 'anonymous accounts cannot store a vCard');
    // Stored alone: the namespaces it uses from the <iq/> (a prefix declared there, legal XML) are
    // declared on it, so it parses when read back (Namespaces in XML 1.0 §6.1); what cannot be is refused.
    const alone = standalone(payload);
    if (!alone) throw new StanzaErrorException('bad-request', 'the vCard uses a namespace prefix it does not declare');
    const text = alone.toString();
    // XEP-0054 sets no limit. The XEPs that do answer "too large" with
    // not-acceptable (XEP-0060 payload-too-big, XEP-0363 file-too-large),
    // and RFC 6120 §8.3.3.12 fits: the request "does not meet criteria
    // defined by the server". policy-violation would suggest the content,
    // not the size, broke a rule.
    if (Buffer.byteLength(text) > opts.maxSize) {
      throw new StanzaErrorException('not-acceptable', `a vCard may be at most ${opts.maxSize} bytes`);
    }
    await vcards.set(session.host!, session.username!, text);
  });

  // §3.3: another account's vCard. Above the default bare-JID IQ handler (-100).
  ctx.hooks.deliver('iq/bare', (event) => {
    const { origin, stanza, to } = event;
    const payload = stanza.firstElement;
    if (!origin || payload?.ns !== NS.VCARD || isSelf(origin, to.local, to.domain)) return;
    const type = stanza.attr('type');
    if (type === 'set') {
      // §3.2: "SHOULD be forbidden or not-allowed" (Prosody: forbidden).
      ctx.router.bounce(event, 'forbidden', "only the account itself may change its vCard");
      return 'delivered';
    }
    if (type !== 'get') return;
    return delivered(run(origin, stanza, async () => {
      requireVcard(payload);
      const stored = await vcards.get(to.domain, to.local);
      // §3.3 (v1.3): no vCard and no such account get the same error, and
      // RFC 6121 §8.5.1 makes it service-unavailable: no directory harvesting.
      if (stored === undefined) throw new StanzaErrorException('service-unavailable');
      return parseStored(stored);
    }));
  }, PRIORITY.route.onBehalf);
}

function isSelf(session: Session, local: string, domain: string): boolean {
  return session.username === local && session.host === domain;
}

function requireVcard(payload: XmlElement): void {
  if (payload.local !== 'vCard') throw new StanzaErrorException('bad-request', 'expected <vCard/>');
}

function parseStored(text: string): XmlElement {
  return parseXml(text, STORED_LIMITS, NS.VCARD);
}

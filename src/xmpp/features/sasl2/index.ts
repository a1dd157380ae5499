import { NS, x, type XmlElement } from '../../../xml/index.js';
import { PRIORITY } from '../../priorities.js';
import { isPromise } from '../../pipeline.js';
import { fromBase64, type OneShotMechanism, type SaslEngine, type SaslWire } from '../sasl-wire.js';
import type { ModuleContext } from '../../context.js';
import type { Session } from '../../session.js';
import type { BindOptions } from '../bind.js';
import type { StreamManagement } from '../stream-management/index.js';
import type { ResumeReply } from '../stream-management/resume.js';
import type { Csi } from '../csi.js';
import { bind2, bind2Feature } from './bind2.js';

/** What SASL2 asks of FAST (fast.ts, XEP-0484). */
export interface FastPort {
  /** The <fast/> for SASL2's <inline/>; none on a stream where FAST may not be used (XEP-0484 §6). */
  feature(session: Session): XmlElement | undefined;
  /** The one-round-trip check for a FAST mechanism with this user agent, or undefined when `name` is none. */
  mechanism(name: string, agent: string | undefined, fast: XmlElement | undefined): OneShotMechanism | undefined;
  /** After a full authentication: the <token/> for <success/>, when one was requested (XEP-0484 §3.2). */
  token(session: Session, agent: string | undefined, request: XmlElement): Promise<XmlElement | undefined>;
}

export interface Sasl2Deps {
  readonly engine: SaslEngine;
  readonly sm: Pick<StreamManagement, 'enable' | 'resume'>;
  readonly csi: Csi;
  readonly fast: FastPort | undefined;
}

export interface Sasl2Options extends BindOptions {
  /** ALLOW_INSECURE_PLAIN (development only): SASL2 offered on streams that are not TLS-protected too. */
  readonly allowInsecure: boolean;
}

/** The <authenticate/> being answered, kept until <success/> or <failure/>. */
interface Request { readonly el: XmlElement; readonly agent: string | undefined; readonly binary: boolean }

/** XEP-0388 §4: the id "MUST be a UUID v4". */
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/**
 * SASL2 (XEP-0388, urn:xmpp:sasl:2) next to the legacy SASL of sasl.ts,
 * whose engine it drives (same mechanisms, throttling, logs and metrics),
 * with the inline features a browser needs to be back in one round trip:
 * XEP-0198 resumption, Bind2 (XEP-0386) with SM, carbons and CSI, and FAST
 * tokens (XEP-0484). No stream restart: <success/> is followed by the
 * features of the authenticated stream (§2.6.1). No task is offered, so
 * <continue/> never occurs.
 */
export function register(ctx: ModuleContext, opts: Sasl2Options, deps: Sasl2Deps): void {
  const { engine, sm, fast } = deps;
  const requests = new WeakMap<Session, Request>();
  /** §9: "SASL2 MUST only be used by Clients or offered by Servers after TLS negotiation". */
  const secure = (session: Session): boolean => session.secure || opts.allowInsecure;

  ctx.hooks.transform('stream-features', ({ session, features }) => {
    if (session.type !== 'c2s_unauthed' || !secure(session)) return;
    // XEP-0388 §2.1, XEP-0386 §2, XEP-0198 §6 and XEP-0484 §3.1: what may be done inline.
    features.append(x('authentication', { xmlns: NS.SASL2 },
      ...engine.mechanisms(session).map((m) => x('mechanism', {}, m)),
      x('inline', {}, bind2Feature(), x('sm', { xmlns: NS.SM }), fast?.feature(session))));
  }, PRIORITY.features.sasl2);

  const wire: SaslWire = {
    challenge: (session, data) => session.write(x('challenge', { xmlns: NS.SASL2 }, toBase64(data))),
    failure(session, condition, text) {
      requests.delete(session);
      // §2.6.2: one of RFC 6120 §6.5's conditions, in its namespace; inline requests are not processed.
      session.write(x('failure', { xmlns: NS.SASL2 }, x(condition, { xmlns: NS.SASL }), text ? x('text', { 'xml:lang': 'en' }, text) : undefined));
    },
    success: (session, _mechanism, data) => succeed(session, data),
  };

  ctx.nonzas.register(NS.SASL2, 'authenticate', (session, el) => {
    // §6.2: "once <success/> or <continue/> has been sent ... any further <authenticate/> MUST result in a stream error".
    if (session.type !== 'c2s_unauthed') return session.close({ condition: 'policy-violation', text: 'already authenticated' });
    const mechanism = el.attr('mechanism') ?? '';
    // Not offered on this stream (§9); RFC 6120 §6.5.6's condition for a mechanism that needs TLS.
    if (!secure(session)) return engine.fail(session, wire, 'encryption-required', 'SASL2 needs a TLS-protected connection', mechanism);
    const agent = el.getChild('user-agent', NS.SASL2)?.attr('id');
    if (agent !== undefined && !UUID.test(agent)) return engine.fail(session, wire, 'malformed-request', 'the user-agent id must be a UUID v4', mechanism);
    const oneShot = fast?.mechanism(mechanism, agent, el.getChild('fast', NS.FAST));
    const text = el.getChild('initial-response', NS.SASL2)?.text().trim();
    // §2.3: an empty element is an empty response, a missing one no response. HT mechanisms carry binary.
    const initial = text === undefined ? undefined : fromBase64(text, oneShot !== undefined);
    if (initial !== undefined && typeof initial !== 'string') return engine.fail(session, wire, initial.condition, initial.text, mechanism);
    requests.set(session, { el, agent, binary: oneShot !== undefined });
    return engine.begin(session, mechanism, initial, wire, oneShot);
  });

  ctx.nonzas.register(NS.SASL2, 'response', (session, el) => engine.respond(session, fromBase64(el.text().trim()), wire));

  ctx.nonzas.register(NS.SASL2, 'abort', (session) => engine.abort(session, wire));

  /**
   * §2.6.1: the inline requests are processed now. XEP-0386 §3: a <resume/>
   * first; when it works the <bind/> is ignored, when it fails its <failed/>
   * goes into <success/> and the bind proceeds.
   */
  async function succeed(session: Session, data: string | undefined): Promise<void> {
    const request = requests.get(session);
    requests.delete(session);
    const el = request?.el;
    const additional = data ? x('additional-data', {}, toBase64(data, request?.binary)) : undefined;
    const token = el && fast ? await fast.token(session, request.agent, el) : undefined;
    if (session.destroyed) return;
    const resume = el?.getChild('resume', NS.SM);
    let failed: XmlElement | undefined;
    if (resume) {
      let resumed = false;
      const reply: ResumeReply = {
        failed: (_carrier, answer) => { failed = answer; },
        greeting(old, answer) {
          resumed = true;
          return [success(old, additional, answer, token), features(old)];
        },
      };
      await sm.resume(session, resume, reply);
      if (resumed || session.destroyed) return;
    }
    const bindRequest = el?.getChild('bind', NS.BIND2);
    const bound = bindRequest ? await bind2(ctx, opts, deps, session, bindRequest, request?.agent) : undefined;
    if (session.destroyed) return;
    session.write(success(session, additional, failed, bound, token));
    session.write(features(session));
  }

  function success(session: Session, ...children: (XmlElement | undefined)[]): XmlElement {
    // §2.6.1: a bare JID, unless a resource was bound or a stream resumed, then the full JID.
    const id = session.full_jid ?? `${session.username}@${session.host}`;
    return x('success', { xmlns: NS.SASL2 }, x('authorization-identifier', {}, id), ...children);
  }

  /** §2.6.1: "<success> is immediately followed by a <features> element". */
  function features(session: Session): XmlElement {
    const el = x('stream:features', { 'xmlns:stream': NS.STREAM });
    const gathered = ctx.hooks.run('stream-features', { session, features: el });
    // Every stream-features handler is synchronous; one that is not is a bug, said loudly.
    if (isPromise(gathered)) ctx.log.error({ session: session.logId }, 'a stream-features handler returned a promise');
    return el;
  }
}

/** SASL data as base64; for the HT mechanisms (binary) the engine's strings hold one byte per character. */
function toBase64(data: string | undefined, binary = false): string | undefined {
  return data === undefined ? undefined : Buffer.from(data, binary ? 'latin1' : 'utf8').toString('base64');
}

import { NS, x, type XmlElement } from '../../xml/index.js';
import { normalizeLocal } from '../../jid/index.js';
import { ScramServer, SCRAM_MECHANISMS, verifyPassword, type SaslFailureCondition, type ScramCredentials, type ScramStep } from '../sasl/scram.js';
import { saslprep } from '../sasl/saslprep.js';
import type { ModuleContext } from '../context.js';
import type { Session } from '../session.js';
import { randomId } from '../../util/random.js';

export interface SaslOptions {
  /** Offer PLAIN on streams that are not TLS-protected. */
  readonly allowInsecurePlain: boolean;
  /** RFC 6120 §6.4.5: failed attempts allowed before the stream is closed. */
  readonly maxFailures: number;
  /** The iteration count of stored credentials, so unknown users look like real ones. */
  readonly scramIterations: number;
  /** Hosts that offer SASL ANONYMOUS (RFC 4505); none by default. */
  readonly anonymousHosts: ReadonlySet<string>;
}

interface Exchange { readonly mechanism: string; scram?: ScramServer; stage: 'awaiting-first' | 'awaiting-final' | 'busy' }
interface SaslState { failures: number; exchange: Exchange | undefined }

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** SASL authentication (RFC 6120 §6) with SCRAM-SHA-256, SCRAM-SHA-1 (RFC 5802/7677) and PLAIN (RFC 4616). */
export function register(ctx: ModuleContext, opts: SaslOptions): void {
  const states = new WeakMap<Session, SaslState>();
  const stateOf = (s: Session): SaslState => {
    let st = states.get(s);
    if (!st) states.set(s, (st = { failures: 0, exchange: undefined }));
    return st;
  };
  const plainAllowed = (s: Session): boolean => s.secure || opts.allowInsecurePlain;

  ctx.hooks.on('stream-features', ({ session, features }) => {
    if (session.type !== 'c2s_unauthed') return;
    const mechs = x('mechanisms', { xmlns: NS.SASL });
    for (const m of Object.keys(SCRAM_MECHANISMS).sort().reverse()) mechs.append(x('mechanism', {}, m));
    // RFC 6120 §6.4.2 / RFC 4616 §6: PLAIN only where the stream is protected.
    if (plainAllowed(session)) mechs.append(x('mechanism', {}, 'PLAIN'));
    if (opts.anonymousHosts.has(session.host!)) mechs.append(x('mechanism', {}, 'ANONYMOUS'));
    features.append(mechs);
  }, 100);

  function failure(session: Session, condition: SaslFailureCondition, text?: string, counts = true): void {
    const st = stateOf(session);
    st.exchange = undefined;
    ctx.metrics.sasl('any', 'failure');
    session.write(x('failure', { xmlns: NS.SASL }, x(condition, {}), text ? x('text', { 'xml:lang': 'en' }, text) : undefined));
    if (counts && ++st.failures >= opts.maxFailures) {
      // RFC 6120 §6.4.5: past the allowed retries, close with policy-violation.
      session.close({ condition: 'policy-violation', text: 'too many failed authentication attempts' });
    }
  }

  function success(session: Session, mechanism: string, username: string, data?: string): void {
    stateOf(session).exchange = undefined;
    ctx.metrics.sasl(mechanism, 'success');
    session.write(x('success', { xmlns: NS.SASL }, data ? Buffer.from(data, 'utf8').toString('base64') : undefined));
    session.username = username;
    session.type = 'c2s';
    // RFC 6120 §6.4.6: the client restarts the stream after <success/>.
    session.notopen = true;
  }

  /** Decodes the base64 content; '=' is an empty response (RFC 6120 §6.4.2), absence is no response. */
  function decode(session: Session, el: XmlElement): string | undefined | null {
    const text = el.text().trim();
    if (text === '') return undefined;
    if (text === '=') return '';
    if (!BASE64.test(text)) {
      failure(session, 'incorrect-encoding', 'the payload is not valid base64');
      return null;
    }
    return Buffer.from(text, 'base64').toString('utf8');
  }

  function lookup(session: Session, mechanism: string) {
    return async (username: string): Promise<ScramCredentials | undefined> => {
      let local: string;
      try { local = normalizeLocal(username); } catch { return undefined; }
      const user = await ctx.storage.users.get(session.host!, local);
      return user?.credentials[mechanism as 'SCRAM-SHA-1' | 'SCRAM-SHA-256'];
    };
  }

  function onScramStep(session: Session, ex: Exchange, step: ScramStep): void {
    if (stateOf(session).exchange !== ex || session.destroyed) return;
    if (step.kind === 'challenge') {
      ex.stage = 'awaiting-final';
      session.write(x('challenge', { xmlns: NS.SASL }, Buffer.from(step.data, 'utf8').toString('base64')));
    } else if (step.kind === 'success') {
      success(session, ex.mechanism, normalizeLocal(step.username), step.data);
    } else {
      failure(session, step.condition, step.text);
    }
  }

  function scramFirst(session: Session, ex: Exchange, clientFirst: string): void {
    ex.stage = 'busy';
    ctx.guard(session, undefined, async () => {
      try {
        onScramStep(session, ex, await ex.scram!.start(clientFirst));
      } catch (err) {
        ctx.log.warn({ err, session: session.logId }, 'credential lookup failed');
        if (stateOf(session).exchange === ex) failure(session, 'temporary-auth-failure', undefined, false);
      }
    });
  }

  async function plain(session: Session, ex: Exchange, message: string): Promise<void> {
    // After each await: an <abort/>, a failure or the session's end may have ended this exchange.
    const current = (): boolean => stateOf(session).exchange === ex && !session.destroyed;
    // RFC 4616 §2: [authzid] NUL authcid NUL passwd
    const parts = message.split('\0');
    if (parts.length !== 3 || parts[1] === '' || parts[2] === '') return failure(session, 'malformed-request');
    const [authzid, authcid, password] = parts as [string, string, string];
    let username: string;
    let pass: string;
    try {
      username = normalizeLocal(saslprep(authcid));
      pass = saslprep(password);
    } catch {
      return failure(session, 'not-authorized');
    }
    let user;
    try { user = await ctx.storage.users.get(session.host!, username); } catch (err) {
      ctx.log.warn({ err, session: session.logId }, 'credential lookup failed');
      return failure(session, 'temporary-auth-failure', undefined, false);
    }
    if (!current()) return;
    const ok = user !== undefined && await verifyPassword('sha1', user.credentials['SCRAM-SHA-1'], pass);
    if (!current()) return;
    if (!ok) return failure(session, 'not-authorized');
    if (authzid !== '' && authzid !== `${username}@${session.host}`) return failure(session, 'invalid-authzid');
    success(session, 'PLAIN', username);
  }

  /**
   * RFC 4505: the client gets a fresh random account of its own (the trace
   * data it may send is ignored). It exists only while the session does.
   */
  function anonymous(session: Session): void {
    session.anonymous = true;
    success(session, 'ANONYMOUS', `anon-${randomId(12, 'hex')}`);
  }

  ctx.nonzas.register(NS.SASL, 'auth', (session, el) => {
    if (session.type !== 'c2s_unauthed') return failure(session, 'aborted', 'already authenticated', false);
    // A new <auth/> while the server still works on the last one: refused (it counts as a failure
    // and ends that exchange too), so pipelined guesses cannot start key derivations without limit.
    if (stateOf(session).exchange?.stage === 'busy') return failure(session, 'malformed-request', 'an authentication exchange is in progress');
    const mechanism = el.attr('mechanism') ?? '';
    const hash = SCRAM_MECHANISMS[mechanism];
    if (mechanism === 'PLAIN' && !plainAllowed(session)) return failure(session, 'encryption-required', 'PLAIN needs a TLS-protected connection');
    if (mechanism === 'ANONYMOUS' && opts.anonymousHosts.has(session.host!)) return anonymous(session);
    if (hash === undefined && mechanism !== 'PLAIN') return failure(session, 'invalid-mechanism');
    const initial = decode(session, el);
    if (initial === null) return;
    const ex: Exchange = { mechanism, stage: 'awaiting-first' };
    stateOf(session).exchange = ex;
    if (mechanism === 'PLAIN') {
      if (initial === undefined) return session.write(x('challenge', { xmlns: NS.SASL }));
      ex.stage = 'busy';
      return ctx.guard(session, undefined, () => plain(session, ex, initial));
    }
    ex.scram = new ScramServer(hash!, lookup(session, mechanism), {
      unknownUserIterations: opts.scramIterations,
      // XMPP clients send the bare JID as authzid (RFC 6120 §6.3.8); it may only name the user themself.
      authzidAllowed: (authzid, username) => authzid === username || authzid === `${username}@${session.host}`,
    });
    // RFC 6120 §6.4.2: without an initial response, send an empty challenge.
    if (initial === undefined) return session.write(x('challenge', { xmlns: NS.SASL }));
    scramFirst(session, ex, initial);
  });

  ctx.nonzas.register(NS.SASL, 'response', (session, el) => {
    const ex = stateOf(session).exchange;
    if (!ex || ex.stage === 'busy') return failure(session, 'malformed-request', 'no authentication in progress');
    const data = decode(session, el);
    if (data === null) return;
    if (ex.mechanism === 'PLAIN') {
      ex.stage = 'busy';
      return ctx.guard(session, undefined, () => plain(session, ex, data ?? ''));
    }
    if (ex.stage === 'awaiting-first') return scramFirst(session, ex, data ?? '');
    onScramStep(session, ex, ex.scram!.finish(data ?? ''));
  });

  ctx.nonzas.register(NS.SASL, 'abort', (session) => {
    // RFC 6120 §6.4.4: the server answers <abort/> with <failure><aborted/></failure>.
    failure(session, 'aborted', undefined, false);
  });
}

import { performance } from 'node:perf_hooks';
import { NS, x, type XmlElement } from '../../xml/index.js';
import { normalizeLocal } from '../../jid/index.js';
import { authzidAccepted } from './sasl-authzid.js';
import { PRIORITY } from '../priorities.js';
import {
  fakeCredentials, ScramServer, SCRAM_MECHANISMS, verifyPassword, type SaslFailureCondition, type ScramCredentials, type ScramStep,
} from '../../sasl/scram.js';
import type { LoginThrottle } from '../../sasl/login-throttle.js';
import { ipKey, UNPARSABLE } from '../../util/ip.js';
import { saslprep } from '../../sasl/saslprep.js';
import type { ModuleContext } from '../context.js';
import type { UserRecord, UserStore } from '../../storage/ports/accounts.js';
import type { Session } from '../session.js';
import { randomId } from '../../util/random.js';
import { looksLikeJwt } from '../../sasl/jwt.js';
import { oauthBearer, plainWithToken, type TokenExchangeOps, type TokenLogin } from './sasl-token.js';
import { fromBase64, legacyWire, type OneShotMechanism, type SaslEngine, type SaslWire, type Undecodable } from './sasl-wire.js';

export interface SaslOptions {
  /** Offer PLAIN on streams that are not TLS-protected. */
  readonly allowInsecurePlain: boolean;
  /**
   * RFC 6120 §6.4.5: the retries a stream gets after a failed attempt ("at
   * least 2 and no more than 5"); the failure after the last one closes it.
   */
  readonly maxFailures: number;
  /** The iteration count of stored credentials, so unknown users look like real ones. */
  readonly scramIterations: number;
  /** Hosts that offer SASL ANONYMOUS (RFC 4505); none by default. */
  readonly anonymousHosts: ReadonlySet<string>;
  /**
   * Key for unknown users' fake SCRAM salts and PLAIN work. Kept in DATA_DIR
   * so it survives a restart: a salt that changed across restarts for
   * unknown users only would give away which accounts exist.
   */
  readonly unknownUserSecret: Buffer;
  /** Failed logins across connections (per address and per address+account), with backoff. */
  readonly throttle: LoginThrottle;
}

export interface SaslDeps {
  /** The accounts and their stored credentials. */
  readonly users: Pick<UserStore, 'get'>;
  /** Token login (JWT_SECRET or JWT_JWKS_URL): a JWT as PLAIN's password, and OAUTHBEARER (RFC 7628). */
  readonly tokens?: TokenLogin | undefined;
}

interface Exchange {
  readonly mechanism: string;
  oneShot?: OneShotMechanism;
  scram?: ScramServer;
  /** 'awaiting-ack': OAUTHBEARER sent its error challenge and waits for the client's kvsep (RFC 7628 §3.2.3). */
  stage: 'awaiting-first' | 'awaiting-final' | 'busy' | 'awaiting-ack';
  /** The user name as the client gave it (for the auth-failure log line), once known. */
  given?: string;
  /** Its normalised form, the account the throttle counts. */
  account?: string;
  /** Why a token was refused (src/sasl/jwt.ts), for the auth-failure log line. */
  reason?: string;
  /** The stored credentials a password was checked against (SCRAM or PLAIN), once read. */
  verified?: VerifiedCredentials;
  /** When the client's first message was taken up, before anything was read from the store for it (performance.now()). */
  began?: number;
}

/**
 * Which stored credentials verified a password login: a later change of the
 * account ends only the sessions whose credentials are no longer the stored
 * ones (account-changes.ts), so a login with the new password right after
 * the change is not ended with the sessions from before it. The salt is
 * random per setting of a password, so a password set again (or an account
 * deleted and created again) never matches an older login.
 */
export interface VerifiedCredentials {
  readonly mechanism: 'SCRAM-SHA-1' | 'SCRAM-SHA-256';
  readonly salt: string;
  readonly storedKey: string;
}

/**
 * What a session's login was checked against: the stored credentials for a
 * password, and for every login (a token's too) when its checks began, on
 * performance.now()'s clock. A login that began before the process read an
 * account change may have read the store before the change; a token login
 * then ends with the account's other token logins (account-changes.ts).
 */
export interface LoginRecord {
  readonly began: number;
  readonly verified?: VerifiedCredentials;
}

/** Whether `v` still names the credentials stored in `record` (undefined: the account is gone). */
export function stillStored(v: VerifiedCredentials, record: UserRecord | undefined): boolean {
  const c = record?.credentials[v.mechanism];
  return c !== undefined && c.salt === v.salt && c.storedKey === v.storedKey;
}

/** The SASL engine, and what it verified each password login with. */
export interface Sasl extends SaslEngine {
  /** The credentials that verified the session's password; undefined for a token, an anonymous login, or a session from another node. */
  verifiedWith(session: Session): VerifiedCredentials | undefined;
  /** When the session's login began its checks; undefined for a session from another node. */
  loginBegan(session: Session): number | undefined;
}

/** The mechanisms we offer, and 'other' for anything else, so metric labels stay bounded. */
const MECHANISM_LABELS = new Set(['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN', 'ANONYMOUS', 'OAUTHBEARER', 'HT-SHA-256-NONE']);
interface SaslState { failures: number; exchange: Exchange | undefined; wire: SaslWire }

/** The client's address or account is being throttled (thrown out of the SCRAM lookup). */
class Throttled extends Error {}

/** A login the throttle counted: a failure (wrong credentials) or a success; `ip` is the address's key (util/ip.ts). */
export interface LoginCounted { readonly ip: string; readonly account: string | undefined; readonly failed: boolean }

declare module '../events.js' {
  interface CoreEvents {
    /** The throttle counted a login here; a cluster tells the other nodes (run only when someone listens). */
    'login-counted': LoginCounted;
    /** Cluster only: another node counted a login; the throttle here counts it too. */
    'login-counted-elsewhere': LoginCounted;
  }
}


/** SASL authentication (RFC 6120 §6) with SCRAM-SHA-256, SCRAM-SHA-1 (RFC 5802/7677) and PLAIN (RFC 4616). */
export function register(ctx: ModuleContext, opts: SaslOptions, { users, tokens }: SaslDeps): Sasl {
  const legacy = legacyWire();
  const states = new WeakMap<Session, SaslState>();
  const logins = new WeakMap<Session, LoginRecord>();
  const stateOf = (s: Session): SaslState => {
    let st = states.get(s);
    if (!st) states.set(s, (st = { failures: 0, exchange: undefined, wire: legacy }));
    return st;
  };
  const plainAllowed = (s: Session): boolean => s.secure || opts.allowInsecurePlain;
  const throttleKey = (s: Session): string => ipKey(s.ip) ?? UNPARSABLE;

  /**
   * Counts a login in the throttle, and tells the other nodes of a cluster,
   * whose throttles count it too: a guesser whose connections a balancer
   * spreads over N nodes (or WORKERS=N processes) would otherwise get N
   * times the free failures and N backoff clocks (found in a hostile review).
   */
  function count(login: LoginCounted): boolean {
    if (!login.failed) return login.account !== undefined && opts.throttle.succeeded(login.ip, login.account);
    opts.throttle.failed(login.ip, login.account);
    return true;
  }
  /** A success is told only when it cleared something: the other nodes then hold the same (a failure went to all). */
  const counted = (session: Session, account: string | undefined, failed: boolean): void => {
    const login: LoginCounted = { ip: throttleKey(session), account, failed };
    if (count(login)) void ctx.hooks.run('login-counted', login);
  };
  ctx.hooks.notify('login-counted-elsewhere', (login) => { count(login); }, PRIORITY.lifecycle.default);

  /**
   * Refuses an attempt from an address (or address and account) that failed
   * too often lately: <temporary-auth-failure/> and the stream ends, so a
   * guesser pays a new connection per try and waits out the backoff.
   */
  function throttled(session: Session, account?: string, mechanism?: string): boolean {
    const wait = opts.throttle.retryAfter(throttleKey(session), account);
    if (wait === 0) return false;
    const seconds = Math.ceil(wait / 1000);
    failure(session, 'temporary-auth-failure', `too many failed attempts: try again in ${seconds} s`, false, mechanism);
    session.close({ condition: 'policy-violation', text: 'too many failed authentication attempts' });
    return true;
  }

  function mechanisms(session: Session): string[] {
    const list = Object.keys(SCRAM_MECHANISMS).sort().reverse();
    // RFC 6120 §6.4.2 / RFC 4616 §6: PLAIN only where the stream is protected.
    if (plainAllowed(session)) list.push('PLAIN');
    // RFC 7628 §5: a bearer token, like PLAIN's password, travels only over a protected stream.
    if (tokens && plainAllowed(session)) list.push('OAUTHBEARER');
    if (opts.anonymousHosts.has(session.host!)) list.push('ANONYMOUS');
    return list;
  }

  ctx.hooks.transform('stream-features', ({ session, features }) => {
    if (session.type !== 'c2s_unauthed') return;
    features.append(x('mechanisms', { xmlns: NS.SASL }, ...mechanisms(session).map((m) => x('mechanism', {}, m))));
  }, PRIORITY.features.sasl);

  /** `answered`: false ends the exchange without writing a <failure/> (its client already moved on to a new <auth/>). */
  function failure(session: Session, condition: SaslFailureCondition, text?: string, counts = true, mechanism?: string, answered = true): void {
    const st = stateOf(session);
    const ex = st.exchange;
    st.exchange = undefined;
    const mech = mechanism ?? ex?.mechanism ?? 'none';
    ctx.metrics.sasl(MECHANISM_LABELS.has(mech) ? mech : 'other', 'failure', condition);
    // One line per failure (issue 13): the user as given (bounded, never the password), mechanism, condition, address.
    ctx.log.info({
      event: 'auth-failure', session: session.logId, user: ex?.given?.slice(0, 128), mechanism: mech.slice(0, 32), condition, ip: session.ip, reason: ex?.reason,
    }, 'authentication failed');
    // Only wrong credentials are guesses; an aborted or malformed exchange is not.
    // (OAUTHBEARER's refused token was counted when its error challenge went out.)
    if (condition === 'not-authorized' && ex?.stage !== 'awaiting-ack') counted(session, ex?.account, true);
    if (answered) st.wire.failure(session, condition, text);
    if (counts && ++st.failures > opts.maxFailures) {
      // RFC 6120 §6.4.5: each of maxFailures failures may be retried; the failure of the retry after them closes with policy-violation.
      session.close({ condition: 'policy-violation', text: 'too many failed authentication attempts' });
    }
  }

  function success(session: Session, mechanism: string, username: string, data?: string): void | Promise<unknown> {
    const ex = stateOf(session).exchange;
    logins.set(session, { began: ex?.began ?? performance.now(), verified: ex?.verified });
    stateOf(session).exchange = undefined;
    counted(session, username, false);
    ctx.metrics.sasl(mechanism, 'success');
    ctx.log.info({
      event: 'authenticated', session: session.logId, jid: `${username}@${session.host}`, mechanism, ip: session.ip, transport: session.transport,
    }, 'authenticated');
    session.username = username;
    session.type = 'c2s';
    session.conn?.loggedIn?.();
    return stateOf(session).wire.success(session, mechanism, data);
  }

  /** Decodes the base64 content; '=' is an empty response (RFC 6120 §6.4.2), absence is no response. */
  function payload(el: XmlElement): string | undefined | Undecodable {
    const text = el.text().trim();
    if (text === '') return undefined;
    if (text === '=') return '';
    return fromBase64(text);
  }

  function lookup(session: Session, mechanism: string, ex: Exchange) {
    return async (username: string): Promise<ScramCredentials | undefined> => {
      ex.given = username;
      let local: string;
      try { local = normalizeLocal(username); } catch { return undefined; }
      ex.account = local;
      if (opts.throttle.retryAfter(throttleKey(session), local) > 0) throw new Throttled();
      const user = await users.get(session.host!, local);
      const creds = user?.credentials[mechanism as VerifiedCredentials['mechanism']];
      if (creds) ex.verified = { mechanism: mechanism as VerifiedCredentials['mechanism'], salt: creds.salt, storedKey: creds.storedKey };
      return creds;
    };
  }

  function onScramStep(session: Session, ex: Exchange, step: ScramStep): void | Promise<unknown> {
    if (stateOf(session).exchange !== ex || session.destroyed) return;
    if (step.kind === 'challenge') {
      ex.stage = 'awaiting-final';
      stateOf(session).wire.challenge(session, step.data);
    } else if (step.kind === 'success') {
      return success(session, ex.mechanism, normalizeLocal(step.username), step.data);
    } else {
      failure(session, step.condition, step.text);
    }
  }

  function scramFirst(session: Session, ex: Exchange, clientFirst: string): void {
    ex.stage = 'busy';
    ex.began = performance.now();
    ctx.guard(session, undefined, async () => {
      try {
        await onScramStep(session, ex, await ex.scram!.start(clientFirst));
      } catch (err) {
        if (err instanceof Throttled) {
          if (stateOf(session).exchange === ex && !session.destroyed) throttled(session, ex.account);
          return;
        }
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
    ex.given = authcid;
    let username: string;
    let pass: string;
    try {
      username = normalizeLocal(saslprep(authcid));
      pass = saslprep(password);
    } catch {
      return failure(session, 'not-authorized');
    }
    ex.account = username;
    if (throttled(session, username)) return;
    // A JWT as the password (as ejabberd's JWT authentication takes it): verified as a token only.
    if (tokens && looksLikeJwt(password)) return plainWithToken(tokens, session, ex, tokenOps(session, ex), { token: password, username, authzid });
    let user;
    try { user = await users.get(session.host!, username); } catch (err) {
      ctx.log.warn({ err, session: session.logId }, 'credential lookup failed');
      return failure(session, 'temporary-auth-failure', undefined, false);
    }
    if (!current()) return;
    // The same key derivation for a missing user as for a real one: a failure
    // must not take 3.4 ms for an existing account and 0.4 ms for a missing
    // one (found in a hostile review). The fake credentials never match.
    // Made for a known user too, as SCRAM's are (scram.ts): the same work on both paths.
    const fake = fakeCredentials('sha1', username, opts.unknownUserSecret, opts.scramIterations);
    const creds = user?.credentials['SCRAM-SHA-1'] ?? fake;
    const ok = await verifyPassword('sha1', creds, pass) && user !== undefined;
    if (!current()) return;
    if (!ok) return failure(session, 'not-authorized');
    if (!authzidAccepted(session, authzid, username)) return failure(session, 'invalid-authzid');
    ex.verified = { mechanism: 'SCRAM-SHA-1', salt: creds.salt, storedKey: creds.storedKey };
    await success(session, 'PLAIN', username);
  }

  /** A one-round-trip mechanism checked elsewhere (FAST), with the same throttling as the others. */
  async function oneShot(session: Session, ex: Exchange, message: string): Promise<void> {
    ex.stage = 'busy';
    ex.began = performance.now();
    const result = await ex.oneShot!(session, message, ex);
    if (stateOf(session).exchange !== ex || session.destroyed) return;
    if (!result.ok) return failure(session, result.condition, result.text);
    // The account's own throttle (the address's was checked at the start), as the SCRAM lookup does.
    if (throttled(session, result.username, ex.mechanism)) return;
    await success(session, ex.mechanism, result.username, result.data);
  }

  /** What a token exchange (sasl-token.ts) may do to this exchange: its outcome goes out on the exchange's wire. */
  const tokenOps = (session: Session, ex: Exchange): TokenExchangeOps => ({
    current: () => stateOf(session).exchange === ex && !session.destroyed,
    fail: (condition, text) => failure(session, condition, text),
    succeed: (username) => success(session, ex.mechanism, username),
    throttled: (account) => throttled(session, account),
    refuseAfterAck(data) {
      // RFC 7628 §3.2.2: counted as a failed guess now; the failure follows the client's kvsep (respond()).
      ex.stage = 'awaiting-ack';
      counted(session, ex.account, true);
      stateOf(session).wire.challenge(session, data);
    },
  });

  /**
   * RFC 4505: the client gets a fresh random account of its own (the trace
   * data it may send is ignored). It exists only while the session does.
   */
  function anonymous(session: Session): void | Promise<unknown> {
    session.anonymous = true;
    return success(session, 'ANONYMOUS', `anon-${randomId(12, 'hex')}`);
  }

  /** PLAIN's and OAUTHBEARER's one client message, checked off the stanza path. */
  function clientFirst(session: Session, ex: Exchange, message: string): void {
    ex.stage = 'busy';
    ex.began = performance.now();
    ctx.guard(session, undefined, () => (ex.mechanism === 'PLAIN' ? plain(session, ex, message) : oauthBearer(tokens!, session, ex, tokenOps(session, ex), message)));
  }

  function begin(session: Session, mechanism: string, initial: string | undefined, wire: SaslWire, one?: OneShotMechanism): void | Promise<unknown> {
    const st = stateOf(session);
    st.wire = wire;
    // A new <auth/> while the server still works on the last one: refused (it counts as a failure
    // and ends that exchange too), so pipelined guesses cannot start key derivations without limit.
    if (st.exchange?.stage === 'busy') return failure(session, 'malformed-request', 'an authentication exchange is in progress');
    // A refused OAUTHBEARER token whose error challenge the client did not acknowledge (RFC 7628 §3.2.2):
    // that exchange ends as the failure it is, counted towards SASL_MAX_FAILURES (RFC 6120 §6.4.5), with
    // no <failure/> of its own: the new <auth/> gets the one answer (§6.4.5/§6.4.6: one outcome per <auth/>).
    if (st.exchange?.stage === 'awaiting-ack') {
      failure(session, 'not-authorized', undefined, true, undefined, false);
      if (session.closing) return;
    }
    if (throttled(session, undefined, mechanism)) return;
    const hash = SCRAM_MECHANISMS[mechanism];
    if ((mechanism === 'PLAIN' || mechanism === 'OAUTHBEARER') && !plainAllowed(session)) {
      return failure(session, 'encryption-required', `${mechanism} needs a TLS-protected connection`, true, mechanism);
    }
    if (mechanism === 'ANONYMOUS' && opts.anonymousHosts.has(session.host!)) return anonymous(session);
    const byToken = mechanism === 'OAUTHBEARER' && tokens !== undefined;
    if (hash === undefined && mechanism !== 'PLAIN' && !byToken && !one) return failure(session, 'invalid-mechanism', undefined, true, mechanism);
    const ex: Exchange = { mechanism, stage: 'awaiting-first', oneShot: one };
    st.exchange = ex;
    if (one) {
      if (initial === undefined) return failure(session, 'malformed-request', `${mechanism} needs an initial response`);
      return ctx.guard(session, undefined, () => oneShot(session, ex, initial));
    }
    if (mechanism === 'PLAIN' || byToken) {
      if (initial === undefined) return wire.challenge(session, undefined);
      return clientFirst(session, ex, initial);
    }
    ex.scram = new ScramServer(hash!, lookup(session, mechanism, ex), {
      unknownUserIterations: opts.scramIterations,
      unknownUserSecret: opts.unknownUserSecret,
      // XMPP clients send the bare JID as authzid (RFC 6120 §6.3.8); it may only name the user themself.
      authzidAllowed: (authzid, username) => { try { return authzidAccepted(session, authzid, normalizeLocal(username)); } catch { return false; } },
      // An unknown user's fake salt is the same for every spelling of the name, as a real one's is.
      accountKey: (username) => { try { return normalizeLocal(username); } catch { return username; } },
    });
    // RFC 6120 §6.4.2: without an initial response, send an empty challenge.
    if (initial === undefined) return wire.challenge(session, undefined);
    scramFirst(session, ex, initial);
  }

  function respond(session: Session, data: string | undefined | Undecodable, wire: SaslWire): void | Promise<unknown> {
    const st = stateOf(session);
    const ex = st.exchange;
    if (!ex || ex.stage === 'busy') st.wire = wire;
    // RFC 6120 §6.4.5 counts authentication attempts: a <response/> with no exchange (before any <auth/>,
    // after a failure or a success) is none, so it is refused without counting towards SASL_MAX_FAILURES
    // (two stray ones closed a logged-in stream). One while the server works on the client's message
    // ends that exchange and counts, as a new <auth/> then does (begin()).
    // Being no attempt, it is neither logged as a failed one nor counted in xmpp_sasl_failures_total.
    if (!ex) {
      ctx.log.debug({ event: 'sasl-stray-response', session: session.logId, ip: session.ip }, 'SASL response with no exchange in progress');
      return wire.failure(session, 'malformed-request', 'no authentication in progress');
    }
    if (ex.stage === 'busy') return failure(session, 'malformed-request', 'no authentication in progress');
    // Its payload is decoded for an exchange only: one that is not base64 (or not UTF-8) fails it.
    if (data !== undefined && typeof data !== 'string') return failure(session, data.condition, data.text);
    // RFC 7628 §3.2.3: the client's kvsep after the error challenge; the exchange then fails.
    if (ex.stage === 'awaiting-ack') return failure(session, 'not-authorized');
    if (ex.mechanism === 'PLAIN' || ex.mechanism === 'OAUTHBEARER') return clientFirst(session, ex, data ?? '');
    if (ex.oneShot) return failure(session, 'malformed-request', 'no challenge was sent');
    if (ex.stage === 'awaiting-first') return scramFirst(session, ex, data ?? '');
    return onScramStep(session, ex, ex.scram!.finish(data ?? ''));
  }

  /**
   * RFC 6120 §6.4.4: <abort/> gets <failure><aborted/></failure>. With an exchange in progress that ends it, a
   * failed attempt like any other (logged, in xmpp_sasl_failures_total). With none (before any <auth/>, after a
   * failure or a success) it ends nothing, so it is answered the same (as Prosody does) but, being no attempt,
   * neither logged as a failed one nor counted, as a stray <response/> is not.
   */
  function abort(session: Session, wire: SaslWire): void {
    const st = stateOf(session);
    st.wire = wire;
    if (st.exchange) return failure(session, 'aborted', undefined, false);
    ctx.log.debug({ event: 'sasl-stray-abort', session: session.logId, ip: session.ip }, 'SASL abort with no exchange in progress');
    wire.failure(session, 'aborted', undefined);
  }

  // A resumption (XEP-0198 §5) moves the new stream under the old session, and the session that
  // authenticated it (the carrier) ends: from then on the old session lives by the carrier's login, so
  // an account change judges it by what verified that login and when it began (a token login always ends).
  ctx.hooks.notify('session-destroyed', ({ session }) => {
    const into = session.resumedInto?.session;
    if (into === undefined) return;
    const login = logins.get(session);
    if (login) logins.set(into, login);
    else logins.delete(into);
  }, PRIORITY.lifecycle.default);

  ctx.nonzas.register(NS.SASL, 'auth', (session, el) => {
    stateOf(session).wire = legacy;
    // The stream is authenticated: nothing is attempted. Answered as before (Prosody ends the stream with
    // unsupported-stanza-type), but neither logged as a failed login nor counted.
    if (session.type !== 'c2s_unauthed') {
      ctx.log.debug({ event: 'sasl-auth-after-login', session: session.logId, ip: session.ip }, 'SASL auth on an authenticated stream');
      return legacy.failure(session, 'aborted', 'already authenticated');
    }
    const initial = payload(el);
    if (initial !== undefined && typeof initial !== 'string') return failure(session, initial.condition, initial.text);
    return begin(session, el.attr('mechanism') ?? '', initial, legacy);
  });

  ctx.nonzas.register(NS.SASL, 'response', (session, el) => respond(session, payload(el), legacy));

  ctx.nonzas.register(NS.SASL, 'abort', (session) => abort(session, legacy));

  return {
    begin, respond, mechanisms,
    verifiedWith: (session) => logins.get(session)?.verified,
    loginBegan: (session) => logins.get(session)?.began,
    abort,
    fail(session, wire, condition, text, mechanism) { stateOf(session).wire = wire; failure(session, condition, text, true, mechanism); },
  };
}

import type { FastifyReply } from 'fastify';
import { TokenBucket } from '../util/token-bucket.js';
import { ipKey, UNPARSABLE } from '../util/ip.js';
import { ownAuthority } from '../util/own-host.js';
import type { CoreMetrics } from '../xmpp/metrics-port.js';
import type { Log } from '../xmpp/log.js';

export interface AdmissionOptions {
  /** ALLOWED_ORIGINS: web origins that may open sessions besides the gateway's own; '*' for any. */
  readonly allowedOrigins: readonly string[];
  /**
   * The gateway's own origin from PUBLIC_URL; undefined to take it from each request (Host, trusted scheme), when
   * its Host names one of `domains` or the address it came in on (util/own-host.ts).
   */
  readonly publicOrigin: string | undefined;
  /** The served XMPP domains. */
  readonly domains: readonly string[];
  /** Sessions (WebSocket connections and BOSH sessions together) one client address may have open. */
  readonly maxPerIp: number;
  /** Of those, not yet authenticated. */
  readonly maxUnauthenticatedPerIp: number;
  /** New sessions per second one address may open, and the burst it may open at once. */
  readonly newPerSecond: number;
  readonly newBurst: number;
  readonly now: () => number;
  /** WORKERS=N: the other workers' open sessions per address, counted against the limits with this process's own. */
  readonly share?: AdmissionShare | undefined;
}

/** The sessions one process has open from one address key. */
export interface AddressCounts {
  /** Sessions over both transports (MAX_CONNECTIONS_PER_IP). */
  readonly open: number;
  /** Of those, BOSH sessions (BOSH_MAX_SESSIONS_PER_IP). */
  readonly bosh: number;
  /** Of those, streams not yet authenticated (MAX_UNAUTHENTICATED_PER_IP). */
  readonly unauthenticated: number;
}

export const NO_SESSIONS: AddressCounts = { open: 0, bosh: 0, unauthenticated: 0 };

/** Open-session counts per address key shared with other processes serving the same port (workers-admission.ts). */
export interface AdmissionShare {
  /**
   * This process's counts from the address `key` changed; `counts` gives them as they are when read (once per
   * key and turn of the event loop, however many sessions opened, ended or authenticated in it).
   */
  report(key: string, counts: () => AddressCounts): void;
  /** What the other processes have open from `key`, summed. */
  elsewhere(key: string): AddressCounts;
  /** This process took a token of the new-session rate of `key`. */
  took(key: string): void;
  /** Calls `debit` with the tokens the other processes took, key by key. */
  onTaken(debit: (key: string, n: number) => void): void;
}

/** Why a new session was refused: metric label values, bounded. */
export type Refusal = 'origin' | 'connections-per-ip' | 'unauthenticated-per-ip' | 'connection-rate';

/** What admission reads of an HTTP request (Fastify's, with trustProxy applied to ip, protocol and host). */
export interface RequestLike {
  readonly ip: string;
  readonly protocol: string;
  readonly host: string;
  readonly headers: { readonly origin?: string | undefined };
  /** The address the request came in on. */
  readonly socket: { readonly localAddress?: string | undefined };
}

/** A refusal and what it was about, for the metric and the log line. */
export interface Refused { readonly reason: Refusal; readonly ip: string; readonly origin: string | undefined }

/** What admission needs to know of an open session. */
export interface Admitted { readonly authenticated: boolean; readonly transport: 'websocket' | 'bosh' }

/** Addresses whose rate buckets are remembered at most (a spray of addresses cannot grow the map without limit). */
const MAX_BUCKETS = 100_000;

/**
 * Who may open a session, for both transports (issue 13): the page's web
 * origin, against cross-site WebSocket hijacking (a page elsewhere driving
 * a visitor's browser to our endpoint), and limits per client address. The
 * address is the real client's through trusted proxies (Fastify's
 * trustProxy), and an IPv6 address counts by its /64 (util/ip.ts).
 */
export class Admission {
  readonly #open = new Map<string, Set<Admitted>>();
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #anyOrigin: boolean;
  readonly #origins: ReadonlySet<string>;
  readonly #logged: RefusalLog;

  constructor(private readonly opts: AdmissionOptions) {
    this.#anyOrigin = opts.allowedOrigins.includes('*');
    this.#origins = new Set(opts.allowedOrigins.filter((o) => o !== '*').map(normalizeOrigin));
    this.#logged = new RefusalLog(opts.now);
    // WORKERS=N: each worker's bucket of an address also pays for the tokens the others took (workers-admission.ts).
    opts.share?.onTaken((key, n) => this.#bucket(key).debit(n));
  }

  /**
   * A request without an Origin header is not from a browser page (or is
   * same-origin navigation) and is allowed; a page's origin must be ours
   * or listed. Ours is PUBLIC_URL's, or without it the request's own scheme
   * and host when the host is a served domain or the address the request
   * came in on: any other name may be a page's after DNS rebinding.
   */
  originAllowed(req: RequestLike): boolean {
    const origin = req.headers.origin;
    if (origin === undefined || this.#anyOrigin) return true;
    const o = normalizeOrigin(origin);
    if (this.#origins.has(o)) return true;
    if (this.opts.publicOrigin !== undefined) return o === normalizeOrigin(this.opts.publicOrigin);
    const own = ownAuthority(req.host, req.socket.localAddress, this.opts.domains);
    return own !== undefined && o === normalizeOrigin(`${req.protocol}://${own}`);
  }

  /** The origin, then the address's limits, of a request that would open a session; undefined when admitted. */
  check(req: RequestLike): Refused | undefined {
    const origin = req.headers.origin;
    if (!this.originAllowed(req)) return { reason: 'origin', ip: req.ip, origin };
    const reason = this.admit(req.ip);
    return reason && { reason, ip: req.ip, origin };
  }

  /** ALLOWED_ORIGINS is '*'. */
  get anyOrigin(): boolean { return this.#anyOrigin; }

  /** A listed origin (or '*'): for CORS, where same-origin requests need no header at all. */
  listed(origin: string): boolean {
    return this.#anyOrigin || this.#origins.has(normalizeOrigin(origin));
  }

  /** Counts a refusal, and logs it within RefusalLog's bounds (an attacker can repeat it at will). */
  note(refused: Refused, metrics: CoreMetrics, log: Log): void {
    metrics.refused(refused.reason);
    if (refused.reason !== 'origin') metrics.limitRefused(refused.reason === 'connection-rate' ? 'rate' : 'per-ip');
    const about = refused.reason === 'origin' ? `origin ${refused.origin}` : `${refused.reason} ${keyOf(refused.ip)}`;
    this.#logged.log(about, log, () => {
      log.warn({ event: 'refused', reason: refused.reason, ip: refused.ip, origin: refused.origin?.slice(0, 200) }, 'new session refused');
    });
  }

  /** Another refusal a client can repeat at will (a forged cluster hop, a plain-HTTP request for a secure session), logged within the same bounds. */
  warnRefused(event: string, ip: string, log: Log, fields: Record<string, unknown>, message: string): void {
    this.#logged.log(`${event} ${keyOf(ip)}`, log, () => log.warn({ event, ip, ...fields }, message));
  }

  /** Checks the limits for a new session from `ip` (taking a token of its rate); undefined when admitted. */
  admit(ip: string): Refusal | undefined {
    const key = keyOf(ip);
    const bucket = this.#bucket(key);
    const limit = this.#sessionLimit(key);
    // A refused attempt costs a token too: repeated, it soon meets the rate, which `blocked` sees at once.
    const wait = this.#take(key, bucket);
    return limit ?? (wait === 0 ? undefined : 'connection-rate');
  }

  /**
   * Whether the address is past its limits now, taking nothing: lets a
   * transport refuse a request that would open a session, or reach none,
   * before parsing it. Cheap enough for every request (no session is
   * counted one by one): the open sessions and the rate, not the
   * unauthenticated count, which refused attempts reach through the rate
   * (each costs a token).
   */
  blocked(ip: string): Refusal | undefined {
    const key = keyOf(ip);
    if (this.#openHere(key) + this.#elsewhere(key).open >= this.opts.maxPerIp) return 'connections-per-ip';
    const bucket = this.#buckets.get(key);
    return bucket === undefined || bucket.waitFor(1) === 0 ? undefined : 'connection-rate';
  }

  /**
   * A request that reached no session (a BOSH sid no one holds, a body that
   * does not parse) costs its address a token of the new-session rate, as
   * opening one would: otherwise such requests, parsed before anything could
   * refuse them, were never limited.
   */
  stray(ip: string): void {
    const key = keyOf(ip);
    this.#take(key, this.#bucket(key));
  }

  /** Counts an admitted session until `release`. */
  add(ip: string, session: Admitted): void {
    const key = keyOf(ip);
    let open = this.#open.get(key);
    if (!open) this.#open.set(key, (open = new Set()));
    open.add(session);
    this.#report(key);
  }

  release(ip: string, session: Admitted): void {
    const key = keyOf(ip);
    const open = this.#open.get(key);
    if (!open?.delete(session)) return;
    if (open.size === 0) this.#open.delete(key);
    this.#report(key);
  }

  /**
   * An admitted session from `ip` authenticated (Conn.loggedIn): the unauthenticated count changed without a
   * session opening or ending. This process reads that state from its sessions when it admits; the others learn it.
   */
  authenticated(ip: string): void {
    this.#report(keyOf(ip));
  }

  /** BOSH sessions the other workers have open from `ip` (WORKERS=N; BOSH_MAX_SESSIONS_PER_IP counts them with the transport's own). */
  boshElsewhere(ip: string): number { return this.#elsewhere(keyOf(ip)).bosh; }

  /** Addresses with sessions open (for leak checks). */
  get addresses(): number { return this.#open.size; }

  /** The open-session limits of an address key, reached or not. */
  #sessionLimit(key: string): Refusal | undefined {
    const open = this.#open.get(key);
    if (this.#openHere(key) + this.#elsewhere(key).open >= this.opts.maxPerIp) return 'connections-per-ip';
    let unauthenticated = this.#elsewhere(key).unauthenticated;
    for (const s of open ?? []) if (!s.authenticated) unauthenticated++;
    if (unauthenticated >= this.opts.maxUnauthenticatedPerIp) return 'unauthenticated-per-ip';
    return undefined;
  }

  #openHere(key: string): number { return this.#open.get(key)?.size ?? 0; }
  #elsewhere(key: string): AddressCounts { return this.opts.share?.elsewhere(key) ?? NO_SESSIONS; }

  /** Tells the other workers what this one now has open from `key` (counted when the share sends it). */
  #report(key: string): void {
    this.opts.share?.report(key, () => {
      let open = 0;
      let bosh = 0;
      let unauthenticated = 0;
      for (const s of this.#open.get(key) ?? []) {
        open++;
        if (s.transport === 'bosh') bosh++;
        if (!s.authenticated) unauthenticated++;
      }
      return { open, bosh, unauthenticated };
    });
  }

  /** Takes a token of `key`'s rate if it has one (0; else the wait), and tells the other workers it did. */
  #take(key: string, bucket: TokenBucket): number {
    const wait = bucket.take(1);
    if (wait === 0) this.opts.share?.took(key);
    return wait;
  }

  #bucket(key: string): TokenBucket {
    let bucket = this.#buckets.get(key);
    if (bucket) return bucket;
    bucket = new TokenBucket(this.opts.newPerSecond, this.opts.newBurst, this.opts.now);
    this.#buckets.set(key, bucket);
    // The oldest bucket goes first; a forgotten address simply starts with a full bucket again.
    if (this.#buckets.size > MAX_BUCKETS) this.#buckets.delete(this.#buckets.keys().next().value!);
    return bucket;
  }
}

const keyOf = (ip: string): string => ipKey(ip) ?? UNPARSABLE;

/** scheme://host[:port], lower-case, default ports dropped (RFC 6454 §6.2); anything unparsable stays as given. */
function normalizeOrigin(origin: string): string {
  try {
    return new URL(origin).origin;
  } catch {
    return origin;
  }
}

/** Refusal lines logged in one minute at most, over every key. */
export const REFUSAL_LINES_PER_MINUTE = 60;

/**
 * Logs refusals an attacker can repeat at will: at most once a minute per key
 * (an origin, an address), and at most `cap` lines a minute in all, since the
 * keys are the attacker's to vary too (any Origin string, the 65,536 /64s of
 * a /48). What was left out is counted, and logged as one line when the
 * minute has passed, with the next refusal. The metrics count every refusal;
 * the log is for a person. The keys remembered are bounded.
 */
export class RefusalLog {
  readonly #last = new Map<string, number>();
  #minute: number;
  #lines = 0;
  #omitted = 0;

  constructor(private readonly now: () => number, private readonly cap = REFUSAL_LINES_PER_MINUTE) {
    this.#minute = now();
  }

  /** Calls `write` if a line about `key` is due now; logs the summary of a past minute's omissions on `log` first. */
  log(key: string, log: Log, write: () => void): void {
    const now = this.now();
    if (now - this.#minute >= 60_000) {
      if (this.#omitted > 0) {
        log.warn({ event: 'refused-omitted', omitted: this.#omitted, seconds: Math.round((now - this.#minute) / 1000) },
          `${this.#omitted} refusals not logged (once a minute per origin or address, ${this.cap} lines a minute at most); xmpp_refused_total counts them all`);
      }
      this.#minute = now;
      this.#lines = 0;
      this.#omitted = 0;
    }
    const last = this.#last.get(key);
    if ((last !== undefined && now - last < 60_000) || this.#lines >= this.cap) {
      this.#omitted++;
      return;
    }
    this.#last.delete(key);
    this.#last.set(key, now);
    if (this.#last.size > 1000) this.#last.delete(this.#last.keys().next().value!);
    this.#lines++;
    write();
  }
}

/** Answers a refused WebSocket upgrade before it happens: 403 for a foreign origin, 429 for a limit. */
export async function refuse(reply: FastifyReply, refused: Refused, admission: Admission, metrics: CoreMetrics, log: Log): Promise<void> {
  admission.note(refused, metrics, log);
  const origin = refused.reason === 'origin';
  await reply.code(origin ? 403 : 429).type('text/plain')
    .send(origin ? 'this page\'s origin may not open XMPP sessions here (ALLOWED_ORIGINS)\n' : `too many sessions from this address (${refused.reason})\n`);
}

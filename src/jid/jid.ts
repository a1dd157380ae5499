/**
 * XMPP addresses (RFC 7622). A Jid always holds enforced (normalised) parts, so two Jids address
 * the same entity exactly when their strings are equal (RFC 7622 §3.1 comparison).
 */
import { JidError } from './errors.js';
import { normalizeDomain } from './domain.js';
import { normalizeLocal, normalizeResource } from './parts.js';

export { JidError } from './errors.js';
export { normalizeDomain, tryNormalizeDomain } from './domain.js';
export { normalizeLocal, normalizeResource } from './parts.js';

export class Jid {
  /** Enforced localpart, '' when absent. */
  readonly local: string;
  /** Enforced domainpart: lower case, U-labels, no trailing dot. */
  readonly domain: string;
  /** Enforced resourcepart, '' when absent. Case is significant. */
  readonly resource: string;
  readonly #bare: string;
  readonly #full: string;

  /** Parts must already be enforced; use parseJid/makeJid (or Jid.parse/Jid.make) from outside. */
  private constructor(local: string, domain: string, resource: string) {
    this.local = local;
    this.domain = domain;
    this.resource = resource;
    this.#bare = local === '' ? domain : `${local}@${domain}`;
    this.#full = resource === '' ? this.#bare : `${this.#bare}/${resource}`;
  }

  /**
   * RFC 7622 §3.1 split: the resourcepart is everything after the FIRST '/', the localpart is
   * everything before the first '@' in what remains. A separator with nothing on its side is an
   * error (RFC 7622 §3.6: "@example.com", "juliet@example.com/", "/foobar").
   */
  static parse(s: string): Jid {
    const slash = s.indexOf('/');
    const head = slash === -1 ? s : s.slice(0, slash);
    const at = head.indexOf('@');
    const local = at === -1 ? '' : head.slice(0, at);
    const domain = at === -1 ? head : head.slice(at + 1);
    const resource = slash === -1 ? '' : s.slice(slash + 1);
    if (at === 0) throw new JidError('empty localpart before "@"');
    if (slash !== -1 && resource === '') throw new JidError('empty resourcepart after "/"');
    return Jid.make(local, domain, resource);
  }

  /** Enforces each part. '' for local or resource means "absent". Throws JidError. */
  static make(local: string, domain: string, resource = ''): Jid {
    return new Jid(
      local === '' ? '' : normalizeLocal(local),
      normalizeDomain(domain),
      resource === '' ? '' : normalizeResource(resource),
    );
  }

  /** 'local@domain' or 'domain'. */
  get bare(): string {
    return this.#bare;
  }

  /** bare + '/' + resource when there is a resource. */
  get full(): string {
    return this.#full;
  }

  bareJid(): Jid {
    return this.resource === '' ? this : new Jid(this.local, this.domain, '');
  }

  /** Same bare JID with `resource` enforced as a resourcepart; '' is rejected (use bareJid()). */
  withResource(resource: string): Jid {
    if (resource === '') throw new JidError('resourcepart is empty');
    return new Jid(this.local, this.domain, normalizeResource(resource));
  }

  equals(other: Jid): boolean {
    return this.#full === other.#full;
  }

  toString(): string {
    return this.#full;
  }

  /** No resourcepart. */
  isBare(): boolean {
    return this.resource === '';
  }

  /** Just a domain: no localpart and no resourcepart (e.g. the server's own address). */
  isDomain(): boolean {
    return this.local === '' && this.resource === '';
  }
}

/** Parses and enforces a JID string; throws JidError on anything invalid. */
export function parseJid(s: string): Jid {
  return Jid.parse(s);
}

/** parseJid that returns null instead of throwing (and for undefined, e.g. a missing attribute). */
export function tryParseJid(s: string | undefined): Jid | null {
  if (s === undefined) return null;
  try {
    return Jid.parse(s);
  } catch (err) {
    if (err instanceof JidError) return null;
    throw err;
  }
}

/** Builds a JID from separate parts, enforcing each; '' local/resource means absent. */
export function makeJid(local: string, domain: string, resource?: string): Jid {
  return Jid.make(local, domain, resource);
}

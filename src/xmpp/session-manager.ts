import type { Session } from './session.js';

/** What may be read of the sessions outside the core (metrics, tests): nothing changes them through it. */
export interface SessionsView {
  readonly all: ReadonlySet<Session>;
  readonly size: number;
  get(host: string, username: string, resource: string): Session | undefined;
  resources(host: string, username: string): Iterable<Session>;
  readonly carbonsEnabled: number;
}

/**
 * All sessions of the process, and the bound ones by host → user → resource.
 * The seed's three kinds of resource are answered here: connected (bound),
 * available (sent initial presence), interested (requested the roster).
 * Created once in app.ts and passed in; no module-level state.
 */
export class SessionManager implements SessionsView {
  readonly #all = new Set<Session>();
  readonly #hosts = new Map<string, Map<string, Map<string, Session>>>();
  /** Bound sessions with carbons enabled: XEP-0280's hot path skips all work while it is 0. */
  #carbons = 0;

  add(session: Session): void { this.#all.add(session); }

  /** Every session, bound or not, for shutdown and metrics. */
  get all(): ReadonlySet<Session> { return this.#all; }

  get size(): number { return this.#all.size; }

  /** The session bound to host/username/resource, if any. */
  get(host: string, username: string, resource: string): Session | undefined {
    return this.#hosts.get(host)?.get(username)?.get(resource);
  }

  /** Connected resources of an account, in bind order. */
  resources(host: string, username: string): Iterable<Session> {
    return this.#hosts.get(host)?.get(username)?.values() ?? [];
  }

  countResources(host: string, username: string): number {
    return this.#hosts.get(host)?.get(username)?.size ?? 0;
  }

  /** Available resources of an account: those that have sent initial presence. */
  *available(host: string, username: string): Iterable<Session> {
    for (const s of this.resources(host, username)) if (s.presence !== undefined) yield s;
  }

  /** Interested resources of an account: those that requested the roster. */
  *interested(host: string, username: string): Iterable<Session> {
    for (const s of this.resources(host, username)) if (s.interested === true) yield s;
  }

  /** How many bound resources have carbons enabled (XEP-0280). */
  get carbonsEnabled(): number { return this.#carbons; }

  /** Turns carbons on or off for `session`, keeping the count of bound ones. */
  setCarbons(session: Session, on: boolean): void {
    if (session.carbons === on) return;
    session.carbons = on;
    if (this.get(session.host ?? '', session.username ?? '', session.resource ?? '') === session) this.#carbons += on ? 1 : -1;
  }

  /** Records the binding; the caller has already resolved conflicts. */
  bind(session: Session): void {
    const { host, username, resource } = session;
    if (host === undefined || username === undefined || resource === undefined) throw new Error('bind before auth');
    let users = this.#hosts.get(host);
    if (!users) this.#hosts.set(host, (users = new Map()));
    let resources = users.get(username);
    if (!resources) users.set(username, (resources = new Map()));
    const replaced = resources.get(resource);
    if (replaced === session) return;
    if (replaced?.carbons) this.#carbons--;
    if (session.carbons) this.#carbons++;
    resources.set(resource, session);
  }

  /** Forgets the session; removes only its own binding (a newer session may own the resource now). */
  remove(session: Session): void {
    this.#all.delete(session);
    const { host, username, resource } = session;
    if (host === undefined || username === undefined || resource === undefined) return;
    const users = this.#hosts.get(host);
    const resources = users?.get(username);
    if (resources?.get(resource) !== session) return;
    resources.delete(resource);
    if (session.carbons) this.#carbons--;
    if (resources.size === 0) users!.delete(username);
  }
}

import type { Session } from './session.js';

/** What may be read of the sessions outside the core (metrics, tests): nothing changes them through it. */
export interface SessionsView {
  readonly all: ReadonlySet<Session>;
  readonly size: number;
  get(host: string, username: string, resource: string): Session | undefined;
  resources(host: string, username: string): Iterable<Session>;
  readonly carbonsEnabled: number;
}

/** host → username → resource → session. */
type Table = Map<string, Map<string, Map<string, Session>>>;

/**
 * All sessions of the process, and the bound ones by host → user → resource.
 * The seed's three kinds of resource are answered here: connected (bound),
 * available (sent initial presence), interested (requested the roster).
 * Created once in app.ts and passed in; no module-level state.
 *
 * In a cluster, the bound sessions of other nodes are here too, as remote
 * stubs (src/cluster/ makes them: Sessions whose sends go to the owning
 * node): `get`, `resources`, `available`, `interested` and `countResources`
 * answer local sessions and stubs alike, so every feature works unchanged;
 * `all` and `size` stay local (shutdown, metrics, account changes).
 */
export class SessionManager implements SessionsView {
  readonly #all = new Set<Session>();
  readonly #hosts: Table = new Map();
  /** Remote stubs; empty (and never looked at) outside a cluster. */
  readonly #remote: Table = new Map();
  /** Bound sessions and stubs with carbons enabled: XEP-0280's hot path skips all work while it is 0. */
  #carbons = 0;

  add(session: Session): void { this.#all.add(session); }

  /** Every local session, bound or not, for shutdown and metrics. */
  get all(): ReadonlySet<Session> { return this.#all; }

  get size(): number { return this.#all.size; }

  /** The session bound to host/username/resource, if any: a local one first, else a remote stub. */
  get(host: string, username: string, resource: string): Session | undefined {
    const local = this.#hosts.get(host)?.get(username)?.get(resource);
    if (local !== undefined || this.#remote.size === 0) return local;
    return this.#remote.get(host)?.get(username)?.get(resource);
  }

  /** The session of this process bound to host/username/resource, never a remote stub. */
  getLocal(host: string, username: string, resource: string): Session | undefined {
    return this.#hosts.get(host)?.get(username)?.get(resource);
  }

  /** Connected resources of an account, local ones in bind order, then remote stubs. */
  resources(host: string, username: string): Iterable<Session> {
    const local = this.#hosts.get(host)?.get(username);
    const remote = this.#remote.size === 0 ? undefined : this.#remote.get(host)?.get(username);
    if (remote === undefined) return local?.values() ?? [];
    if (local === undefined) return remote.values();
    return chain(local, remote);
  }

  countResources(host: string, username: string): number {
    const local = this.#hosts.get(host)?.get(username)?.size ?? 0;
    return this.#remote.size === 0 ? local : local + (this.#remote.get(host)?.get(username)?.size ?? 0);
  }

  /** Available resources of an account: those that have sent initial presence. */
  *available(host: string, username: string): Iterable<Session> {
    for (const s of this.resources(host, username)) if (s.presence !== undefined) yield s;
  }

  /** Interested resources of an account: those that requested the roster. */
  *interested(host: string, username: string): Iterable<Session> {
    for (const s of this.resources(host, username)) if (s.interested === true) yield s;
  }

  /** How many bound resources (stubs included) have carbons enabled (XEP-0280). */
  get carbonsEnabled(): number { return this.#carbons; }

  /** Turns carbons on or off for `session`, keeping the count of bound ones. */
  setCarbons(session: Session, on: boolean): void {
    if (session.carbons === on) return;
    session.carbons = on;
    if (listed(this.#hosts, session) || listed(this.#remote, session)) this.#carbons += on ? 1 : -1;
  }

  /** Records the binding; the caller has already resolved conflicts. */
  bind(session: Session): void { this.#put(this.#hosts, session); }

  /** Forgets the session; removes only its own binding (a newer session may own the resource now). */
  remove(session: Session): void {
    this.#all.delete(session);
    this.#drop(this.#hosts, session);
  }

  /** Records a remote stub (cluster): the session of another node, bound to its host/username/resource. */
  bindRemote(stub: Session): void { this.#put(this.#remote, stub); }

  /** Forgets a remote stub; false if another stub (or none) holds its resource. */
  removeRemote(stub: Session): boolean { return this.#drop(this.#remote, stub); }

  #put(table: Table, session: Session): void {
    const { host, username, resource } = session;
    if (host === undefined || username === undefined || resource === undefined) throw new Error('bind before auth');
    let users = table.get(host);
    if (!users) table.set(host, (users = new Map()));
    let resources = users.get(username);
    if (!resources) users.set(username, (resources = new Map()));
    const replaced = resources.get(resource);
    if (replaced === session) return;
    if (replaced?.carbons) this.#carbons--;
    if (session.carbons) this.#carbons++;
    resources.set(resource, session);
  }

  #drop(table: Table, session: Session): boolean {
    const { host, username, resource } = session;
    if (host === undefined || username === undefined || resource === undefined) return false;
    const users = table.get(host);
    const resources = users?.get(username);
    if (resources?.get(resource) !== session) return false;
    resources.delete(resource);
    if (session.carbons) this.#carbons--;
    if (resources.size === 0) {
      users!.delete(username);
      if (users!.size === 0) table.delete(host);
    }
    return true;
  }
}

function listed(table: Table, session: Session): boolean {
  return table.get(session.host ?? '')?.get(session.username ?? '')?.get(session.resource ?? '') === session;
}

function* chain(a: Map<string, Session>, b: Map<string, Session>): Iterable<Session> {
  yield* a.values();
  yield* b.values();
}

/**
 * SIGTERM in a cluster (CLUSTER=redis): a rolling restart, not an end
 * (issue 14 item 5). The node marks itself not ready (app.ts), takes no new
 * stream (WebSocket upgrades get 503, BOSH session creation system-shutdown,
 * the listener closes so a balancer's next connection goes elsewhere), then
 * drops every transport without ending its session (Conn.drop): XEP-0198
 * resumable sessions hibernate, every other session is closed with
 * system-shutdown as in a single process, and its stream is read until
 * its client's <close/> as the shutdown reads it (app.ts closedStreams,
 * within the same bound). Clients reconnect through the
 * balancer and resume on another node, which takes each session over from
 * this live owner (a fenced claim, takeover.ts): nothing is handed over
 * here. Meanwhile the node keeps its lease and reads its inbox, so what
 * arrives for a hibernating session goes into its journaled queue.
 *
 * After CLUSTER_DRAIN_TIMEOUT (or once no session is left) the node leaves:
 * it stops reading, routes what is left in its inbox while its lease
 * holds (into the hibernating sessions' journaled queues), then releases
 * the lease (node.stop: no waiting for it to expire) and routes what was
 * added in between. Sessions nobody resumed yet
 * are left in Redis exactly as a dead node's are, never closed or handed
 * over here: a resume on any node claims them at once (their owner is
 * gone), and the survivor told of this node's departure owns their resume
 * timeouts (sm-orphans.ts) and hands each over once if nobody comes back.
 */
import type { FastifyInstance } from 'fastify';
import type { Cluster } from './cluster/index.js';
import type { XmppServer } from './server.js';
import type { Log } from './xmpp/log.js';
import type { Session } from './xmpp/session.js';

/** How often the drain looks whether every session has moved. */
const POLL_MS = 50;

export interface RollDeps {
  readonly http: FastifyInstance;
  readonly xmpp: Pick<XmppServer, 'dropTransports' | 'drain' | 'sessions' | 'released'>;
  /** The transports: each stops taking new streams. */
  readonly transports: ReadonlyArray<{ stopAccepting(): void }>;
  readonly cluster: Cluster;
  /** CLUSTER_DRAIN_TIMEOUT, in ms. */
  readonly drainMs: number;
  /**
   * Waits for the streams closed with system-shutdown as the shutdown does
   * (app.ts closedStreams): reads them until their client's <close/>, within
   * the shutdown's bound counted from `from`, then cuts those left.
   */
  readonly closing: (from: number) => Promise<void>;
  readonly log: Log;
}

/** How long the last-node check may take before it is taken as "no other node" (Redis unreachable). */
const MEMBERS_TIMEOUT_MS = 2000;

/**
 * Whether another live node could take this one's sessions over. Not when
 * this is the last node (a whole cluster stopping, or the last worker of
 * WORKERS=N), nor when Redis cannot say: then nobody would resume or time
 * out what was left in Redis, and the sessions must be ended and their
 * queues stored offline, as a single process does.
 */
export async function othersAlive(cluster: Cluster): Promise<boolean> {
  if (!cluster.ready()) return false;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string[]>((r) => { timer = setTimeout(() => r([]), MEMBERS_TIMEOUT_MS); });
  try {
    const members = await Promise.race([cluster.node.members(), timeout]);
    return members.some((id) => id !== cluster.node.id);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** Everything of the rolling restart but closing HTTP and storage (app.ts does both after). */
export async function rollOut(deps: RollDeps): Promise<void> {
  const { xmpp, cluster, log } = deps;
  for (const transport of deps.transports) transport.stopAccepting();
  closeListener(deps.http, log);
  // Those already hibernating (their client went away before) are not waited for.
  const connected = [...xmpp.sessions.all].filter((s) => s.conn !== null);
  // The closed streams are read from now on, while the dropped clients resume elsewhere: the
  // wait for them ends within the shutdown's bound from here, not after the drain as well.
  const droppedAt = Date.now();
  xmpp.dropTransports();
  const left = await waitGone(connected, deps.drainMs);
  log.info({ event: 'cluster-drained', dropped: connected.length, left, hibernating: xmpp.sessions.size }, 'transports dropped; leaving the cluster');
  // A stream that slipped in meanwhile (an upgrade already past the check) goes the same way.
  xmpp.dropTransports();
  // What a closed stream's client sends until its <close/> is routed while this node is still in
  // the cluster (to another node's session, or offline), and its end hands its queue over before
  // the drain: none of it reaches a store being closed, or is cut by the listener's close.
  await deps.closing(droppedAt);
  await cluster.leave();
  // What nobody resumed stays in Redis as a dead node's would, whatever its end here does.
  cluster.release();
  await xmpp.drain();
  // Each session still here gets its end line (reason 'released'): this process will not see its end.
  xmpp.released();
  await cluster.close();
}

/**
 * Stops listening: connections the balancer opens from now on are refused
 * and go to another node; open ones (held BOSH requests, WebSockets) go on
 * until dropped, idle keep-alive ones are closed (Node 19+). Fastify's own
 * close, later, finds the server closed and goes on.
 */
function closeListener(http: FastifyInstance, log: Log): void {
  if (!http.server.listening) return;
  http.server.close((err) => { if (err) log.warn({ err }, 'closing the listener failed'); });
}

/** Resolves with how many of `sessions` are still here once none is (resumed elsewhere or ended), or after `ms`. */
async function waitGone(sessions: readonly Session[], ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  const here = (): number => sessions.filter((s) => !s.destroyed).length;
  while (here() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, POLL_MS));
  return here();
}

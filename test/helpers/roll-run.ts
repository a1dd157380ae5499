/**
 * The rolling-restart tests' common run (issue 14 item 5): three real
 * gateway processes behind nginx in round-robin, pairs of clients talking
 * continuously, each node SIGTERMed and restarted in turn, then the
 * accounting by message id. The clients differ (xmpp.js over WebSocket,
 * StanzaJS over BOSH); each test wraps its own in a RollPeer.
 */
import type { Test } from 'tap';
import type { Storage } from '../../src/storage/index.js';
import { openPostgresStorage } from '../../src/storage/postgres/index.js';
import { parseXml } from '../../src/xml/index.js';
import { startGatewayCluster, type ClusterOptions, type GatewayCluster } from './cluster.js';
import { readmeLocations, startNginx } from './nginx.js';
import { eventually, sleep } from './eventually.js';
import { rollTrace, TRACE_ENV, type RollTrace } from './roll-trace.js';

/** Each client sends one message to its partner this often while online. */
export const SEND_EVERY_MS = 400;

/** One test client, whatever its library and transport, as the accounting sees it. */
export interface RollPeer {
  readonly name: string;
  /** Ids of the messages received, in arrival order (duplicates kept). */
  readonly received: string[];
  /**
   * How each of `received` arrived, same index: when, over which transport (a BOSH sid, the response's rid and
   * attempt), the client's resumption count then, and a XEP-0203 delay's from and reason (offline storage, a
   * hand-over) if any. Printed for a message delivered twice.
   */
  readonly arrivals: string[];
  /**
   * What else the client library saw of message `id`: every BOSH response that carried it, processed or not, and
   * each time the client sent it again from its XEP-0198 queue after a resumption (StanzaJS).
   */
  notes?(id: string): string[];
  /** Ids of the messages sent. */
  readonly sent: string[];
  /** Ids of the messages that came back as errors (RFC 6120 §8.3): refused, not lost. */
  readonly bounced: string[];
  /** XEP-0198 resumptions, and fresh logins (bound afresh). */
  resumed: number;
  online: number;
  /** The bound full JID. */
  jid(): string;
  isOnline(): boolean;
  /** Sends a chat message with this id (and body) to `to`; a failed write is the client's XEP-0198 queue's business. */
  send(to: string, id: string): void;
  /** Initial presence, which flushes offline storage (XEP-0160). */
  presence(): void;
  /** Logs out, reconnect off. */
  stop(): Promise<void>;
}

export interface RollSetup {
  readonly cluster: GatewayCluster;
  readonly trace: RollTrace;
  /** nginx's http:// base URL (append /xmpp-websocket or /http-bind). */
  readonly httpUrl: string;
}

/**
 * The lease the roll's nodes hold (CLUSTER_NODE_TTL). Not cluster.ts's 3 s, which crash tests want short: a
 * roll's nodes leave cleanly (the lease released, nothing waits for it to run out), and on a loaded machine (a full
 * CI run on 2 cores, load ~20) a node's renewals stalled past 1.5 s: the others declared it dead, it stopped and
 * ended its sessions for good, and what they had not acknowledged went to offline storage, though their clients had
 * read it: delivered twice after their fresh login (and in that run 57 messages were lost as well). The roll tests a
 * planned departure, not a fenced node (cluster-process.test.ts does that).
 */
export const ROLL_NODE_TTL_MS = 5000;

/**
 * The cluster (stopped at teardown), its trace and nginx in front of it. `backing`: a Redis and a PostgreSQL to
 * use (cluster.ts's fileBacking), instead of its own.
 */
export async function startRollCluster(t: Test, env: Record<string, string>, backing?: Pick<ClusterOptions, 'redis' | 'postgres'>): Promise<RollSetup> {
  const trace = rollTrace(t);
  const cluster = await startGatewayCluster({
    nodes: 3, logDir: trace.logDir, ...backing,
    env: { CLUSTER_DRAIN_TIMEOUT: '10', SHUTDOWN_TIMEOUT: '25', LOG_LEVEL: 'info', CLUSTER_NODE_TTL: String(ROLL_NODE_TTL_MS), ...TRACE_ENV, ...env },
  });
  t.teardown(() => cluster.stop());
  await trace.connect(cluster.redisUrl);
  // max_fails=0: a refused connection (a node leaving or restarting) goes to the next server at once, and no server
  // is taken out of the rotation for fail_timeout afterwards (three nodes rolling within seconds would leave none).
  const upstream = `upstream xwg_cluster { ${cluster.nodes.map((n) => `server 127.0.0.1:${n.port} max_fails=0;`).join(' ')} }`;
  const nginx = await startNginx(t, readmeLocations('http://xwg_cluster'), upstream);
  return { cluster, trace, httpUrl: nginx.httpUrl };
}

/** Stops every peer (all at once) at `t`'s teardown; `peers` may still grow. */
export function stopAtTeardown(t: Test, peers: readonly RollPeer[]): void {
  t.teardown(async () => { await Promise.all(peers.map((p) => p.stop())); });
}

/** Sends to `to` every SEND_EVERY_MS (jittered) while `from` is online, until `running()` says stop. */
export async function talk(from: RollPeer, to: RollPeer, running: () => boolean, trace: RollTrace): Promise<void> {
  for (let n = 0; running(); n++) {
    await sleep(SEND_EVERY_MS * (0.5 + Math.random()));
    if (!from.isOnline()) continue;
    const id = `${from.name}-${n}`;
    from.sent.push(id);
    trace.sent(id, from.jid(), to.jid());
    from.send(to.jid(), id);
  }
}

/** Both directions of every pair (peers[2i] ↔ peers[2i+1]) until `running()` says stop. */
export function talkInPairs(peers: readonly RollPeer[], running: () => boolean, trace: RollTrace): Promise<unknown> {
  return Promise.all(Array.from({ length: peers.length / 2 }, (_, i) => [
    talk(peers[2 * i]!, peers[2 * i + 1]!, running, trace), talk(peers[2 * i + 1]!, peers[2 * i]!, running, trace),
  ]).flat());
}

/** SIGTERM each node in turn, check it left cleanly with every client resumed elsewhere, restart it. */
export async function rollEachNode(t: Test, { cluster, trace }: RollSetup, pauseMs = 1500): Promise<void> {
  for (const node of cluster.nodes) {
    trace.step(`SIGTERM ${node.id}`);
    const exit = await cluster.kill(node.index, 'SIGTERM');
    trace.step(`${node.id} exited`);
    t.same(exit, { code: 0, signal: null }, `${node.id} left by itself on SIGTERM`);
    const drained = node.events().find((e) => e.event === 'cluster-drained');
    t.equal(drained?.left, 0, `${node.id} dropped its transports and every client resumed elsewhere while it waited (${JSON.stringify(drained)})`);
    await cluster.restart(node.index);
    trace.step(`${node.id} ready again`);
    await sleep(pauseMs);
  }
}

function received(peers: readonly RollPeer[]): Set<string> {
  return new Set(peers.flatMap((p) => p.received));
}

/** The ids of the messages in offline storage for `peers`' accounts (on localhost) now. */
async function storedOffline(storage: Storage, peers: readonly RollPeer[]): Promise<Set<string>> {
  const lists = await Promise.all(peers.map((p) => storage.offline.list('localhost', p.name)));
  return new Set(lists.flat().map((m) => parseXml(m.stanza).attr('id')).filter((id): id is string => id !== undefined));
}

/**
 * Waits for every message, flushes offline storage for the missing ones, and reports where each went.
 * `databaseUrl`: the cluster's PostgreSQL, where the first wait also looks for what went to offline storage.
 */
async function collect(t: Test, peers: readonly RollPeer[], trace: RollTrace, sent: readonly string[], databaseUrl?: string): Promise<void> {
  // Errors may still be coming back: read at each check.
  const bounced = (): Set<string> => new Set(peers.flatMap((p) => p.bounced));
  let storage: Promise<Storage> | undefined;
  try {
    // Counted afterwards whatever the outcome: a message still missing after this wait is reported as lost.
    // The wait ends once each message arrived, came back to its sender, or is in offline storage (it arrives at
    // the initial presence below, not live): with one kept offline, waiting for all of them to arrive live ran
    // the whole 20 s for nothing (in 5 of the 12 rolls measured).
    await eventually(async () => {
      const live = received(peers);
      if (live.size >= sent.length) return true;
      const back = bounced();
      const pending = sent.filter((id) => !live.has(id) && !back.has(id));
      if (pending.length === 0) return true;
      if (databaseUrl === undefined) return false;
      storage ??= openPostgresStorage({ url: databaseUrl });
      const stored = await storedOffline(await storage, peers);
      return pending.every((id) => stored.has(id));
    }, { timeout: 20_000, interval: 250, message: 'every message to arrive' }).catch(() => undefined);
  } finally {
    await storage?.then((s) => s.close(), () => undefined);
  }
  const live = received(peers);
  const missing = sent.filter((id) => !live.has(id));
  if (missing.length === 0) return;
  // Not on the live path: were they stored offline (the server's other outcome)? What arrives now was kept, not lost,
  // but it came late, so it is reported.
  for (const p of peers) p.presence();
  // Until each missing one arrived, or is one that came back to its sender (it will not arrive).
  await eventually(() => {
    const back = bounced();
    return missing.every((id) => back.has(id) || peers.some((p) => p.received.includes(id)));
  }, { timeout: 10_000, message: 'offline messages' }).catch(() => undefined);
  const late = missing.filter((id) => peers.some((p) => p.received.includes(id)));
  t.comment(`not delivered live during the roll but from offline storage afterwards: ${late.join(', ') || 'none'}`);
  for (const line of trace.explain(late)) t.comment(line);
}

/**
 * The accounting, binding (issue 14 item 5): every message accepted was delivered (live, or kept offline and
 * delivered at the initial presence), or came back to its sender as an error; none twice; every client resumed and
 * none logged in afresh. `minSent`: the traffic must have flowed throughout. `databaseUrl`: the cluster's PostgreSQL
 * (the wait for the messages looks there for those kept offline).
 */
export async function assertNoneLost(t: Test, peers: readonly RollPeer[], trace: RollTrace, minSent: number, databaseUrl?: string): Promise<void> {
  const sent = peers.flatMap((p) => p.sent);
  const before = peers.reduce((n, p) => n + p.received.length, 0);
  await collect(t, peers, trace, sent, databaseUrl);
  const bounced = peers.flatMap((p) => p.bounced);
  t.comment(`bounced to their senders: ${bounced.join(', ') || 'none'}`);
  for (const line of trace.explain(bounced)) t.comment(line);
  const got = peers.flatMap((p) => p.received);
  const counts = new Map<string, number>();
  for (const id of got) counts.set(id, (counts.get(id) ?? 0) + 1);
  // Lost: neither delivered (live or from offline storage) nor bounced.
  const lost = sent.filter((id) => !counts.has(id) && !bounced.includes(id));
  for (const line of explainCopies(peers, trace, lost)) t.comment(`LOST ${line}`);
  const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  for (const line of explainCopies(peers, trace, twice)) t.comment(`TWICE ${line}`);
  t.ok(sent.length > minSent, `traffic flowed throughout (${sent.length} messages sent, ${before} received before the wait)`);
  t.same(lost, [], `0 lost of ${sent.length}`);
  t.same(twice, [], '0 delivered twice');
  const incidents = trace.incidents();
  if (lost.length > 0 || twice.length > 0 || peers.some((p) => p.online !== 1)) {
    for (const line of incidents) t.comment(`incident: ${line}`);
  }
  // Said first when it happened: a fenced node explains the duplicates, losses and fresh logins below.
  t.same(incidents.filter((l) => l.includes('"event":"cluster-lease-lost"')), [],
    `no node lost its lease (stalled over ${ROLL_NODE_TTL_MS} ms: it would end its sessions for good, not leave as planned)`);
  const sentSet = new Set(sent);
  t.same(got.filter((id) => !sentSet.has(id)), [], 'nothing that was not sent');
  t.ok(peers.every((p) => p.resumed >= 1), `every client resumed at least once (${peers.map((p) => `${p.name}:${p.resumed}`).join(',')})`);
  t.ok(peers.every((p) => p.online === 1), `and none logged in afresh (${peers.filter((p) => p.online !== 1).map((p) => `${p.name}:${p.online}`).join(',') || 'all once'})`);
}

/** For each id: the trace with the server's lines, every copy received (roll-peers.ts arrivals), the clients' notes. */
function explainCopies(peers: readonly RollPeer[], trace: RollTrace, twice: readonly string[]): string[] {
  const explained = trace.explain(twice);
  return twice.map((id, i) => {
    const copies = peers.flatMap((p) => p.received.flatMap((r, j) => (r === id ? [`  copy to ${p.name}: ${p.arrivals[j] ?? '?'}`] : [])));
    const wire = peers.flatMap((p) => p.notes?.(id) ?? []).filter((w, k, all) => all.indexOf(w) === k).map((w) => `  ${w}`);
    return [explained[i]!, ...copies, ...wire].join('\n');
  });
}

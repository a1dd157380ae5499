/**
 * BOSH without sticky sessions (issue 14 item 4). Behind a round-robin
 * balancer a BOSH request for a sid may land on any node; the node that
 * does not hold the session forwards the request, as it came, to the one
 * that does, over the owner's internal HTTP address, and relays the answer.
 *
 * Why forwarding and not moving the session: a BOSH client keeps one or two
 * requests open at all times and a balancer alternates them between nodes,
 * so consecutive requests of one session land on different nodes all the
 * time. Moving the session to wherever a request lands would hand it over
 * (queue, rid window, held requests, the XMPP session and its directory
 * entry) on nearly every request, and two requests in flight on two nodes
 * would pull it back and forth: it thrashes. Forwarding costs one lookup
 * and one internal HTTP hop per request and never changes the owner, so the
 * rid window, the held requests (XEP-0124 §8) and the session's order stay
 * where they are. A session moves only by XEP-0198 resumption (the SM
 * registry), when its node is gone.
 *
 * Redis keys (every one under `node.prefix`):
 * - `bosh:{sid}` → the owning node id, with a TTL renewed every third of it
 *   while the session lives (a crashed node's entries run out by themselves);
 * - `node-url:{node}` → that node's internal base URL (CLUSTER_ADVERTISE_URL);
 * - `bosh-hop-secret` → a random token, made by the first node, that proves a
 *   forwarded request comes from a node of this cluster (HOP_HEADER). A node
 *   refuses the header without it, so a client can neither skip the owner's
 *   checks nor make a request hop twice, nor choose its own address. The
 *   request names the node it is meant for (HOP_NODE_HEADER): a URL that
 *   reaches another node (127.0.0.1 advertised on several machines) gets 421
 *   there, not item-not-found for a session that lives, and is logged.
 *
 * A sid that no live node holds (unknown, ended, or its node's lease gone)
 * gets item-not-found (XEP-0124 §17.2) from the node it reached, without any
 * forwarding: guessing sids reaches no other node, and a dead owner's
 * sessions look exactly like sessions that never existed (their BOSH state
 * died with the node; the client resumes its XMPP session by XEP-0198 in a
 * new BOSH session). A live owner that cannot be reached gives
 * remote-connection-failed. A request sent to the owner whose answer is lost
 * on the way (a connection cut, no answer in time) may have been processed
 * there: the client's connection is closed unanswered, as a network failure
 * would, and the client sends the rid again (XEP-0124 §14.3), which the
 * owner answers from its buffer, or with what is queued when its answer never
 * went out (BoshConn.answerUnsent); a terminal condition would end, for the
 * client, a session that lives on.
 */
import http from 'node:http';
import https from 'node:https';
import { PassThrough, pipeline } from 'node:stream';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/index.js';
import { CLOSE_CONNECTION_TYPE, HOP_HEADER, HOP_NODE_HEADER, MISROUTED_STATUS, type BoshForwarder, type BoshOwner, type ClientInfo, type HttpReply } from '../transports/bosh/types.js';
import type { ClusterNode } from './node.js';
import { logTag } from '../util/log-tag.js';

export interface BoshForwardOptions {
  readonly log: { warn(obj: object, msg: string): void };
  /** Longest a forwarded request may stay open, its answer relayed: the longest 'wait' (BOSH_MAX_WAIT) plus a margin, in ms. */
  readonly timeoutMs: number;
  /** Life of a `bosh:{sid}` entry in ms, renewed every third of it while the session lives here (default 5 min). */
  readonly sidTtlMs?: number;
}

export interface ClusterBoshForwarder extends BoshForwarder {
  /**
   * Publishes this node's internal base URL and reads the cluster's hop
   * secret. Until then nothing is accepted from peers (fromPeer is false).
   */
  advertise(baseUrl: string): Promise<void>;
  /** Stops renewing, forgets this node's URL and closes the internal connections. */
  stop(): Promise<void>;
  /** Counts since start, for the metrics (cluster/metrics.ts). */
  stats(): BoshForwardStats;
}

export interface BoshForwardStats {
  /** Requests relayed to their owner and answered. */
  readonly forwarded: number;
  /** Requests for a sid no live node holds (item-not-found, no hop). */
  readonly notFound: number;
  /** Requests whose live owner could not be reached (remote-connection-failed), or whose answer was lost on the way (connection closed). */
  readonly unreachable: number;
  /** Requests that carried the hop header without the cluster's proof. */
  readonly refused: number;
}

// KEYS[1] bosh:{sid}; ARGV[1] the prefix. The owner, if its lease is current, and its URL; nil otherwise.
const OWNER = `local owner = redis.call('GET', KEYS[1])
if not owner then return nil end
if redis.call('EXISTS', ARGV[1] .. 'node:' .. owner) == 0 then return nil end
return {owner, redis.call('GET', ARGV[1] .. 'node-url:' .. owner) or ''}`;

/**
 * How long a request waits for the URL of a live owner that has none yet. A node serves as soon
 * as it listens, and its first publish (advertise, run once listening) is then still on its way:
 * a session it creates in that moment is in Redis before its URL. A request for it that reaches
 * another node then waits for the URL (asked again every OWNER_URL_POLL_MS), instead of ending a
 * session that lives with item-not-found. Bounded: an owner that never advertises (its publish
 * failing) is reported (bosh-owner-without-url) and the request gets item-not-found.
 */
export const OWNER_URL_WAIT_MS = 2000;
export const OWNER_URL_POLL_MS = 50;

/** Entries renewed per Redis round trip: bounded work per event-loop turn. */
const RENEW_BATCH = 500;

/**
 * Longest wait for the connection to an owner. Between nodes a connection is
 * made by the kernels in a round trip, whatever the owner's event loop is
 * doing: one not made in this time leads to a machine that is gone or
 * unreachable (its packets dropped, no refusal), which would otherwise hold
 * the client's request for the whole relay bound (BOSH_MAX_WAIT + 15 s).
 */
export const CONNECT_TIMEOUT_MS = 5000;

/**
 * How often the owners of requests being relayed are checked for their lease.
 * An owner whose machine vanished answers nothing and cuts nothing: without
 * the check a request held there (a long poll, up to 'wait') would wait for
 * the relay bound after the owner was declared dead (CLUSTER_NODE_TTL).
 */
export const OWNER_CHECK_MS = 1000;

/** CLUSTER_ADVERTISE_URL, or http://HOST:PORT (127.0.0.1 for a wildcard HOST) with the port the server listens on. */
export function advertisedUrl(config: Pick<Config, 'clusterAdvertiseUrl' | 'host'>, port: number): string {
  if (config.clusterAdvertiseUrl !== '') return config.clusterAdvertiseUrl.replace(/\/$/, '');
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * The bound of forwarded requests from the BOSH settings: held up to BOSH_MAX_WAIT. Their answers have
 * no bound of size: they are relayed as read, never held whole here, and one response always carries
 * one stanza, which may be far larger than MAX_STANZA_SIZE as written (a PEP items result, a client's
 * '"' in an attribute written as &quot;): cut, it ended for its client a session that lives on.
 */
export function forwardLimits(config: Pick<Config, 'boshMaxWait'>): Pick<BoshForwardOptions, 'timeoutMs'> {
  return { timeoutMs: (config.boshMaxWait + 15) * 1000 };
}

/** What a node keeps in Redis for forwarding, written again on every renewal (a Redis that lost it gets it back). */
interface Advertised {
  url: string | undefined;
  secret: Buffer | undefined;
}

/**
 * Writes the node's URL and agrees on the hop secret: SET NX offers ours
 * (random at first, afterwards the one we hold, so a Redis that lost the key
 * gets the same one back from whichever node renews first), then every node
 * takes what Redis has.
 */
async function publish(node: ClusterNode, state: Advertised): Promise<void> {
  if (state.url === undefined) return;
  const key = `${node.prefix}bosh-hop-secret`;
  await node.redis.set(key, state.secret?.toString() ?? randomBytes(32).toString('hex'), { NX: true });
  const shared = await node.redis.get(key);
  if (shared === null) throw new Error('the cluster BOSH hop secret vanished from Redis');
  state.secret = Buffer.from(shared);
  await node.redis.set(`${node.prefix}node-url:${node.id}`, state.url);
}

/**
 * Renews the entries of the sessions held here (SET, not PEXPIRE: a lost
 * entry comes back), RENEW_BATCH per round trip. A session that ended
 * meanwhile is skipped: its DEL went first, and a SET after it would bring
 * the entry back.
 */
async function renew(node: ClusterNode, local: ReadonlySet<string>, ttl: number, state: Advertised): Promise<void> {
  await publish(node, state);
  const sids = [...local];
  for (let i = 0; i < sids.length; i += RENEW_BATCH) {
    const live = sids.slice(i, i + RENEW_BATCH).filter((sid) => local.has(sid));
    await Promise.all(live.map((sid) => node.redis.set(`${node.prefix}bosh:${sid}`, node.id, { expiration: { type: 'PX', value: ttl } })));
  }
}

export function createBoshForwarder(node: ClusterNode, opts: BoshForwardOptions): ClusterBoshForwarder {
  const { redis, prefix } = node;
  const ttl = opts.sidTtlMs ?? 300_000;
  const sidKey = (sid: string): string => `${prefix}bosh:${sid}`;
  const local = new Set<string>();
  const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
  const state: Advertised = { url: undefined, secret: undefined };
  let renewing: Promise<void> | undefined;
  /** stop() has begun: a request waiting for an owner's URL waits no longer (Redis is about to close). */
  let stopping = false;
  const counts = { forwarded: 0, notFound: 0, unreachable: 0, refused: 0 };
  // The requests being relayed, by owner, each with its cut: an owner whose lease is gone gets no answer
  // awaited from it (OWNER_CHECK_MS). One EXISTS per owner and check, and none while nothing is relayed.
  const relaying = new Map<string, Set<() => void>>();
  let checking = false;
  // Redis unreachable: said once, not every second until it is back.
  let checkFailed = false;
  const ownerCheck = setInterval(() => {
    if (checking || relaying.size === 0) return;
    checking = true;
    void Promise.all([...relaying.keys()].map(async (owner) => {
      if (await node.alive(owner)) return;
      for (const cut of relaying.get(owner) ?? []) cut();
    })).then(() => { checkFailed = false; }, (err: unknown) => {
      if (!checkFailed) opts.log.warn({ err }, 'checking the owners of forwarded BOSH requests failed');
      checkFailed = true;
    }).finally(() => { checking = false; });
  }, OWNER_CHECK_MS);
  ownerCheck.unref();
  const track = (owner: string, cut: () => void): (() => void) => {
    const cuts = relaying.get(owner) ?? new Set<() => void>();
    relaying.set(owner, cuts.add(cut));
    return () => {
      cuts.delete(cut);
      if (cuts.size === 0 && relaying.get(owner) === cuts) relaying.delete(owner);
    };
  };
  const timer = setInterval(() => {
    renewing ??= renew(node, local, ttl, state)
      .catch((err: unknown) => opts.log.warn({ err, node: node.id }, 'renewing the BOSH sessions in Redis failed'))
      .finally(() => { renewing = undefined; });
  }, Math.max(100, Math.floor(ttl / 3)));
  timer.unref();

  /**
   * The hop secret. A node serves as soon as it listens, and its first publish (advertise, run once
   * listening) is then still on its way: a request it forwards meanwhile takes the secret from Redis,
   * where the owner put it before advertising its URL. Else it was refused as unreached, and the
   * client's session, alive on its owner, ended with remote-connection-failed.
   */
  const hopSecret = async (): Promise<Buffer | undefined> => {
    if (state.secret !== undefined) return state.secret;
    const shared = await redis.get(`${prefix}bosh-hop-secret`).catch(() => null);
    if (shared !== null && state.secret === undefined) state.secret = Buffer.from(shared);
    return state.secret;
  };

  return {
    node: node.id,
    async register(sid) {
      local.add(sid);
      // An unreachable Redis fails it within node-redis's command timeout (5 s by default): the creation response waits no longer.
      await redis.set(sidKey(sid), node.id, { expiration: { type: 'PX', value: ttl } });
    },
    unregister(sid) {
      local.delete(sid);
      redis.del(sidKey(sid)).catch((err: unknown) => opts.log.warn({ err, sidTag: logTag(sid) }, 'removing a BOSH session from Redis failed'));
    },
    async ownerOf(sid) {
      for (const until = Date.now() + OWNER_URL_WAIT_MS; ;) {
        const found = (await redis.eval(OWNER, { keys: [sidKey(sid)], arguments: [prefix] })) as [string, string] | null;
        // Our own id: an entry that outlived its session here (the transport looked first).
        if (found === null || found[0] === node.id) break;
        if (found[1] !== '') return { node: found[0], url: found[1] };
        // A live owner without a URL yet: just started (OWNER_URL_WAIT_MS).
        if (stopping) break;
        if (Date.now() >= until) {
          opts.log.warn({ event: 'bosh-owner-without-url', node: found[0] }, 'a live node holds a BOSH session but advertises no URL');
          break;
        }
        await sleep(OWNER_URL_POLL_MS);
      }
      counts.notFound++;
      return undefined;
    },
    async forward(owner, path, raw, client, reply) {
      const agent = owner.url.startsWith('https:') ? agents.https : agents.http;
      const secret = await hopSecret();
      const outcome = secret === undefined ? 'unreached'
        : await relay({ owner, target: owner.url + path, raw, client, reply, secret: secret.toString(), agent, timeoutMs: opts.timeoutMs, log: opts.log, track });
      counts[outcome === 'relayed' ? 'forwarded' : 'unreachable']++;
      // Sent and unanswered: the owner may have processed it, so the client's connection is dropped and it sends the rid again (§14.3).
      if (outcome === 'lost') reply.abort();
      return outcome !== 'unreached';
    },
    fromPeer(token) {
      const given = Buffer.from(token);
      const peer = state.secret !== undefined && given.length === state.secret.length && timingSafeEqual(given, state.secret);
      if (!peer) counts.refused++;
      return peer;
    },
    stats: () => ({ ...counts }),
    async advertise(baseUrl) {
      state.url = baseUrl.replace(/\/$/, '');
      await publish(node, state);
    },
    async stop() {
      stopping = true;
      clearInterval(timer);
      clearInterval(ownerCheck);
      await renewing;
      agents.http.destroy();
      agents.https.destroy();
      state.url = undefined;
      await redis.del(`${prefix}node-url:${node.id}`);
    },
  };
}

interface Relay {
  readonly owner: BoshOwner;
  /** The owner's BOSH endpoint. */
  readonly target: string;
  readonly raw: Uint8Array;
  readonly client: ClientInfo;
  readonly reply: HttpReply;
  readonly secret: string;
  readonly agent: http.Agent;
  readonly timeoutMs: number;
  readonly log: BoshForwardOptions['log'];
  /** Registers the request's cut, made if its owner's lease goes; returns its removal. */
  readonly track: (owner: string, cut: () => void) => () => void;
}

/**
 * The headers of a forwarded request: the client's address and scheme are
 * what this node established (by its own TRUSTED_PROXIES rules), replacing
 * any X-Forwarded-* the client sent; the owner believes them because
 * HOP_HEADER proves this node sent them. Nothing else of the client's goes.
 */
function hopHeaders(r: Relay): http.OutgoingHttpHeaders {
  return {
    'content-type': 'text/xml; charset=utf-8', 'content-length': r.raw.byteLength,
    'x-forwarded-for': r.client.ip, 'x-forwarded-proto': r.client.secure ? 'https' : 'http', [HOP_HEADER]: r.secret, [HOP_NODE_HEADER]: r.owner.node,
  };
}

/**
 * What became of a forwarded request: its answer was relayed (or the client
 * went away first); the owner was not reached (nothing sent to the client);
 * or it was sent and its answer lost on the way, whole or in part (a
 * connection cut, no answer in time): the owner may have processed it.
 */
type RelayOutcome = 'relayed' | 'unreached' | 'lost';

/**
 * One forwarded request: the body goes as it came, the answer comes back
 * with its status and content-type, its body passed on as it is read (back
 * pressure included: nothing of it is held here). It stays open as long as
 * the owner holds it (up to 'wait', XEP-0124 §8), bounded by `timeoutMs`. A
 * client that goes away closes the forwarded request too, so the owner sees
 * what it would have seen directly. An answer cut on the way ('lost') drops
 * the client's connection, part of it sent or not: the client sends the rid
 * again (§14.3). So does an owner declared dead meanwhile, sent or not: the
 * rid again gets item-not-found at once, and the client resumes its XMPP
 * session elsewhere (XEP-0198). A connection to the owner not made within
 * CONNECT_TIMEOUT_MS is an owner not reached (remote-connection-failed).
 */
function relay(r: Relay): Promise<RelayOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    /** The request was handed to the connection to the owner: from then on the owner may have processed it. */
    let sent = false;
    const settle = (outcome: RelayOutcome): void => {
      clearTimeout(timer);
      clearTimeout(connecting);
      untrack();
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
    const fail = (err: Error, outcome: RelayOutcome = sent ? 'lost' : 'unreached'): void => {
      req.destroy();
      if (!settled) r.log.warn({ err: { message: err.message }, target: r.target }, 'a forwarded BOSH request failed');
      settle(outcome);
    };
    const req = (r.target.startsWith('https:') ? https : http).request(r.target, { method: 'POST', agent: r.agent, headers: hopHeaders(r) }, (res) => {
      if (settled) return void res.destroy();
      // Another node answered, unprocessed: the owner's URL leads elsewhere, which only its operator can mend.
      if (res.statusCode === MISROUTED_STATUS) {
        r.log.warn({ event: 'bosh-forward-misrouted', owner: r.owner.node, url: r.owner.url },
          "a BOSH request forwarded to a node's advertised URL reached another node: set that node's CLUSTER_ADVERTISE_URL to an address of its own the other nodes reach");
        res.resume();
        return settle('unreached');
      }
      // The owner wants the client's connection closed unanswered (XEP-0124 §19.1), not a response relayed.
      if (res.headers['content-type'] === CLOSE_CONNECTION_TYPE) {
        res.on('error', fail).on('end', () => {
          if (settled) return;
          r.reply.abort();
          settle('relayed');
        }).resume();
        return;
      }
      const body = new PassThrough();
      r.reply.stream(res.statusCode ?? 502, res.headers['content-type'] ?? 'text/xml; charset=utf-8', body);
      // A cut after part of the body went out is 'lost' as well: the client's connection is dropped, never ended as if whole.
      // Told first: the pipeline's own handling drops the client's connection, and that close would read as the client gone.
      res.once('error', (err) => fail(err));
      pipeline(res, body, (err) => {
        if (err) fail(err);
        else settle('relayed');
      });
    });
    const timer = setTimeout(() => fail(new Error(`no answer within ${r.timeoutMs} ms`)), r.timeoutMs);
    let connecting: NodeJS.Timeout | undefined;
    req.on('socket', (socket) => {
      // A kept-alive connection is there already; a new one has CONNECT_TIMEOUT_MS to be made.
      if (!socket.connecting) return;
      connecting = setTimeout(() => fail(new Error(`no connection within ${CONNECT_TIMEOUT_MS} ms`), 'unreached'), CONNECT_TIMEOUT_MS);
      socket.once('connect', () => clearTimeout(connecting));
    });
    const untrack = r.track(r.owner.node, () => fail(new Error(`the owner ${r.owner.node} is gone (its lease ran out)`), 'lost'));
    req.on('error', (err) => fail(err));
    // Gone: nobody to answer, and the owner must see the request close as it would have directly.
    r.reply.onGone(() => { req.destroy(); settle('relayed'); });
    // 'finish': handed to a connected socket (a connection refused never gets there).
    req.on('finish', () => { sent = true; });
    req.end(r.raw);
  });
}

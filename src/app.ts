import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import websocket from '@fastify/websocket';
import fastifyStatic from '@fastify/static';
import { fileURLToPath } from 'node:url';
import type { Config } from './config/index.js';
import type { Storage } from './storage/index.js';
import type { Core } from './xmpp/core.js';
import type { SessionsView } from './xmpp/session-manager.js';
import { createXmppServer, type Feature } from './server.js';
import { registerHttpRoutes } from './http/routes.js';
import { createMonitoring } from './http/monitoring.js';
import type { BuildInfo } from './metrics/build-info.js';
import { Admission } from './transports/admission.js';
import { registerWebSocket, type WebSocketStats } from './transports/websocket.js';
import { registerBosh, type BoshForwarder, type BoshStats } from './transports/bosh/index.js';
import type { TransportHost } from './xmpp/transport-host.js';
import type { Log } from './xmpp/log.js';
import type { ShutdownProgress } from './shutdown.js';
import type { Cluster } from './cluster/index.js';
import { registerBoshHeld } from './metrics/bosh.js';
import type { ClusterBoshForwarder } from './cluster/bosh-forward.js';
import { othersAlive, rollOut } from './roll.js';
import { startAdmin, type AdminSocket } from './admin/index.js';
import { workerAdmissionShare } from './workers-admission.js';

export const WEBSOCKET_PATH = '/xmpp-websocket';
export const BOSH_PATH = '/http-bind';
const PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url));

export interface App {
  readonly http: FastifyInstance;
  readonly core: Core;
  /** The sessions, read-only (tests and metrics look here, not into the core's context). */
  readonly sessions: SessionsView;
  /** The BOSH transport's open sessions, held requests and timers (for leak checks). */
  readonly bosh: { stats(): BoshStats; peakQueuedBytes(): number };
  /** The WebSocket transport's connections and flow-control figures. */
  readonly websocket: { stats(): WebSocketStats };
  /** CLUSTER=redis: this node's membership, delivery and modules; undefined for CLUSTER=none. */
  readonly cluster: Cluster | undefined;
  /** METRICS_PORT: the listener of /metrics alone, not yet listening (main.ts listens on METRICS_HOST); undefined when PORT serves it. */
  readonly metricsHttp: FastifyInstance | undefined;
  /** Every metric /metrics serves (the README's generated table reads it). */
  readonly registry: Registry;
  /** Stops accepting, closes every session with system-shutdown, leaves the cluster, then the listener and storage. */
  shutdown(): Promise<void>;
  /**
   * CLUSTER=redis, SIGTERM (a rolling restart, roll.ts): not ready, takes
   * nothing new, drops every transport so resumable sessions resume on
   * other nodes (the others are closed with system-shutdown), leaves the
   * cluster, then closes the listener and storage. Without a cluster it is
   * shutdown().
   */
  leave(): Promise<void>;
  /** How far the shutdown got: offline writes done and still unfinished (main.ts logs it, also at the timeout). */
  shutdownProgress(): ShutdownProgress;
  /** The admin CLI's Unix socket (AppOptions.adminSocket); undefined when off. Closed first by shutdown and leave. */
  readonly admin: AdminSocket | undefined;
}

/**
 * The composition root: storage, metrics, the XMPP core with its features
 * (in the order they take part in features and hooks) and the transports.
 * Returns the app without listening; main.ts listens, tests use port 0.
 */
export interface AppOptions {
  logger?: boolean | object;
  /** Key for unknown users' fake SCRAM salts; main.ts keeps it in DATA_DIR. Default: random for this process. */
  unknownUserSecret?: Buffer;
  /** More features or components, registered after the built-in ones (createXmppServer). */
  features?: readonly Feature[];
  /** CLUSTER=redis: a cluster already started (startCluster); by default buildApp starts one when the configuration says so. */
  cluster?: Cluster;
  /** In a cluster: BOSH requests for other nodes' sessions go to their owner (src/cluster/bosh-forward.ts). */
  boshForwarder?: BoshForwarder;
  /** For xmpp_build_info; default: dist/build-info.json (loadBuildInfo). */
  buildInfo?: BuildInfo;
  /** Path of the admin Unix socket to listen on (main.ts: ADMIN_SOCKET in DATA_DIR); default none. */
  adminSocket?: string;
  /** XmppServerOptions.offlineDrainPollMs (tests). */
  offlineDrainPollMs?: number;
}

export async function buildApp(config: Config, storage: Storage, opts: AppOptions = {}): Promise<App> {
  const http = Fastify({
    logger: opts.logger ?? { level: config.logLevel },
    // Believe X-Forwarded-* only from the configured proxies (Prosody's trusted_proxies).
    trustProxy: config.trustedProxies.length > 0 ? [...config.trustedProxies] : false,
    bodyLimit: config.maxStanzaSize,
    // A request (headers and body) must arrive within HTTP_REQUEST_TIMEOUT, checked every second:
    // Fastify's default of none let a POST sending a byte every 5 s hold its socket for ever
    // (found in a hostile review). Answering a held BOSH request is not part of it.
    requestTimeout: config.httpRequestTimeout * 1000,
    // Given to node:http as well: Fastify sets it on the server after creating it, but node:http checks headersTimeout
    // against its own default requestTimeout (300 s) at creation, so any value above 300 stopped the start.
    http: { requestTimeout: config.httpRequestTimeout * 1000, headersTimeout: config.httpRequestTimeout * 1000, connectionsCheckingInterval: 1000 },
    // One log line per session start and end, not one per HTTP request (BOSH would flood).
    logController: new LogController({ disableRequestLogging: true }),
  });
  const log = http.log as unknown as Log;
  let ready = false;
  // CLUSTER=none (the default) adds nothing here: no connection, no feature, no hook, and the cluster's modules
  // (its Redis client among them: half the modules a start would load) are not even loaded.
  const cluster = opts.cluster ?? (config.cluster === 'redis' ? await (await import('./cluster/index.js')).startCluster(config, log) : undefined);
  const features = cluster ? [...cluster.features, ...(opts.features ?? [])] : opts.features ?? [];
  const xmpp = createXmppServer(config, storage, features, { log, unknownUserSecret: opts.unknownUserSecret, smRegistry: cluster?.smRegistry, offlineDrainPollMs: opts.offlineDrainPollMs });
  const { core } = xmpp;
  // Before the cluster starts reading: a socket that cannot be made stops the start, and a
  // cluster started here leaves at once rather than be counted dead after its lease.
  const admin = opts.adminSocket === undefined ? undefined
    : await startAdmin(opts.adminSocket, { xmpp, config, storage, node: cluster?.node.id ?? null }, log).catch(async (err: unknown) => {
      if (!opts.cluster) await cluster?.stop().catch(() => undefined);
      throw err;
    });
  if (cluster) {
    (await import('./cluster/metrics.js')).registerClusterMetrics(xmpp.registry, cluster);
    await cluster.start();
  }

  const limits = { maxBytes: config.maxStanzaSize, maxDepth: config.maxXmlDepth, maxAttrs: config.maxXmlAttrs, maxAttrValueLength: config.maxStanzaSize };
  await http.register(websocket, {
    options: {
      // Frames a little over the stanza limit still reach the parser, which
      // answers with a policy-violation stream error; only far larger ones
      // are cut by ws itself (close code 1009) without reading them; before
      // authentication at twice PRE_AUTH_MAX_STANZA_SIZE (websocket.ts).
      maxPayload: config.maxStanzaSize * 2,
      // We check UTF-8 ourselves so the client gets a not-well-formed stream error, not a bare 1007.
      skipUTF8Validation: true,
      perMessageDeflate: false,
      handleProtocols: (protocols: Set<string>) => (protocols.has('xmpp') ? 'xmpp' : false),
    },
  });
  const shaping = {
    bytesPerSecond: config.maxInboundBytesPerSecond, burstBytes: config.maxInboundBurstBytes, stanzasPerSecond: config.maxInboundStanzasPerSecond,
  };
  const admission = new Admission({
    // BOSH_CORS_ORIGINS is the old name, read for one more release when ALLOWED_ORIGINS is unset.
    allowedOrigins: config.allowedOrigins.length > 0 ? config.allowedOrigins : config.boshCorsOrigins,
    publicOrigin: config.publicUrl === '' ? undefined : new URL(config.publicUrl).origin,
    domains: config.domains,
    maxPerIp: config.maxConnectionsPerIp, maxUnauthenticatedPerIp: config.maxUnauthenticatedPerIp,
    newPerSecond: config.newConnectionsPerIp, newBurst: config.newConnectionsBurstPerIp, now: Date.now,
    // WORKERS=N: the limit per address is the machine's, not each worker's.
    share: workerAdmissionShare(),
  });
  if (config.boshCorsOrigins.length > 0) log.warn({ event: 'deprecated', variable: 'BOSH_CORS_ORIGINS' }, 'BOSH_CORS_ORIGINS is deprecated: use ALLOWED_ORIGINS (it covers WebSocket too)');
  // Transports see only this (issue 12): no core context, no storage.
  const transportHost: TransportHost = { connect: (conn) => core.connect(conn), metrics: core.ctx.metrics, boshMetrics: xmpp.metrics.bosh };
  const websocketTransport = registerWebSocket(http, transportHost, {
    path: WEBSOCKET_PATH, limits, pingInterval: config.wsPingInterval, closeTimeout: config.wsCloseTimeout,
    maxBufferedBytes: config.wsMaxBufferedBytes, slowConsumerGrace: config.wsSlowConsumerGrace, shaping, admission,
    preAuthLimits: { ...limits, maxBytes: Math.min(config.preAuthMaxStanzaSize, config.maxStanzaSize) },
  }, log);
  const bosh = await registerBosh(http, transportHost, {
    path: BOSH_PATH, limits, maxWait: config.boshMaxWait, maxHold: config.boshMaxHold, inactivity: config.boshInactivity,
    maxPause: config.boshMaxPause, polling: config.boshPolling, maxSessionsPerIp: config.boshMaxSessionsPerIp, admission, preAuthMaxBytes: config.preAuthMaxStanzaSize,
    forwarder: opts.boshForwarder ?? cluster?.boshForwarder,
    flow: {
      maxResponseBytes: config.boshMaxResponseBytes, maxQueuedBytes: config.boshMaxQueuedBytes, slowConsumerGrace: config.wsSlowConsumerGrace,
      // Two full bodies: one being paced and the next; a client that waits for its answers stays far below.
      maxInputBytes: 2 * config.maxStanzaSize, shaping,
    },
  }, log);
  registerBoshHeld(xmpp.registry, () => bosh.stats().held);
  const monitoring = createMonitoring({
    config, registry: xmpp.registry, ping: () => storage.ping(), log, buildInfo: opts.buildInfo,
    // Not ready while Redis is unreachable: a load balancer sends new sessions to another node. A health
    // check like the store's, so xmpp_ready, its flips and the not-ready log line say it too.
    clusterReady: cluster ? () => cluster.ready() : undefined,
  });
  registerHttpRoutes(http, xmpp.registry, {
    health: () => monitoring.health(), metricsAllowed: monitoring.metricsAllowed,
    websocketPath: WEBSOCKET_PATH, boshPath: BOSH_PATH,
    ready: () => ready, publicUrl: config.publicUrl, domains: config.domains,
  });
  await http.register(fastifyStatic, { root: PUBLIC_DIR, index: ['index.html'] });
  http.addHook('onReady', async () => { ready = true; });
  if (cluster && !opts.boshForwarder) advertiseOnListen(http, config, cluster.boshForwarder, log);

  // RFC 6120 §4.4 / RFC 7395 §3.6: a WebSocket stream closed for system-shutdown still processes what
  // its client sends until the client's <close/> (websocket.ts onClosingFrame). Those messages are
  // routed before the drain, not into a closing store: the connections are waited for, up to
  // WS_CLOSE_TIMEOUT and at most half of SHUTDOWN_TIMEOUT (the drain has the rest), and those left
  // are cut, so nothing is read after. The shutdown and the rolling restart (roll.ts) both wait so,
  // the bound counted from `from` (the rolling restart's from when it dropped the transports).
  const closeWaitMs = Math.min(config.wsCloseTimeout, config.shutdownTimeout / 2) * 1000;
  async function closedStreams(from: number): Promise<void> {
    const cut = await websocketTransport.ended(Math.max(0, from + closeWaitMs - Date.now()));
    if (cut > 0) log.info({ event: 'websocket-close-cut', connections: cut }, 'WebSocket connections cut: their <close/> did not come in time');
  }

  // One end, whichever is asked for first (a test's teardown may ask again after a leave).
  let ending: Promise<void> | undefined;
  const shutdown = (): Promise<void> => (ending ??= endSessions());
  async function endSessions(): Promise<void> {
    ready = false;
    // A dead node's sessions are left to the nodes that stay (they would only be handed on again from here).
    cluster?.leaving();
    // No new session from here on (a client reconnecting after system-shutdown would otherwise get
    // one during the drain, and what it sent be acknowledged and never stored).
    websocketTransport.stopAccepting();
    bosh.stopAccepting();
    await admin?.close();
    xmpp.closeSessions();
    // BOSH responses nobody is waiting for will not be fetched now: their payloads go back to
    // their sessions, to be stored offline with the rest before the flush.
    bosh.shutdown();
    // Leave before the drain: nothing more is addressed to us, and what is left in our inbox
    // is routed (offline) with the rest; the modules keep their Redis until close.
    await cluster?.leave();
    await closedStreams(Date.now());
    await xmpp.drain();
    await cluster?.close();
    await http.close();
    await monitoring.close();
    await storage.close();
  }

  return {
    http,
    core,
    sessions: xmpp.sessions,
    bosh,
    websocket: websocketTransport,
    cluster,
    metricsHttp: monitoring.metricsHttp,
    registry: xmpp.registry,
    shutdown,
    leave() {
      if (!cluster) return shutdown();
      return ending ??= (async () => {
        ready = false;
        // Not judging the others during the drain: a node that dies meanwhile is the staying nodes' to take over.
        cluster.leaving();
        await admin?.close();
        // The last node (or Redis unreachable): nobody could take the sessions over; they end here.
        if (!(await othersAlive(cluster))) return endSessions();
        await rollOut({ http, xmpp, transports: [websocketTransport, bosh], cluster, drainMs: config.clusterDrainTimeout * 1000,
          closing: closedStreams, log });
        await http.close();
        await monitoring.close();
        await storage.close();
      })();
    },
    shutdownProgress: () => xmpp.shutdownProgress(),
    admin,
  };
}

/**
 * Once listening (the port is known even for PORT=0), tells the other nodes
 * where to forward BOSH requests for our sessions. A failure is logged: the
 * forwarder's next renewal publishes it again.
 */
function advertiseOnListen(http: FastifyInstance, config: Config, forwarder: ClusterBoshForwarder, log: Log): void {
  http.addHook('onListen', async () => {
    const address = http.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const { advertisedUrl } = await import('./cluster/bosh-forward.js');
    await forwarder.advertise(advertisedUrl(config, port)).catch((err: unknown) => log.warn({ err }, 'advertising the BOSH forwarding URL failed'));
  });
}

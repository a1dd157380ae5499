import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import type { Config } from './config/index.js';
import type { Storage } from './storage/index.js';
import { createCore, type Core } from './xmpp/core.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import { timedStorage } from './metrics/storage.js';
import type { Registry } from 'prom-client';
import type { ModuleContext } from './xmpp/context.js';
import type { SessionsView } from './xmpp/session-manager.js';
import type { Log } from './xmpp/log.js';
import type { Session } from './xmpp/session.js';
import * as sasl from './xmpp/features/sasl.js';
import * as sasl2 from './xmpp/features/sasl2/index.js';
import { createFast } from './xmpp/features/sasl2/fast.js';
import * as bind from './xmpp/features/bind.js';
import * as iq from './xmpp/features/iq.js';
import * as ping from './xmpp/features/ping.js';
import * as disco from './xmpp/features/disco.js';
import * as message from './xmpp/features/message.js';
import * as presence from './xmpp/features/presence.js';
import * as accounts from './xmpp/features/accounts/index.js';
import * as roster from './xmpp/features/roster/index.js';
import * as blocking from './xmpp/features/blocking/index.js';
import { createVolatileAccountStores } from './storage/memory/index.js';
import * as remote from './xmpp/features/remote.js';
import * as echo from './xmpp/components/echo.js';
import * as sm from './xmpp/features/stream-management/index.js';
import * as offline from './xmpp/features/offline/index.js';
import * as carbons from './xmpp/features/carbons.js';
import * as vcard from './xmpp/features/vcard.js';
import * as mam from './xmpp/features/mam/index.js';
import * as csi from './xmpp/features/csi.js';
import * as caps from './xmpp/features/caps/index.js';
import * as pep from './xmpp/features/pep/index.js';
import * as accountChanges from './xmpp/features/account-changes.js';
import { createMemorySmRegistry, type SmRegistry } from './xmpp/features/stream-management/registry.js';
import type { SmStateStore } from './storage/ports/sm-state.js';
import { LoginThrottle } from './sasl/login-throttle.js';
import { createJwtVerifier, type JwtAlgorithm } from './sasl/jwt.js';
import { createTokenLogin, type TokenLogin } from './xmpp/features/sasl-token.js';
import { deriveStoredCredentials } from './storage/index.js';
import type { UserStore } from './storage/ports/accounts.js';
import { createShutdownLedger, type ShutdownProgress } from './shutdown.js';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** User agents per account that keep FAST tokens (XEP-0484): bounded storage per account. */
const FAST_MAX_AGENTS = 20;

/** A feature or component of one's own, registered after the built-in ones (a test's, say). */
export type Feature = (ctx: ModuleContext) => void;

export interface XmppServerOptions {
  /** pino-shaped; default: a pino logger at LOG_LEVEL. */
  readonly log?: Log;
  /** Key for unknown users' fake SCRAM salts; main.ts keeps it in DATA_DIR. Default: random for this process. */
  readonly unknownUserSecret?: Buffer;
  /** SM_BACKEND=redis: the cluster's registry (src/cluster/sm.ts), given the stale h store; default: in memory. */
  readonly smRegistry?: (stale: SmStateStore) => SmRegistry;
  /**
   * How often an offline delivery without XEP-0198 looks at the transport's backlog when no drain is
   * signalled; default one second. Tests lengthen it to show that a delivery does not wait for it.
   */
  readonly offlineDrainPollMs?: number;
}

/** The XMPP server without any transport or HTTP: what protocol tests drive through a fake Conn. */
export interface XmppServer {
  readonly core: Core;
  readonly sessions: SessionsView;
  readonly log: Log;
  /** prom-client registry of the server's metrics (app.ts serves it on /metrics). */
  readonly registry: Registry;
  /** The ports the transports and storage report to (app.ts hands `bosh` to the BOSH transport). */
  readonly metrics: Metrics;
  /** Closes every session with system-shutdown; what their transports give back afterwards is still stored (drain). */
  closeSessions(): void;
  /** A rolling restart (CLUSTER=redis): resumable sessions lose their transport and hibernate, the others close (Core.dropTransports). */
  dropTransports(): void;
  /** A rolling restart's end: the sessions still here get their end line, left to the cluster (Core.released). */
  released(): void;
  /** Runs what the closed sessions left (routes, offline writes) and stops the features' timers; storage stays open. */
  drain(): Promise<void>;
  /** How far the shutdown got: offline writes done and still unfinished (main.ts logs it, also at the timeout). */
  shutdownProgress(): ShutdownProgress;
  /** XEP-0198: stanzas sent to `session` and not yet acked; undefined without stream management (the admin port reads it). */
  unacked(session: Session): number | undefined;
}

/** Token login (JWT_*), when JWT_SECRET or JWT_JWKS_URL is set; the config schema checked the combination. */
function tokenLogin(ctx: ModuleContext, config: Config, users: Pick<UserStore, 'get' | 'create'>): TokenLogin | undefined {
  if (config.jwtSecret === '' && config.jwtJwksUrl === '') return undefined;
  const secret = config.jwtSecret !== '';
  const algorithms = (config.jwtAlgorithms.length > 0 ? config.jwtAlgorithms : secret ? ['HS256'] : ['RS256', 'ES256']) as JwtAlgorithm[];
  const verifier = createJwtVerifier({
    ...(secret ? { secret: config.jwtSecret } : { jwksUrl: config.jwtJwksUrl }),
    algorithms, jidClaim: config.jwtJidClaim, clockToleranceSeconds: config.jwtClockTolerance,
    ...(config.jwtIssuer !== '' ? { issuer: config.jwtIssuer } : {}),
    ...(config.jwtAudience !== '' ? { audience: config.jwtAudience } : {}),
    jwksCacheMaxAgeMs: config.jwtJwksCacheMaxAge * 1000, jwksCooldownMs: config.jwtJwksCooldown * 1000,
  });
  return createTokenLogin(ctx, { createUsers: config.jwtCreateUsers }, {
    verifier, users, unusableCredentials: (password) => deriveStoredCredentials(password, config.scramIterations),
  });
}

/**
 * The composition of the XMPP core and its features, in the order they
 * take part in stream features and hooks (decided here and only here).
 * Each feature gets the stores it names, through the shutdown ledger.
 * `features` are registered after the built-in ones.
 */
export function createXmppServer(config: Config, storage: Storage, features: readonly Feature[] = [], opts: XmppServerOptions = {}): XmppServer {
  const log = opts.log ?? (pino({ level: config.logLevel }) as unknown as Log);
  let coreRef: Core | undefined;
  const metrics = createMetrics(() => coreRef?.ctx.sessions);
  // Every storage port method timed (xmpp_storage_operation_seconds), wrapped once here.
  const ledger = createShutdownLedger(timedStorage(storage, metrics.storage));
  const core = createCore({ hosts: config.domains, log, metrics: metrics.core, authTimeout: config.authTimeout });
  coreRef = core;
  const { ctx } = core;
  ledger.watch(ctx);
  // Each feature gets the stores it names (its ports), through the shutdown ledger.
  const stores = ledger.storage;

  const throttle = new LoginThrottle({
    freePerIp: config.loginFailuresPerIp, freePerPair: config.loginFailuresPerAccount, baseDelayMs: 1000,
    maxDelayMs: config.loginBackoffMax * 1000, forgetAfterMs: 600_000, maxKeys: 100_000, now: Date.now,
  });
  const saslEngine = sasl.register(ctx, {
    allowInsecurePlain: config.allowInsecurePlain, maxFailures: config.saslMaxFailures, scramIterations: config.scramIterations,
    anonymousHosts: new Set(config.anonymousHosts), unknownUserSecret: opts.unknownUserSecret ?? randomBytes(32), throttle,
  }, { users: stores.users, tokens: tokenLogin(ctx, config, stores.users) });
  bind.register(ctx, { maxResourcesPerUser: config.maxResourcesPerUser });
  const streamManagement = sm.register(ctx, {
    buffer: config.smBuffer, buffer_max: config.smBufferMax, ack: config.smAck, ack_freq: config.smAckFreq,
    resume_timeout: config.smResumeTimeout, max_hibernated_per_user: config.smMaxHibernatedPerUser,
    ack_quiet_period: config.smAckQuietPeriod, pending_max_bytes: config.smPendingMaxBytes, ack_timeout: config.smAckTimeout,
    stale_h: { enabled: config.smStaleHEnabled, repeat_after: config.smStaleHRepeatAfter, geriatric: config.smStaleHGeriatric },
  }, (opts.smRegistry ?? createMemorySmRegistry)(stores.smState));
  iq.register(ctx);
  ping.register(ctx);
  // Accounts in memory first: roster, presence, blocking and account disco build on them.
  // The blocklist is loaded with each account (a part of it), and the relay asks blocking what is blocked.
  const volatile = createVolatileAccountStores();
  const blocklists = new blocking.Blocklists({ blocklists: stores.blocklists, anonymous: volatile.blocklists });
  const accountsService = accounts.register(ctx, {
    users: stores.users, rosters: stores.rosters, volatile, isBlocked: blocklists.isBlocked, parts: [blocklists],
  });
  roster.register(ctx, {
    maxItems: config.maxRosterItems, maxItemBytes: config.maxRosterItemBytes, maxBytes: config.maxRosterBytes,
  }, { accounts: accountsService });
  disco.register(ctx, {
    name: 'xmpp-web-gateway',
    isSubscribed: (account, contact) => accountsService.isSubscribed(account, contact),
    isAnonymous: (account) => accountsService.isAnonymous(account),
  });
  const messages = message.register(ctx);
  const offlineMessages = offline.register(ctx, {
    maxMessages: config.maxOfflineMessages, maxBytes: config.maxOfflineBytes, maxWaitingBytes: config.smPendingMaxBytes, drainPollMs: opts.offlineDrainPollMs,
  }, {
    offline: stores.offline, users: stores.users, acks: streamManagement, messages,
    blocks: (session, from) => accountsService.isBlocked(accountsService.accountOf(session), from),
  });
  // XEP-0313 archives before carbons copy: the <sent/> copies carry the sender's stanza id.
  const archive = config.mamEnabled ? mam.register(ctx, {
    maxPage: config.mamMaxPageSize, retentionDays: config.mamRetentionDays, maxMessagesPerUser: config.mamMaxMessagesPerUser,
    sweepIntervalSeconds: config.mamSweepInterval, writeQueueBytes: config.mamWriteQueueBytes,
  }, { archive: stores.archive, inRoster: (account, contact) => accountsService.inRoster(account, contact) }) : undefined;
  carbons.register(ctx, { senderStanzaId: archive?.senderStanzaId });
  vcard.register(ctx, { maxSize: config.maxVcardSize }, { vcards: stores.vcards });
  const csiState = csi.register(ctx);
  // XEP-0163 PEP, its notifications filtered by XEP-0115 caps; before presence, which it watches for initial presence.
  const entityCaps = caps.register(ctx, { maxEntries: config.capsCacheEntries, maxEntryBytes: 16 * 1024, maxPending: 1000, timeoutMs: 10_000 });
  pep.register(ctx, {
    maxItemsPerNode: config.pepMaxItemsPerNode, maxItemBytes: config.pepMaxItemBytes, maxNodesPerAccount: config.pepMaxNodesPerAccount,
  }, { pep: stores.pep, accounts: accountsService, caps: entityCaps });
  const fast = config.sasl2Enabled ? createFast(ctx, { ttl: config.fastTokenTtl, maxAgents: FAST_MAX_AGENTS, now: Date.now, allowInsecure: config.allowInsecurePlain }, { tokens: stores.fastTokens, users: stores.users, verifiedWith: saslEngine.verifiedWith }) : undefined;
  if (config.sasl2Enabled) {
    sasl2.register(ctx, { maxResourcesPerUser: config.maxResourcesPerUser, allowInsecure: config.allowInsecurePlain }, { engine: saslEngine, sm: streamManagement, csi: csiState, fast });
  }
  const directedPresence = presence.register(ctx, { accounts: accountsService });
  blocking.register(ctx, { maxItems: config.maxBlocklistItems }, { accounts: accountsService, blocklists, directed: directedPresence });
  remote.register(ctx);
  if (config.echoComponent !== '') echo.register(ctx, { address: config.echoComponent, version: VERSION });
  const accountWatch = accountChanges.register(ctx, { pollMs: 500, recheckMs: config.authTimeout * 1000 }, { users: stores.users, verifiedWith: saslEngine.verifiedWith, loginBegan: saslEngine.loginBegan });

  for (const feature of features) feature(ctx);

  return {
    core, sessions: core.sessions, log, registry: metrics.registry, metrics,
    closeSessions() {
      ledger.begin();
      core.shutdown();
    },
    dropTransports: () => core.dropTransports(),
    released: () => core.released(),
    async drain() {
      // What the closed sessions' and their accounts' queues still hold runs (core.ts): stanzas
      // are routed, then unacked and undelivered messages are stored offline.
      await core.idle();
      await offlineMessages.flush();
      await archive?.flush();
      archive?.dispose();
      ledger.end();
      streamManagement.dispose();
      accountWatch.dispose();
      fast?.dispose();
    },
    shutdownProgress: () => ledger.progress(),
    unacked: (session) => streamManagement.unacked(session),
  };
}

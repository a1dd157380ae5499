import { isIP } from 'node:net';
import { tryNormalizeDomain } from '../jid/domain.js';

/**
 * The one configuration schema. Every setting of the gateway is declared here
 * with its environment variable, type, default, bounds and a one-line doc.
 * `.env.example` and the Helm values mirror this table (test/unit/config.test.ts
 * keeps `.env.example` in sync).
 */

export type OptionKind = 'int' | 'string' | 'bool' | 'list' | 'enum' | 'int-or-infinity';

interface BaseOption {
  readonly env: string;
  readonly doc: string;
  /** Section heading in `.env.example`. */
  readonly group: string;
}
export interface IntOption extends BaseOption { readonly kind: 'int'; readonly default: number; readonly min: number; readonly max: number; readonly unit?: string }
export interface InfOption extends BaseOption { readonly kind: 'int-or-infinity'; readonly default: number; readonly min: number; readonly max: number }
export interface StringOption extends BaseOption { readonly kind: 'string'; readonly default: string; readonly pattern?: RegExp | ((value: string) => boolean); readonly expected?: string; /** The form a valid value is kept in. */ readonly normalize?: (value: string) => string; /** Never echoed in errors (it may hold a password). */ readonly secret?: boolean }
export interface BoolOption extends BaseOption { readonly kind: 'bool'; readonly default: boolean }
export interface ListOption extends BaseOption { readonly kind: 'list'; readonly default: readonly string[]; readonly minItems: number; readonly item?: RegExp | ((item: string) => boolean); readonly expected?: string; /** The form a valid item is kept in (items that become equal are kept once). */ readonly normalize?: (item: string) => string }
export interface EnumOption<T extends string = string> extends BaseOption { readonly kind: 'enum'; readonly default: T; readonly values: readonly T[] }
export type OptionSpec = IntOption | InfOption | StringOption | BoolOption | ListOption | EnumOption;

/** An address to listen on: an IP address of either family, or localhost (999.999.999.999 is not one). */
const isListenAddress = (v: string): boolean => isIP(v) !== 0 || v === 'localhost';

/**
 * An http(s) URL that the WHATWG URL parser reads as `shape` says (a port over 65535 or a host it
 * refuses fails here, at the start, and not later where the value is used); `baseOnly`: no path.
 */
function httpUrl(shape: RegExp, baseOnly = false): (v: string) => boolean {
  return (v) => {
    if (!shape.test(v)) return false;
    try {
      const url = new URL(v);
      return (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '' && url.password === ''
        && url.hostname !== '' && (!baseOnly || url.pathname === '/');
    } catch {
      return false;
    }
  };
}

/** An IP address, or a CIDR range whose prefix fits the address family (10.0.0.0/99 is not one). */
function isAddressOrCidr(item: string): boolean {
  const [address = '', prefix, ...rest] = item.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
// A host name as RFC 7622 §3.2 allows it after normalisation (lower-case ASCII/IDN labels).
const DOMAIN = /^[a-z0-9\u0080-\uffff]([a-z0-9\u0080-\uffff.-]*[a-z0-9\u0080-\uffff])?$/;
/** A domain written as above that is a valid domainpart (A-labels included: valid Punycode). */
const isDomain = (s: string): boolean => DOMAIN.test(s) && tryNormalizeDomain(s) !== null;
/**
 * RFC 7622 §3.2.1: the form every JID's domainpart is compared and routed in (A-labels become
 * U-labels). A served domain configured as its A-labels (xn--…), as DNS shows it, was kept as
 * written and matched no JID: streams to it got host-unknown, messages to its users bounced.
 */
const domainForm = (s: string): string => tryNormalizeDomain(s) ?? s;
const MIB = 1024 * 1024;
// A libpq connection URI (node-postgres parses the rest and reports what it cannot use).
const DATABASE_URL = /^postgres(ql)?:\/\/\S+$/;
const SM_BACKENDS = ['memory', 'redis'] as const;
const CLUSTER_MODES = ['none', 'redis'] as const;
const WORKER_SCHEDULING = ['none', 'round-robin'] as const;
// A redis:// or rediss:// URL (node-redis parses the rest and reports what it cannot use).
const REDIS_URL = /^rediss?:\/\/\S+$/;
const STORAGE_BACKENDS = ['sqlite', 'postgres'] as const;
const JWT = 'Token login for web apps (JWT)';
const SM = 'Stream management (XEP-0198; names after mod_stream_management)';

export const SCHEMA = {
  port: { env: 'PORT', group: 'Network', kind: 'int', default: 5280, min: 0, max: 65535, doc: 'TCP port of the HTTP listener (WebSocket, BOSH, metrics, health)' },
  host: { env: 'HOST', group: 'Network', kind: 'string', default: '0.0.0.0', pattern: isListenAddress, expected: 'an IP address or localhost', doc: 'Address to listen on' },
  trustedProxies: { env: 'TRUSTED_PROXIES', group: 'Network', kind: 'list', default: ['127.0.0.1', '::1'], minItems: 0, item: isAddressOrCidr, expected: 'IP addresses or CIDR ranges', doc: 'Proxies whose X-Forwarded-For/-Proto headers are believed (Prosody trusted_proxies); none trusts no proxy' },
  publicUrl: { env: 'PUBLIC_URL', group: 'Network', kind: 'string', default: '', pattern: httpUrl(/^https?:\/\/[^\s/?#@]+(\/[^\s?#]*)?$/), expected: 'an http(s) URL such as https://chat.example.com', doc: 'The base URL browsers reach the gateway at; host-meta advertises it, and its origin is the gateway\'s own for ALLOWED_ORIGINS. Unset: the Host header, and only for the served domains or the listening address' },
  httpRequestTimeout: { env: 'HTTP_REQUEST_TIMEOUT', group: 'Network', kind: 'int', default: 30, min: 1, max: 3600, unit: 's', doc: 'Seconds a client has to send a whole HTTP request, headers and body (a BOSH POST, a WebSocket upgrade); slower is cut with 408' },
  domains: { env: 'XMPP_DOMAIN', group: 'XMPP', kind: 'list', default: ['localhost'], minItems: 1, item: isDomain, normalize: domainForm, expected: 'lower-case domain names', doc: 'Virtual hosts served; a comma-separated list gives several. An internationalised name may be written in A-labels (xn--…): it is served, and JIDs name it, in U-labels (RFC 7622 §3.2.1)' },
  echoComponent: { env: 'ECHO_COMPONENT', group: 'XMPP', kind: 'string', default: '', pattern: isDomain, normalize: domainForm, expected: 'a domain name that is not one of XMPP_DOMAIN, e.g. echo.example.org', doc: 'Domain of a built-in echo component (messages come back, disco#info and version answered): a test service for clients and the example of a component; unset: off' },
  storage: { env: 'STORAGE', group: 'Storage', kind: 'enum', default: 'sqlite', values: STORAGE_BACKENDS, doc: 'Where accounts, rosters, blocklists, offline messages, vCards, the message archive, PEP nodes, FAST tokens and stale XEP-0198 h values live: sqlite (one file in DATA_DIR, one process) or postgres (DATABASE_URL, shared by several processes)' },
  dataDir: { env: 'DATA_DIR', group: 'Storage', kind: 'string', default: './data', doc: 'Directory of the embedded SQLite database (and of the server secret, whatever STORAGE)' },
  adminSocket: { env: 'ADMIN_SOCKET', group: 'Storage', kind: 'string', default: 'admin.sock', pattern: /^(off|[^\0]{1,100})$/, expected: "'off' or a socket path of at most 100 bytes", doc: "The admin CLI's Unix socket (mode 0600, same user only), relative to DATA_DIR; off: none. With CLUSTER=redis it is <path>-<NODE_ID> (nodes may share DATA_DIR) and speaks for its own node only" },
  databaseUrl: { env: 'DATABASE_URL', group: 'Storage', kind: 'string', default: '', pattern: DATABASE_URL, secret: true, expected: 'a postgres://user:password@host:port/database URL', doc: 'PostgreSQL connection URI, required when STORAGE=postgres; the schema is created or migrated at start' },
  databaseConnectTimeout: { env: 'DATABASE_CONNECT_TIMEOUT', group: 'Storage', kind: 'int', default: 5000, min: 0, max: 600000, unit: 'ms', doc: 'STORAGE=postgres: milliseconds to open a connection to PostgreSQL, and to wait for a free one of the pool; longer fails the query (a login gets temporary-auth-failure), or the start naming DATABASE_URL. 0: no limit' },
  databaseStatementTimeout: { env: 'DATABASE_STATEMENT_TIMEOUT', group: 'Storage', kind: 'int', default: 10000, min: 0, max: 3600000, unit: 'ms', doc: "STORAGE=postgres: milliseconds a statement may run (PostgreSQL's statement_timeout; the client gives up 2 s later if the server does not answer at all); a stalled database then fails the login with temporary-auth-failure and bounces what could not be stored, instead of hanging. Migrations and the archive's retention sweeps are not bound by it. Keep it under AUTH_TIMEOUT. 0: no limit" },
  credentialCacheBytes: { env: 'CREDENTIAL_CACHE_BYTES', group: 'Storage', kind: 'int', default: 8 * MIB, min: 0, max: 1024 * MIB, unit: 'bytes', doc: 'STORAGE=postgres: SCRAM credentials each process keeps in memory after a login (least recently used out, about 900 bytes an account), so logging in again reads nothing from PostgreSQL; every process drops an account when PostgreSQL notifies it that its password changed or it was deleted (NOTIFY; at the latest at its next reading of the change log, every 500 ms); 0: off' },
  cluster: { env: 'CLUSTER', group: 'Cluster', kind: 'enum', default: 'none', values: CLUSTER_MODES, doc: 'none: one process holds every session; redis: N processes share the session directory, cross-node delivery and the XEP-0198 state in REDIS_URL (needs STORAGE=postgres and SM_BACKEND=redis)' },
  redisUrl: { env: 'REDIS_URL', group: 'Cluster', kind: 'string', default: '', pattern: REDIS_URL, secret: true, expected: 'a redis://[user:password@]host:port[/db] URL', doc: 'Redis connection URL, required when CLUSTER=redis' },
  nodeId: { env: 'NODE_ID', group: 'Cluster', kind: 'string', default: '', pattern: /^$|^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, expected: 'letters, digits, dot, dash or underscore (at most 63)', doc: "This process's name in the cluster, stable across its restarts so it reads what was addressed to it (a StatefulSet pod name); unset: the host name. Two live processes with one name: the second refuses to start" },
  workers: { env: 'WORKERS', group: 'Cluster', kind: 'int', default: 1, min: 1, max: 256, doc: 'Processes serving the one listening port (node:cluster), each a cluster node named NODE_ID-w<i>; more than 1 needs CLUSTER=redis. How one machine uses all its cores' },
  workersScheduling: { env: 'WORKERS_SCHEDULING', group: 'Cluster', kind: 'enum', default: 'none', values: WORKER_SCHEDULING, doc: "WORKERS > 1: none: every worker accepts on the shared socket itself (the kernel picks; a busy worker takes fewer); round-robin: the primary accepts every connection and hands it to the next worker over IPC (an even spread, at the cost of the primary's CPU and an IPC round trip per connection)" },
  clusterNodeTtl: { env: 'CLUSTER_NODE_TTL', group: 'Cluster', kind: 'int', default: 10000, min: 500, max: 600000, unit: 'ms', doc: "A node's lease in Redis, renewed every fifth of it: a node silent this long is dead, its inbox is drained and its sessions handed over by a survivor" },
  clusterInboxMaxEntries: { env: 'CLUSTER_INBOX_MAX_ENTRIES', group: 'Cluster', kind: 'int', default: 100000, min: 10, max: 100000000, doc: "Entries one node's inbox stream may hold unread; past it other nodes route the stanza themselves (offline or bounce) and count it" },
  clusterInboxMaxBytes: { env: 'CLUSTER_INBOX_MAX_BYTES', group: 'Cluster', kind: 'int', default: 64 * MIB, min: 65536, max: 16384 * MIB, unit: 'bytes', doc: "Bytes one node's inbox stream may hold unread (the same fallback past it)" },
  clusterDeliveryMaxAttempts: { env: 'CLUSTER_DELIVERY_MAX_ATTEMPTS', group: 'Cluster', kind: 'int', default: 5, min: 1, max: 100, doc: 'Times an inbox entry is handled before it is routed without its target session (offline or bounce)' },
  clusterAdvertiseUrl: { env: 'CLUSTER_ADVERTISE_URL', group: 'Cluster', kind: 'string', default: '', pattern: httpUrl(/^https?:\/\/[^\s/?#@]+\/?$/, true), expected: 'an http:// or https:// base URL (scheme, host and port only)', doc: "This node's internal base URL, reachable by the other nodes: a BOSH request that reaches another node is forwarded here when its session lives on this one (no sticky sessions needed); unset: http://HOST:PORT, with 127.0.0.1 for a HOST of 0.0.0.0 or ::, which reaches it from its own machine only (nodes on several machines need it set; a request that reaches the wrong node is logged as bosh-forward-misrouted)" },
  clusterDrainTimeout: { env: 'CLUSTER_DRAIN_TIMEOUT', group: 'Cluster', kind: 'int', default: 5, min: 0, max: 300, unit: 's', doc: 'On SIGTERM in a cluster (a rolling restart): seconds the node waits, not ready and taking nothing new, for its dropped clients to resume on other nodes before it leaves (the rest stay resumable from Redis); keep it under SHUTDOWN_TIMEOUT' },
  metricsAllow: { env: 'METRICS_ALLOW', group: 'Monitoring', kind: 'list', default: ['127.0.0.0/8', '::1', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7'], minItems: 0, item: isAddressOrCidr, expected: 'IP addresses or CIDR ranges', doc: 'Direct peers (the socket address, never X-Forwarded-For) that may read /metrics; others get 403. Default: loopback and private ranges; none refuses everyone' },
  metricsPort: { env: 'METRICS_PORT', group: 'Monitoring', kind: 'int', default: 0, min: 0, max: 65535, doc: 'A separate listener for /metrics only, which the public proxy never reaches; then PORT does not serve it. 0: /metrics on PORT' },
  metricsHost: { env: 'METRICS_HOST', group: 'Monitoring', kind: 'string', default: '127.0.0.1', pattern: isListenAddress, expected: 'an IP address or localhost', doc: 'Address of the METRICS_PORT listener (0.0.0.0 for a scraper in another pod)' },
  readyMaxEventLoopDelay: { env: 'READY_MAX_EVENT_LOOP_DELAY', group: 'Monitoring', kind: 'int', default: 1000, min: 0, max: 60000, unit: 'ms', doc: '/readyz answers 503 (event-loop-lag) when the event loop stalled longer than this since the previous check; 0: not checked. /readyz also fails when the store does not answer SELECT 1 within 2 s' },
  logLevel: { env: 'LOG_LEVEL', group: 'Logging', kind: 'enum', default: 'info', values: LOG_LEVELS, doc: 'pino log level' },
  maxStanzaSize: { env: 'MAX_STANZA_SIZE', group: 'Limits', kind: 'int', default: 262144, min: 1024, max: 16 * MIB, unit: 'bytes', doc: 'Largest stanza (WebSocket frame or BOSH body) accepted; larger gets policy-violation' },
  preAuthMaxStanzaSize: { env: 'PRE_AUTH_MAX_STANZA_SIZE', group: 'Limits', kind: 'int', default: 8192, min: 1024, max: 16 * MIB, unit: 'bytes', doc: 'Largest stanza (WebSocket frame or BOSH body) accepted before authentication, as ejabberd has; larger gets policy-violation' },
  maxXmlDepth: { env: 'MAX_XML_DEPTH', group: 'Limits', kind: 'int', default: 64, min: 8, max: 1024, doc: 'Deepest element nesting accepted in one stanza' },
  maxXmlAttrs: { env: 'MAX_XML_ATTRIBUTES', group: 'Limits', kind: 'int', default: 64, min: 4, max: 1024, doc: 'Most attributes accepted on one element' },
  allowedOrigins: { env: 'ALLOWED_ORIGINS', group: 'Limits', kind: 'list', default: [], minItems: 0, item: /^\*$|^https?:\/\/[^\s,/]+$/, expected: "'*' or origins such as https://chat.example.com", doc: "Web pages (origins) besides the gateway's own that may open WebSocket or BOSH sessions; '*' any. Requests without Origin (non-browser clients) are always allowed" },
  maxConnectionsPerIp: { env: 'MAX_CONNECTIONS_PER_IP', group: 'Limits', kind: 'int', default: 100, min: 1, max: 1000000, doc: 'Sessions (WebSocket and BOSH together) one client address (an IPv6 /64) may have open on the machine (the WORKERS=N workers share their counts); more get HTTP 429 or BOSH policy-violation. N cluster nodes on N machines count their own: up to N times this in all' },
  maxUnauthenticatedPerIp: { env: 'MAX_UNAUTHENTICATED_PER_IP', group: 'Limits', kind: 'int', default: 20, min: 1, max: 1000000, doc: 'Of those, streams not yet authenticated (on the machine, as MAX_CONNECTIONS_PER_IP)' },
  newConnectionsPerIp: { env: 'NEW_CONNECTIONS_PER_IP_PER_SECOND', group: 'Limits', kind: 'int', default: 10, min: 1, max: 1000000, doc: 'New sessions per second one client address may open on the machine (token bucket: each WORKERS=N worker keeps the whole bucket and also pays for the tokens the others take); N cluster nodes on N machines count their own' },
  newConnectionsBurstPerIp: { env: 'NEW_CONNECTIONS_BURST_PER_IP', group: 'Limits', kind: 'int', default: 50, min: 1, max: 1000000, doc: 'New sessions one client address may open at once on the machine (as NEW_CONNECTIONS_PER_IP_PER_SECOND) before that rate applies' },
  maxResourcesPerUser: { env: 'MAX_RESOURCES_PER_USER', group: 'Limits', kind: 'int', default: 50, min: 1, max: 10000, doc: 'Connected resources one account may bind at once; more gets resource-constraint' },
  maxRosterItems: { env: 'MAX_ROSTER_ITEMS', group: 'Limits', kind: 'int', default: 1000, min: 1, max: 100000, doc: 'Items one roster may hold; adding one more gets not-allowed' },
  maxRosterItemBytes: { env: 'MAX_ROSTER_ITEM_BYTES', group: 'Limits', kind: 'int', default: 4096, min: 256, max: MIB, unit: 'bytes', doc: 'Largest roster item a client may set: its name and groups in UTF-8; larger gets not-acceptable' },
  maxRosterBytes: { env: 'MAX_ROSTER_BYTES', group: 'Limits', kind: 'int', default: MIB, min: 16384, max: 256 * MIB, unit: 'bytes', doc: 'Bytes one roster may hold (JIDs, names, groups, pending requests); a change beyond gets not-allowed' },
  maxBlocklistItems: { env: 'MAX_BLOCKLIST_ITEMS', group: 'Limits', kind: 'int', default: 1000, min: 1, max: 100000, doc: 'JIDs one blocklist (XEP-0191) may hold; blocking one more gets not-allowed' },
  maxInboundBytesPerSecond: { env: 'MAX_INBOUND_BYTES_PER_SECOND', group: 'Limits', kind: 'int', default: 65536, min: 1024, max: 1024 * MIB, unit: 'bytes', doc: "Input one session may send per second; faster input is delayed (the socket is not read), never dropped" },
  maxInboundBurstBytes: { env: 'MAX_INBOUND_BURST_BYTES', group: 'Limits', kind: 'int', default: 262144, min: 1024, max: 1024 * MIB, unit: 'bytes', doc: 'Input one session may send at once before MAX_INBOUND_BYTES_PER_SECOND applies (token bucket burst)' },
  maxInboundStanzasPerSecond: { env: 'MAX_INBOUND_STANZAS_PER_SECOND', group: 'Limits', kind: 'int', default: 0, min: 0, max: 1000000, doc: 'Stanzas one session may send per second (burst: one second), faster ones are delayed; 0 is no limit' },
  wsPingInterval: { env: 'WS_PING_INTERVAL', group: 'WebSocket', kind: 'int', default: 25, min: 1, max: 3600, unit: 's', doc: 'Seconds between WebSocket pings; a peer that misses one is dropped. Keep below the proxy idle timeout' },
  wsCloseTimeout: { env: 'WS_CLOSE_TIMEOUT', group: 'WebSocket', kind: 'int', default: 5, min: 1, max: 300, unit: 's', doc: "Seconds to wait for the peer's <close/> before dropping the socket" },
  wsMaxBufferedBytes: { env: 'WS_MAX_BUFFERED_BYTES', group: 'WebSocket', kind: 'int', default: 2 * MIB, min: 65536, max: 256 * MIB, unit: 'bytes', doc: "Output backlog of one WebSocket above which its input is no longer read; twice this for WS_SLOW_CONSUMER_GRACE drops it as a slow consumer" },
  wsSlowConsumerGrace: { env: 'WS_SLOW_CONSUMER_GRACE', group: 'WebSocket', kind: 'int', default: 30, min: 1, max: 3600, unit: 's', doc: 'Seconds a WebSocket may stay above twice WS_MAX_BUFFERED_BYTES (a BOSH session above twice BOSH_MAX_QUEUED_BYTES) before it is dropped as a slow consumer (its stanzas are handed over)' },
  boshMaxWait: { env: 'BOSH_MAX_WAIT', group: 'BOSH', kind: 'int', default: 60, min: 1, max: 3600, unit: 's', doc: "Longest 'wait' granted (XEP-0124 §7): seconds a BOSH request is held before an empty answer. Keep below the proxy read timeout" },
  boshMaxHold: { env: 'BOSH_MAX_HOLD', group: 'BOSH', kind: 'int', default: 1, min: 0, max: 10, doc: "Most BOSH requests held at once per session ('hold'); a session may have hold+1 requests open" },
  boshInactivity: { env: 'BOSH_INACTIVITY', group: 'BOSH', kind: 'int', default: 60, min: 1, max: 3600, unit: 's', doc: 'Seconds with no BOSH request open after which the session is over (XEP-0124 §10)' },
  boshMaxPause: { env: 'BOSH_MAX_PAUSE', group: 'BOSH', kind: 'int', default: 120, min: 0, max: 3600, unit: 's', doc: "Longest pause a BOSH client may request ('maxpause', XEP-0124 §10); 0 offers none" },
  boshPolling: { env: 'BOSH_POLLING', group: 'BOSH', kind: 'int', default: 5, min: 0, max: 300, unit: 's', doc: "Shortest interval between empty polls in BOSH polling sessions (hold or wait 0); faster gets policy-violation" },
  boshMaxSessionsPerIp: { env: 'BOSH_MAX_SESSIONS_PER_IP', group: 'BOSH', kind: 'int', default: 100, min: 1, max: 1000000, doc: 'BOSH sessions one client address may have at once on the machine (the WORKERS=N workers share their counts, as for MAX_CONNECTIONS_PER_IP); more get policy-violation' },
  boshCorsOrigins: { env: 'BOSH_CORS_ORIGINS', group: 'BOSH', kind: 'list', default: [], minItems: 0, item: /^\*$|^https?:\/\/[^\s,/]+$/, expected: "'*' or origins such as https://chat.example.com", doc: 'Deprecated alias of ALLOWED_ORIGINS, read only when that is unset (removed in the next release)' },
  boshMaxResponseBytes: { env: 'BOSH_MAX_RESPONSE_BYTES', group: 'BOSH', kind: 'int', default: 512 * 1024, min: 4096, max: 64 * MIB, unit: 'bytes', doc: 'Most payload bytes in one BOSH response, the terminate body that ends a session included (one stanza always fits); the rest waits for the next request, or is handed over when the session ends' },
  boshMaxQueuedBytes: { env: 'BOSH_MAX_QUEUED_BYTES', group: 'BOSH', kind: 'int', default: 2 * MIB, min: 16384, max: 256 * MIB, unit: 'bytes', doc: "Payload bytes waiting for a BOSH request above which the session's input is no longer processed until they are fetched" },
  allowInsecurePlain: { env: 'ALLOW_INSECURE_PLAIN', group: 'Authentication', kind: 'bool', default: false, doc: 'Offer SASL PLAIN, and SASL2 with FAST tokens (XEP-0388 §9, XEP-0484 §6), on connections that are not TLS-protected (never in production)' },
  anonymousHosts: { env: 'SASL_ANONYMOUS_HOSTS', group: 'Authentication', kind: 'list', default: [], minItems: 0, item: isDomain, normalize: domainForm, expected: 'configured domain names', doc: 'Hosts of XMPP_DOMAIN that offer SASL ANONYMOUS (throw-away accounts, resumable by smid); none by default' },
  scramIterations: { env: 'SCRAM_ITERATIONS', group: 'Authentication', kind: 'int', default: 10000, min: 4096, max: 1000000, doc: 'PBKDF2 iteration count for newly stored SCRAM credentials (Prosody: 10000)' },
  loginFailuresPerIp: { env: 'LOGIN_FAILURES_PER_IP', group: 'Authentication', kind: 'int', default: 10, min: 1, max: 100000, doc: 'Failed logins from one address (an IPv6 /64), any accounts and connections, before each further one doubles its wait (from 1 s); then <temporary-auth-failure/> and the stream ends' },
  loginFailuresPerAccount: { env: 'LOGIN_FAILURES_PER_ACCOUNT', group: 'Authentication', kind: 'int', default: 5, min: 1, max: 100000, doc: "Failed logins for one account from one address before that pair is slowed the same way; the owner's other addresses are not" },
  loginBackoffMax: { env: 'LOGIN_BACKOFF_MAX', group: 'Authentication', kind: 'int', default: 300, min: 1, max: 86400, unit: 's', doc: 'Longest wait a throttled address or account gets; after 10 quiet minutes past it the count starts afresh' },
  authTimeout: { env: 'AUTH_TIMEOUT', group: 'Authentication', kind: 'int', default: 30, min: 1, max: 3600, unit: 's', doc: "Seconds a stream may stay unauthenticated before connection-timeout (Prosody's c2s_timeout)" },
  saslMaxFailures: { env: 'SASL_MAX_FAILURES', group: 'Authentication', kind: 'int', default: 3, min: 2, max: 5, doc: 'Retries a stream gets after a failed SASL attempt (RFC 6120 §6.4.5: 2 to 5): this many failures may each be retried, the next one closes the stream with policy-violation' },
  sasl2Enabled: { env: 'SASL2_ENABLED', group: 'Authentication', kind: 'bool', default: true, doc: 'Offer SASL2 (XEP-0388) with Bind2, inline resumption and FAST tokens next to the legacy SASL, on TLS-protected connections (XEP-0388 §9; ALLOW_INSECURE_PLAIN offers it on others too)' },
  fastTokenTtl: { env: 'FAST_TOKEN_TTL', group: 'Authentication', kind: 'int', default: 14 * 86400, min: 1, max: 365 * 86400, unit: 's', doc: 'Lifetime of a FAST login token (XEP-0484, HT-SHA-256-NONE) issued at a SASL2 login' },
  jwtSecret: { env: 'JWT_SECRET', group: JWT, kind: 'string', default: '', pattern: /^.{32,}$/, secret: true, expected: 'a shared secret of at least 32 characters (RFC 7518 §3.2: a key as long as the HMAC output)', doc: 'Token login for web apps: the HMAC secret JWTs are signed with (HS256); the token is the password of SASL PLAIN or OAUTHBEARER. Unset with JWT_JWKS_URL unset: token login is off' },
  jwtJwksUrl: { env: 'JWT_JWKS_URL', group: JWT, kind: 'string', default: '', pattern: httpUrl(/^https?:\/\/\S+$/), expected: 'an http(s) URL of a JSON Web Key Set', doc: "Token login with public keys (RS256, ES256): the web app's JWKS, fetched on first use, cached, and fetched again for an unknown kid (key rotation). Exclusive with JWT_SECRET" },
  jwtAlgorithms: { env: 'JWT_ALGORITHMS', group: JWT, kind: 'list', default: [], minItems: 0, item: /^(HS256|RS256|ES256)$/, expected: 'HS256, RS256 or ES256', doc: 'JWS algorithms accepted (never none); unset: HS256 with JWT_SECRET, RS256 and ES256 with JWT_JWKS_URL' },
  jwtIssuer: { env: 'JWT_ISSUER', group: JWT, kind: 'string', default: '', doc: "The iss claim a token must carry; unset: any issuer" },
  jwtAudience: { env: 'JWT_AUDIENCE', group: JWT, kind: 'string', default: '', doc: "The aud claim a token must carry (e.g. the gateway's domain); unset: any audience" },
  jwtJidClaim: { env: 'JWT_JID_CLAIM', group: JWT, kind: 'string', default: 'jid', pattern: /^[A-Za-z0-9_.:-]{1,64}$/, expected: 'a claim name (letters, digits, _ . : -)', doc: "The claim holding the user's bare JID (user@domain); it must name one of XMPP_DOMAIN and the user logging in" },
  jwtCreateUsers: { env: 'JWT_CREATE_USERS', group: JWT, kind: 'bool', default: false, doc: 'false: a token logs in only an existing account; true: an account is created at its first token login (with no usable password)' },
  jwtClockTolerance: { env: 'JWT_CLOCK_TOLERANCE', group: JWT, kind: 'int', default: 30, min: 0, max: 600, unit: 's', doc: "Seconds of clock skew allowed when checking a token's exp and nbf" },
  jwtJwksCacheMaxAge: { env: 'JWT_JWKS_CACHE_MAX_AGE', group: JWT, kind: 'int', default: 600, min: 1, max: 86400, unit: 's', doc: 'Seconds a fetched JWKS is used before it is fetched again' },
  jwtJwksCooldown: { env: 'JWT_JWKS_COOLDOWN', group: JWT, kind: 'int', default: 30, min: 0, max: 3600, unit: 's', doc: 'Seconds at least between two JWKS fetches, so tokens with unknown kids cannot make the gateway hammer the key server' },
  smBackend: { env: 'SM_BACKEND', group: SM, kind: 'enum', default: 'memory', values: SM_BACKENDS, doc: 'backend: where resumable sessions are registered by smid: memory (this process) or redis (the cluster: any node resumes any session, and its unacknowledged stanzas survive the node; needs CLUSTER=redis)' },
  smBuffer: { env: 'SM_BUFFER', group: SM, kind: 'bool', default: true, doc: 'buffer: keep unacknowledged stanzas for resending; false also disables resumption' },
  smBufferMax: { env: 'SM_BUFFER_MAX', group: SM, kind: 'int-or-infinity', default: 100, min: 1, max: 1000000, doc: "buffer_max ('Buffer size for messages yet to be acknowledged'): stanzas sent and not yet acked at once; more wait in the session (SM_PENDING_MAX_BYTES) until acks make room, never closing the stream" },
  smPendingMaxBytes: { env: 'SM_PENDING_MAX_BYTES', group: SM, kind: 'int', default: 4 * MIB, min: 1024, max: 1024 * MIB, unit: 'bytes', doc: 'Stanzas waiting behind buffer_max (or while hibernating), serialized; more closes the stream with policy-violation (they are re-routed). Also bounds the messages waiting behind an offline delivery per account (more get resource-constraint)' },
  smAckTimeout: { env: 'SM_ACK_TIMEOUT', group: SM, kind: 'int', default: 60, min: 1, max: 3600, unit: 's', doc: "ack_timeout (ejabberd): seconds an <r/> may go unanswered while stanzas are unacked; then connection-timeout (they are re-routed)" },
  smAck: { env: 'SM_ACK', group: SM, kind: 'bool', default: true, doc: 'ack: send <r/> ack requests to clients' },
  smAckFreq: { env: 'SM_ACK_FREQ', group: SM, kind: 'int', default: 1, min: 1, max: 1000, doc: 'ack_freq: request an ack after every this many stanzas' },
  smAckQuietPeriod: { env: 'SM_ACK_QUIET_PERIOD', group: SM, kind: 'int', default: 5, min: 1, max: 600, unit: 's', doc: 'Seconds after which stanzas still below ack_freq get an ack request' },
  smResumeTimeout: { env: 'SM_RESUME_TIMEOUT', group: SM, kind: 'int', default: 600, min: 1, max: 86400, unit: 's', doc: 'resume_timeout: seconds a session waits for resumption after its transport dies' },
  smMaxHibernatedPerUser: { env: 'SM_MAX_HIBERNATED_PER_USER', group: SM, kind: 'int', default: 5, min: 1, max: 1000, doc: 'Hibernating sessions one account may keep; the oldest is ended first' },
  smStaleHEnabled: { env: 'SM_STALE_H_ENABLED', group: SM, kind: 'bool', default: false, doc: "stale_h.enabled: remember the h of timed-out sessions for <failed h='…'/>" },
  smStaleHRepeatAfter: { env: 'SM_STALE_H_REPEAT_AFTER', group: SM, kind: 'int', default: 1800, min: 1, max: 86400, unit: 's', doc: 'stale_h.repeat_after: how often stale h records are collected' },
  smStaleHGeriatric: { env: 'SM_STALE_H_GERIATRIC', group: SM, kind: 'int', default: 3600, min: 1, max: 604800, unit: 's', doc: 'stale_h.geriatric: the longest a stale h record is kept' },
  maxOfflineMessages: { env: 'MAX_OFFLINE_MESSAGES', group: 'Instant messaging', kind: 'int', default: 1000, min: 0, max: 1000000, doc: 'Offline messages (XEP-0160) kept per account; one more gets resource-constraint, 0 disables offline storage' },
  maxOfflineBytes: { env: 'MAX_OFFLINE_BYTES', group: 'Instant messaging', kind: 'int', default: 10 * MIB, min: 1024, max: 1024 * MIB, unit: 'bytes', doc: 'Offline messages kept per account, in bytes of serialized stanzas; one that does not fit gets resource-constraint' },
  maxVcardSize: { env: 'MAX_VCARD_SIZE', group: 'Instant messaging', kind: 'int', default: 65536, min: 1024, max: 16 * MIB, unit: 'bytes', doc: 'Largest vCard (XEP-0054) an account may store, serialized; larger gets not-acceptable' },
  pepMaxItemsPerNode: { env: 'PEP_MAX_ITEMS_PER_NODE', group: 'Instant messaging', kind: 'int', default: 256, min: 1, max: 100000, doc: "Items a PEP node (XEP-0163) keeps at most, and what pubsub#max_items 'max' means; a larger max_items gets not-acceptable" },
  pepMaxItemBytes: { env: 'PEP_MAX_ITEM_BYTES', group: 'Instant messaging', kind: 'int', default: 131072, min: 1024, max: 16 * MIB, unit: 'bytes', doc: 'Largest PEP item payload (an avatar, a bookmark), serialized; larger gets not-acceptable with payload-too-big' },
  pepMaxNodesPerAccount: { env: 'PEP_MAX_NODES_PER_ACCOUNT', group: 'Instant messaging', kind: 'int', default: 256, min: 1, max: 100000, doc: 'PEP nodes one account may have (OMEMO keeps one per device); one more gets policy-violation with max-nodes-exceeded' },
  capsCacheEntries: { env: 'CAPS_CACHE_ENTRIES', group: 'Instant messaging', kind: 'int', default: 1000, min: 10, max: 1000000, doc: 'Entity capabilities (XEP-0115) remembered by verification string, least recently used first out; each is one client version' },
  mamEnabled: { env: 'MAM_ENABLED', group: 'Message archive', kind: 'bool', default: true, doc: 'Archive one-to-one chat (XEP-0313) for both sides and stamp it with stanza ids (XEP-0359); false: no archive, no MAM features' },
  mamRetentionDays: { env: 'MAM_RETENTION_DAYS', group: 'Message archive', kind: 'int', default: 0, min: 0, max: 36500, unit: 'days', doc: 'Archived messages older than this are deleted by the periodic sweep; 0 keeps them for ever' },
  mamMaxMessagesPerUser: { env: 'MAM_MAX_MESSAGES_PER_USER', group: 'Message archive', kind: 'int', default: 100000, min: 0, max: 100000000, doc: "An account's archive keeps its newest this many messages (the sweep trims it); 0: no limit" },
  mamMaxPageSize: { env: 'MAM_MAX_PAGE_SIZE', group: 'Message archive', kind: 'int', default: 250, min: 1, max: 1000, doc: 'Most messages one archive query returns (a larger RSM max is cut to it, XEP-0313 §4.3.1); a query without max gets 50 or this, the smaller' },
  mamWriteQueueBytes: { env: 'MAM_WRITE_QUEUE_BYTES', group: 'Message archive', kind: 'int', default: 8 * MIB, min: 64 * 1024, max: 1024 * MIB, unit: 'bytes', doc: 'Archive writes queued for the store at most, in bytes; beyond it chat messages wait (their senders slowed) until commits make room, never dropped' },
  mamSweepInterval: { env: 'MAM_SWEEP_INTERVAL', group: 'Message archive', kind: 'int', default: 300, min: 1, max: 86400, unit: 's', doc: 'Seconds between retention sweeps; each deletes in bounded batches, yielding to the event loop between them' },
  shutdownTimeout: { env: 'SHUTDOWN_TIMEOUT', group: 'Lifecycle', kind: 'int', default: 10, min: 1, max: 600, unit: 's', doc: 'Seconds a SIGTERM shutdown waits for sessions to close' },
} as const satisfies Record<string, OptionSpec>;

export type Schema = typeof SCHEMA;
type ValueOf<S> = S extends { kind: 'int' | 'int-or-infinity' } ? number
  : S extends { kind: 'bool' } ? boolean
  : S extends { kind: 'list' } ? readonly string[]
  : S extends { kind: 'enum'; values: readonly (infer V)[] } ? V
  : string;
export type Config = { readonly [K in keyof Schema]: ValueOf<Schema[K]> };

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
export interface StringOption extends BaseOption { readonly kind: 'string'; readonly default: string; readonly pattern?: RegExp; readonly expected?: string }
export interface BoolOption extends BaseOption { readonly kind: 'bool'; readonly default: boolean }
export interface ListOption extends BaseOption { readonly kind: 'list'; readonly default: readonly string[]; readonly minItems: number; readonly item?: RegExp; readonly expected?: string }
export interface EnumOption<T extends string = string> extends BaseOption { readonly kind: 'enum'; readonly default: T; readonly values: readonly T[] }
export type OptionSpec = IntOption | InfOption | StringOption | BoolOption | ListOption | EnumOption;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
// A host name as RFC 7622 §3.2 allows it after normalisation (lower-case ASCII/IDN labels).
const DOMAIN = /^[a-z0-9\u0080-\uffff]([a-z0-9\u0080-\uffff.-]*[a-z0-9\u0080-\uffff])?$/;
const MIB = 1024 * 1024;

export const SCHEMA = {
  port: { env: 'PORT', group: 'Network', kind: 'int', default: 5280, min: 0, max: 65535, doc: 'TCP port of the HTTP listener (WebSocket, BOSH, metrics, health)' },
  host: { env: 'HOST', group: 'Network', kind: 'string', default: '0.0.0.0', pattern: /^[0-9a-fA-F.:]+$|^localhost$/, expected: 'an IP address or localhost', doc: 'Address to listen on' },
  trustedProxies: { env: 'TRUSTED_PROXIES', group: 'Network', kind: 'list', default: ['127.0.0.1', '::1'], minItems: 0, item: /^[0-9a-fA-F.:]+(\/\d{1,3})?$/, expected: 'IP addresses or CIDR ranges', doc: 'Proxies whose X-Forwarded-For/-Proto headers are believed (Prosody trusted_proxies); none trusts no proxy' },
  domains: { env: 'XMPP_DOMAIN', group: 'XMPP', kind: 'list', default: ['localhost'], minItems: 1, item: DOMAIN, expected: 'lower-case domain names', doc: 'Virtual hosts served; a comma-separated list gives several' },
  dataDir: { env: 'DATA_DIR', group: 'Storage', kind: 'string', default: './data', doc: 'Directory of the embedded SQLite database' },
  logLevel: { env: 'LOG_LEVEL', group: 'Logging', kind: 'enum', default: 'info', values: LOG_LEVELS, doc: 'pino log level' },
  maxStanzaSize: { env: 'MAX_STANZA_SIZE', group: 'Limits', kind: 'int', default: 262144, min: 1024, max: 16 * MIB, unit: 'bytes', doc: 'Largest stanza (WebSocket frame or BOSH body) accepted; larger gets policy-violation' },
  maxXmlDepth: { env: 'MAX_XML_DEPTH', group: 'Limits', kind: 'int', default: 64, min: 8, max: 1024, doc: 'Deepest element nesting accepted in one stanza' },
  maxXmlAttrs: { env: 'MAX_XML_ATTRIBUTES', group: 'Limits', kind: 'int', default: 64, min: 4, max: 1024, doc: 'Most attributes accepted on one element' },
  maxResourcesPerUser: { env: 'MAX_RESOURCES_PER_USER', group: 'Limits', kind: 'int', default: 50, min: 1, max: 10000, doc: 'Connected resources one account may bind at once; more gets resource-constraint' },
  wsPingInterval: { env: 'WS_PING_INTERVAL', group: 'WebSocket', kind: 'int', default: 25, min: 1, max: 3600, unit: 's', doc: 'Seconds between WebSocket pings; a peer that misses one is dropped. Keep below the proxy idle timeout' },
  wsCloseTimeout: { env: 'WS_CLOSE_TIMEOUT', group: 'WebSocket', kind: 'int', default: 5, min: 1, max: 300, unit: 's', doc: "Seconds to wait for the peer's <close/> before dropping the socket" },
  allowInsecurePlain: { env: 'ALLOW_INSECURE_PLAIN', group: 'Authentication', kind: 'bool', default: false, doc: 'Offer SASL PLAIN on connections that are not TLS-protected (never in production)' },
  scramIterations: { env: 'SCRAM_ITERATIONS', group: 'Authentication', kind: 'int', default: 10000, min: 4096, max: 1000000, doc: 'PBKDF2 iteration count for newly stored SCRAM credentials (Prosody: 10000)' },
  saslMaxFailures: { env: 'SASL_MAX_FAILURES', group: 'Authentication', kind: 'int', default: 3, min: 2, max: 5, doc: 'Failed SASL attempts on one stream before it is closed (RFC 6120 §6.4.5: 2 to 5)' },
  shutdownTimeout: { env: 'SHUTDOWN_TIMEOUT', group: 'Lifecycle', kind: 'int', default: 10, min: 1, max: 600, unit: 's', doc: 'Seconds a SIGTERM shutdown waits for sessions to close' },
} as const satisfies Record<string, OptionSpec>;

export type Schema = typeof SCHEMA;
type ValueOf<S> = S extends { kind: 'int' | 'int-or-infinity' } ? number
  : S extends { kind: 'bool' } ? boolean
  : S extends { kind: 'list' } ? readonly string[]
  : S extends { kind: 'enum'; values: readonly (infer V)[] } ? V
  : string;
export type Config = { readonly [K in keyof Schema]: ValueOf<Schema[K]> };

import { existsSync, readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { SCHEMA, type Config, type OptionSpec } from './schema.js';

/** Every problem found in the environment, one line each, naming the variable. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

type Parsed = { ok: true; value: unknown } | { ok: false; expected: string };

function parseInt10(raw: string, min: number, max: number, infinity: boolean): Parsed {
  const expected = `an integer from ${min} to ${max}${infinity ? " or 'infinity'" : ''}`;
  if (infinity && raw === 'infinity') return { ok: true, value: Number.POSITIVE_INFINITY };
  if (!/^-?\d+$/.test(raw)) return { ok: false, expected };
  const n = Number(raw);
  return n >= min && n <= max ? { ok: true, value: n } : { ok: false, expected };
}

function parseValue(spec: OptionSpec, raw: string): Parsed {
  switch (spec.kind) {
    case 'int': return parseInt10(raw, spec.min, spec.max, false);
    case 'int-or-infinity': return parseInt10(raw, spec.min, spec.max, true);
    case 'bool':
      if (raw === 'true' || raw === '1') return { ok: true, value: true };
      if (raw === 'false' || raw === '0') return { ok: true, value: false };
      return { ok: false, expected: 'true or false' };
    case 'enum':
      return spec.values.includes(raw) ? { ok: true, value: raw } : { ok: false, expected: `one of ${spec.values.join(', ')}` };
    case 'list': {
      if (raw === 'none' && spec.minItems === 0) return { ok: true, value: Object.freeze([]) };
      const items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
      const expected = `a comma-separated list of ${spec.expected ?? 'values'}${spec.minItems > 0 ? ` (at least ${spec.minItems})` : ''}${spec.minItems === 0 ? ', or none' : ''}`;
      // No item: only 'none' says an empty list where the default is not one.
      if (items.length < spec.minItems || (items.length === 0 && spec.default.length > 0)) return { ok: false, expected };
      const valid = typeof spec.item === 'function' ? spec.item : spec.item ? (i: string) => (spec.item as RegExp).test(i) : undefined;
      if (valid && !items.every(valid)) return { ok: false, expected };
      return { ok: true, value: Object.freeze(spec.normalize ? [...new Set(items.map(spec.normalize))] : items) };
    }
    case 'string':
      if (raw === '' || (spec.pattern && !(typeof spec.pattern === 'function' ? spec.pattern(raw) : spec.pattern.test(raw)))) {
        return { ok: false, expected: spec.expected ?? 'a non-empty string' };
      }
      return { ok: true, value: spec.normalize ? spec.normalize(raw) : raw };
  }
}

/** An empty value is the default itself: a string option off by default, a list empty by default. */
const emptyIsDefault = (spec: OptionSpec): boolean => (spec.kind === 'list' ? spec.default.length === 0 : spec.default === '');
const defaultShown = (spec: OptionSpec): string => (spec.kind === 'list' ? spec.default.join(',') : String(spec.default));

const shown = (spec: OptionSpec, raw: string): string => (spec.kind === 'string' && spec.secret ? '(value hidden)' : JSON.stringify(raw));

/**
 * Reads the configuration once from `env`, validating every variable, and
 * returns it frozen. All errors are collected and thrown together so an
 * operator fixes them in one go.
 */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, spec] of Object.entries(SCHEMA) as [string, OptionSpec][]) {
    const raw = env[spec.env];
    // Set but empty (PUBLIC_URL= as .env.example writes it) is the default only where the default is empty
    // ("unset: off"). Elsewhere it was the default too, without a word: XMPP_DOMAIN= served localhost,
    // TRUSTED_PROXIES= (meant: none) trusted loopback. There it is a bad value, as any other.
    if (raw === undefined || (raw.trim() === '' && emptyIsDefault(spec))) {
      out[key] = spec.default;
      continue;
    }
    const parsed = parseValue(spec, raw.trim());
    if (parsed.ok) out[key] = parsed.value;
    else problems.push(`${spec.env}=${shown(spec, raw)} is invalid: expected ${parsed.expected}${raw.trim() === '' ? `; unset ${spec.env} for its default (${defaultShown(spec)})` : ''}`);
  }
  if (problems.length === 0) problems.push(...crossCheck(out as Config));
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(out) as Config;
}

/**
 * Merges an optional `.env` file under the real environment (the real
 * environment wins), using Node's own dotenv parser (Node ≥ 20.12).
 */
export function withEnvFile(path: string, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (!existsSync(path)) return env;
  return { ...parseEnv(readFileSync(path, 'utf8')), ...env };
}

const SETTINGS: ReadonlySet<string> = new Set(Object.values(SCHEMA).map((spec: OptionSpec) => spec.env));

/**
 * The names an optional `.env` file sets that are no setting: most likely typos, which would otherwise
 * leave the setting at its default without a word (ejabberd refuses an unknown option).
 */
export function unknownEnvFileNames(path: string): string[] {
  if (!existsSync(path)) return [];
  return Object.keys(parseEnv(readFileSync(path, 'utf8'))).filter((name) => !SETTINGS.has(name));
}

/** Rules that involve more than one variable. */
function crossCheck(c: Config): string[] {
  const problems: string[] = [];
  if (c.storage === 'postgres' && c.databaseUrl === '') {
    problems.push(`DATABASE_URL is required when STORAGE=postgres: expected ${SCHEMA.databaseUrl.expected}`);
  }
  if (c.cluster === 'redis') {
    if (c.redisUrl === '') problems.push(`REDIS_URL is required when CLUSTER=redis: expected ${SCHEMA.redisUrl.expected}`);
    // Every node must see the same accounts and rosters: an embedded SQLite file is one process's.
    if (c.storage !== 'postgres') problems.push('STORAGE=sqlite is invalid with CLUSTER=redis: expected STORAGE=postgres (the nodes share one database)');
    if (c.smBackend !== 'redis') problems.push('SM_BACKEND=memory is invalid with CLUSTER=redis: expected SM_BACKEND=redis (a session must resume on any node)');
    // SIGTERM's drain (src/roll.ts) runs within the shutdown's bound, with time left to leave the cluster.
    if (c.clusterDrainTimeout >= c.shutdownTimeout) {
      problems.push(`CLUSTER_DRAIN_TIMEOUT=${c.clusterDrainTimeout} is invalid with SHUTDOWN_TIMEOUT=${c.shutdownTimeout}: expected less than SHUTDOWN_TIMEOUT (the node must leave the cluster before the shutdown is cut short)`);
    }
  } else {
    if (c.smBackend === 'redis') problems.push('SM_BACKEND=redis is invalid with CLUSTER=none: expected CLUSTER=redis and REDIS_URL');
    // Each worker is a process of its own: without the shared state, a session would only exist in one of them.
    if (c.workers > 1) problems.push(`WORKERS=${c.workers} is invalid with CLUSTER=none: expected 1, or CLUSTER=redis (the workers share their sessions through Redis)`);
  }
  // Two listeners on one port: the second would fail with EADDRINUSE after the storage is open.
  if (c.metricsPort !== 0 && c.metricsPort === c.port) problems.push(`METRICS_PORT=${c.metricsPort} is invalid: expected a port other than PORT (or 0: /metrics on PORT)`);
  problems.push(...jwtCheck(c));
  // A served domain's stanzas are the server's: the component would never see them (echo.ts refuses it, but only
  // once the storage is open, as a stack trace rather than this line).
  if (c.echoComponent !== '' && c.domains.includes(c.echoComponent)) {
    problems.push(`ECHO_COMPONENT=${JSON.stringify(c.echoComponent)} is invalid: expected ${SCHEMA.echoComponent.expected}`);
  }
  const unknown = c.anonymousHosts.filter((h) => !c.domains.includes(h));
  if (unknown.length > 0) {
    problems.push(`SASL_ANONYMOUS_HOSTS=${JSON.stringify(unknown.join(','))} is invalid: expected hosts listed in XMPP_DOMAIN (${c.domains.join(',')})`);
  }
  return problems;
}

const SYMMETRIC = new Set(['HS256']);

/** Token login (JWT_*): one key source, algorithms that fit it, and no token settings without it. */
function jwtCheck(c: Config): string[] {
  const problems: string[] = [];
  const secret = c.jwtSecret !== '';
  const jwks = c.jwtJwksUrl !== '';
  if (secret && jwks) problems.push('JWT_JWKS_URL is invalid with JWT_SECRET: expected one of them (a shared secret or a key set)');
  if (!secret && !jwks) {
    const set: [string, boolean][] = [
      ['JWT_ALGORITHMS', c.jwtAlgorithms.length > 0], ['JWT_ISSUER', c.jwtIssuer !== ''],
      ['JWT_AUDIENCE', c.jwtAudience !== ''], ['JWT_CREATE_USERS', c.jwtCreateUsers],
    ];
    for (const [v, given] of set) if (given) problems.push(`${v} is set but token login is off: expected JWT_SECRET or JWT_JWKS_URL as well`);
    return problems;
  }
  // A shared secret can only verify HMAC; a key set holds public keys, which must not be used as HMAC secrets.
  const wrong = c.jwtAlgorithms.filter((a) => SYMMETRIC.has(a) !== secret);
  if (wrong.length > 0) {
    const fits = secret ? 'HS256 (JWT_SECRET is an HMAC secret)' : 'RS256 or ES256 (JWT_JWKS_URL holds public keys)';
    problems.push(`JWT_ALGORITHMS=${JSON.stringify(c.jwtAlgorithms.join(','))} is invalid: expected ${fits}`);
  }
  return problems;
}

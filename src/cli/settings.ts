/**
 * The few settings the CLI needs, read from the environment with the same
 * defaults, bounds and error wording as the server's configuration
 * (src/config/schema.ts is the single source of those).
 */
import { blankProblem, ConfigError, SCHEMA } from '../config/index.js';
import { adminSocketPath } from '../admin/index.js';

export interface CliSettings {
  /** STORAGE: which backend the accounts live in. */
  backend: 'sqlite' | 'postgres';
  dataDir: string;
  /** DATABASE_URL, required when backend is postgres. */
  databaseUrl: string;
  hosts: string[];
  scramIterations: number;
  /** ADMIN_SOCKET resolved against DATA_DIR; undefined when off. */
  adminSocket: string | undefined;
}

type Read<T> = { ok: true; value: T } | { ok: false; problem: string };

// What the CLI reads. Set but blank is the server's error where blank is not the default
// (XMPP_DOMAIN= served localhost to the CLI and stopped the server): checked first, with its wording.
const READ = [SCHEMA.storage, SCHEMA.databaseUrl, SCHEMA.domains, SCHEMA.scramIterations, SCHEMA.dataDir, SCHEMA.adminSocket, SCHEMA.cluster, SCHEMA.nodeId];

// Unset means "use the default"; blank too, once blankProblem() has passed it.
function raw(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

const invalid = (name: string, value: string, expected: string): Read<never> =>
  ({ ok: false, problem: `${name}=${JSON.stringify(value)} is invalid: expected ${expected}` });

function readIterations(env: NodeJS.ProcessEnv): Read<number> {
  const spec = SCHEMA.scramIterations;
  const value = raw(env, spec.env);
  if (value === undefined) return { ok: true, value: spec.default };
  const n = Number(value);
  const inRange = /^\d+$/.test(value) && n >= spec.min && n <= spec.max;
  return inRange ? { ok: true, value: n } : invalid(spec.env, value, `an integer from ${spec.min} to ${spec.max}`);
}

function readHosts(env: NodeJS.ProcessEnv): Read<string[]> {
  const spec = SCHEMA.domains;
  const value = raw(env, spec.env);
  if (value === undefined) return { ok: true, value: [...spec.default] };
  const hosts = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const valid = hosts.length >= spec.minItems && hosts.every((h) => spec.item(h));
  // In the server's form (A-labels as U-labels), so that accounts are stored under the domain it serves.
  return valid ? { ok: true, value: [...new Set(hosts.map(spec.normalize))] } : invalid(spec.env, value, `a comma-separated list of ${spec.expected}`);
}

type StorageSettings = Pick<CliSettings, 'backend' | 'databaseUrl'>;

// The same rules and wording as loadConfig, DATABASE_URL never echoed (it may hold a password).
function readStorage(env: NodeJS.ProcessEnv): Read<StorageSettings> {
  const backend = raw(env, SCHEMA.storage.env) ?? SCHEMA.storage.default;
  const databaseUrl = raw(env, SCHEMA.databaseUrl.env) ?? SCHEMA.databaseUrl.default;
  const spec = SCHEMA.databaseUrl;
  if (backend !== 'sqlite' && backend !== 'postgres') return invalid(SCHEMA.storage.env, backend, `one of ${SCHEMA.storage.values.join(', ')}`);
  if (databaseUrl !== '' && !spec.pattern.test(databaseUrl)) return { ok: false, problem: `${spec.env}=(value hidden) is invalid: expected ${spec.expected}` };
  if (backend === 'postgres' && databaseUrl === '') return { ok: false, problem: `${spec.env} is required when ${SCHEMA.storage.env}=postgres: expected ${spec.expected}` };
  return { ok: true, value: { backend, databaseUrl } };
}

/** @throws ConfigError listing every bad variable, each line naming it, its value and what was expected */
export function cliSettingsFromEnv(env: NodeJS.ProcessEnv): CliSettings {
  const iterations = readIterations(env);
  const hosts = readHosts(env);
  const storage = readStorage(env);
  const blanks = READ.flatMap((spec) => blankProblem(spec, env[spec.env]) ?? []);
  const problems = [...blanks, ...[iterations, hosts, storage].flatMap((r) => (r.ok ? [] : [r.problem]))];
  if (problems.length > 0 || !iterations.ok || !hosts.ok || !storage.ok) throw new ConfigError(problems);
  const dataDir = raw(env, SCHEMA.dataDir.env) ?? SCHEMA.dataDir.default;
  const adminSocket = adminSocketPath({
    dataDir, adminSocket: raw(env, SCHEMA.adminSocket.env) ?? SCHEMA.adminSocket.default,
    cluster: raw(env, SCHEMA.cluster.env) === 'redis' ? 'redis' : 'none', nodeId: raw(env, SCHEMA.nodeId.env) ?? '',
  });
  return { ...storage.value, dataDir, hosts: hosts.value, scramIterations: iterations.value, adminSocket };
}

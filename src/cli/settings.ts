/**
 * The few settings the CLI needs, read from the environment with the same
 * defaults, bounds and error wording as the server's configuration
 * (src/config/schema.ts is the single source of those).
 */
import { ConfigError, SCHEMA } from '../config/index.js';

export interface CliSettings {
  dataDir: string;
  hosts: string[];
  scramIterations: number;
}

type Read<T> = { ok: true; value: T } | { ok: false; problem: string };

// Unset and blank both mean "use the default", as in loadConfig.
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
  const valid = hosts.length >= spec.minItems && hosts.every((h) => spec.item.test(h));
  return valid ? { ok: true, value: hosts } : invalid(spec.env, value, `a comma-separated list of ${spec.expected}`);
}

/** @throws ConfigError listing every bad variable, each line naming it, its value and what was expected */
export function cliSettingsFromEnv(env: NodeJS.ProcessEnv): CliSettings {
  const iterations = readIterations(env);
  const hosts = readHosts(env);
  const problems = [iterations, hosts].flatMap((r) => (r.ok ? [] : [r.problem]));
  if (!iterations.ok || !hosts.ok) throw new ConfigError(problems);
  return { dataDir: raw(env, SCHEMA.dataDir.env) ?? SCHEMA.dataDir.default, hosts: hosts.value, scramIterations: iterations.value };
}

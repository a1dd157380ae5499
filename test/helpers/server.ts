import type { Test } from 'tap';
import { loadConfig, type Config } from '../../src/config/index.js';
import { createMemoryStorage, deriveStoredCredentials, type Storage } from '../../src/storage/index.js';
import { buildApp, type App, type AppOptions } from '../../src/app.js';
import { PRE_SASL2 } from './pre-sasl2.js';

export { PRE_SASL2 };

export interface TestServer {
  readonly app: App;
  readonly config: Config;
  readonly storage: Storage;
  readonly port: number;
  readonly wsUrl: string;
  readonly httpUrl: string;
  addUser(username: string, password: string, host?: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * Every test client comes from 127.0.0.1, where a deployment sees many
 * addresses: the per-address limits are opened wide unless a test sets them
 * (test/integration/admission.test.ts does).
 */
export const MANY_CLIENTS: Readonly<Record<string, string>> = {
  MAX_CONNECTIONS_PER_IP: '1000000', MAX_UNAUTHENTICATED_PER_IP: '1000000',
  NEW_CONNECTIONS_PER_IP_PER_SECOND: '1000000', NEW_CONNECTIONS_BURST_PER_IP: '1000000',
  LOGIN_FAILURES_PER_IP: '100000', LOGIN_FAILURES_PER_ACCOUNT: '100000',
};

/**
 * A real gateway on 127.0.0.1 and a free port, with in-memory storage and
 * the environment overrides given (as strings, exactly as an operator would
 * set them). SCRAM iterations are the minimum so tests stay quick.
 */
/** buildApp's options; `logger` is by default none, or LOG_LEVEL's level if that is set. */
export type StartOptions = AppOptions;

export async function startServer(env: Record<string, string> = {}, storage: Storage = createMemoryStorage(), opts: StartOptions = {}): Promise<TestServer> {
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', SCRAM_ITERATIONS: '4096', ...PRE_SASL2, ...MANY_CLIENTS, ...env });
  const app = await buildApp(config, storage, { logger: env.LOG_LEVEL ? { level: env.LOG_LEVEL } : false, ...opts });
  await app.http.listen({ port: 0, host: '127.0.0.1' });
  const address = app.http.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    app, config, storage, port,
    wsUrl: `ws://127.0.0.1:${port}/xmpp-websocket`,
    httpUrl: `http://127.0.0.1:${port}`,
    async addUser(username, password, host = config.domains[0]!) {
      await storage.users.create(host, username, await deriveStoredCredentials(password, config.scramIterations));
    },
    close: () => app.shutdown(),
  };
}

/** Accounts to create: name → password, or a list of names whose password is `<name>-pw`. */
export type Users = Readonly<Record<string, string>> | readonly string[];

export interface UsersServer extends TestServer {
  /** The accounts created, name → password. */
  readonly users: Readonly<Record<string, string>>;
}

/**
 * The fixture of most integration tests: a server (startServer) with `env`
 * and the accounts `users`, closed when `t` ends.
 */
export async function withUsers(t: Test, users: Users, env: Record<string, string> = {}, storage?: Storage, opts?: StartOptions): Promise<UsersServer> {
  const server = await startServer(env, storage, opts);
  t.teardown(() => server.close());
  const passwords: Record<string, string> = Array.isArray(users)
    ? Object.fromEntries((users as readonly string[]).map((name) => [name, `${name}-pw`]))
    : { ...(users as Record<string, string>) };
  for (const [name, password] of Object.entries(passwords)) await server.addUser(name, password);
  return { ...server, users: passwords };
}

/** A server with `env` and no accounts, closed when `t` ends. */
export function withServer(t: Test, env: Record<string, string> = {}, storage?: Storage, opts?: StartOptions): Promise<UsersServer> {
  return withUsers(t, [], env, storage, opts);
}

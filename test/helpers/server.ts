import { loadConfig, type Config } from '../../src/config/index.js';
import { createMemoryStorage, deriveStoredCredentials, type Storage } from '../../src/storage/index.js';
import { buildApp, type App } from '../../src/app.js';

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
export async function startServer(env: Record<string, string> = {}, storage: Storage = createMemoryStorage()): Promise<TestServer> {
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', SCRAM_ITERATIONS: '4096', ...MANY_CLIENTS, ...env });
  const app = await buildApp(config, storage, { logger: env.LOG_LEVEL ? { level: env.LOG_LEVEL } : false });
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

/**
 * The few settings the CLI needs, read from the environment by the server's
 * own loadConfig (src/config/load.ts): the same defaults, bounds, checks and
 * error wording.
 */
import { loadConfig } from '../config/index.js';
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

/**
 * The settings as the server reads them: loadConfig itself, so the CLI refuses what would stop the
 * server (a bad or blank value, a combination such as CLUSTER=redis with STORAGE=sqlite) in the same
 * words, and takes the same defaults. A command that ran where the server cannot start would write
 * accounts the server never reads (XMPP_DOMAIN= was localhost here, an error there).
 * @throws ConfigError listing every bad variable, each line naming it, its value and what was expected
 */
export function cliSettingsFromEnv(env: NodeJS.ProcessEnv): CliSettings {
  const c = loadConfig(env);
  return {
    backend: c.storage, dataDir: c.dataDir, databaseUrl: c.databaseUrl, hosts: [...c.domains], scramIterations: c.scramIterations,
    adminSocket: adminSocketPath({ dataDir: c.dataDir, adminSocket: c.adminSocket, cluster: c.cluster, nodeId: c.nodeId }),
  };
}

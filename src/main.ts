import { resolve } from 'node:path';
import { ConfigError, loadConfig, withEnvFile, type Config } from './config/index.js';
import { openStorage, type Storage } from './storage/index.js';
import { loadOrCreateSecret } from './storage/secret.js';
import { buildApp } from './app.js';
import { isSupervisor, supervise } from './workers.js';

/**
 * The process entry: read the configuration, open storage, listen, and shut
 * down cleanly on SIGTERM/SIGINT. The only place that exits the process.
 */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(withEnvFile(resolve('.env'), process.env));
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const line of err.problems) process.stderr.write(`xmpp-web-gateway: configuration error: ${line}\n`);
      process.exit(2);
    }
    throw err;
  }
  if (isSupervisor(config)) {
    supervise(config, (line) => process.stderr.write(`xmpp-web-gateway: ${line}\n`));
    return;
  }
  const storage = await openConfiguredStorage(config);
  const app = await buildApp(config, storage, { unknownUserSecret: loadOrCreateSecret(config.dataDir) });
  await app.http.listen({ port: config.port, host: config.host });
  app.http.log.info({ event: 'listening', domains: config.domains, port: config.port }, 'xmpp-web-gateway is serving');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.http.log.info({ event: 'shutdown', signal }, 'shutting down');
    // Fires even while offline writes are still going on: they yield to the event loop (shutdown.ts).
    const timer = setTimeout(() => {
      app.http.log.error({ event: 'shutdown-timeout', seconds: config.shutdownTimeout, ...app.shutdownProgress() },
        'SHUTDOWN_TIMEOUT reached: exiting with offline writes unfinished');
      process.exit(1);
    }, config.shutdownTimeout * 1000);
    timer.unref();
    app.shutdown().then(() => {
      app.http.log.info({ event: 'shutdown-complete', ...app.shutdownProgress() }, 'shut down');
      process.exit(0);
    }, (err: unknown) => {
      app.http.log.error({ err, ...app.shutdownProgress() }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/**
 * SQLite (the default) or PostgreSQL. A PostgreSQL that cannot be reached
 * stops the start naming DATABASE_URL, without echoing it (it may hold a
 * password).
 */
async function openConfiguredStorage(config: Config): Promise<Storage> {
  try {
    return await openStorage({ backend: config.storage, dataDir: config.dataDir, databaseUrl: config.databaseUrl });
  } catch (err) {
    if (config.storage !== 'postgres') throw err;
    process.stderr.write(`xmpp-web-gateway: configuration error: DATABASE_URL: cannot open the PostgreSQL database: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`xmpp-web-gateway: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});

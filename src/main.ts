import { resolve } from 'node:path';
import { destination, pino } from 'pino';
import { ConfigError, loadConfig, unknownEnvFileNames, withEnvFile, type Config } from './config/index.js';
import { openStorage, StorageOpenError, type Storage } from './storage/index.js';
import { loadOrCreateSecret } from './storage/secret.js';
import { buildApp, type App } from './app.js';
import { ClusterStartError } from './cluster/errors.js';
import { SAME_SIGNAL_MS, isSupervisor, isWorker, listenOwnAddress, onForcedStop, supervise } from './workers.js';
import { AdminSocketError, serverAdminSocketPath } from './admin/index.js';

/**
 * The one destination of every logger in this process: stdout, written synchronously (as Prosody writes its
 * console log). Pino's default is a separate asynchronous stream per logger, flushed at process.exit by a loop
 * that retries a write to a closed pipe (EPIPE) for ever: with the log reader gone (`| head`, a log shipper
 * that died), a SIGTERM whose last lines were still queued never exited, SHUTDOWN_TIMEOUT's exit included.
 * A synchronous write meets EPIPE at once, and pino stops logging to that stream.
 */
const logDestination = destination({ dest: 1, sync: true, maxLength: 16 * 1024 * 1024 });
// Any other write error (ENOSPC, EIO on a hung-up terminal) was an 'error' event nobody handled: thrown from the
// logging call, it stopped the start or a session's work. Those lines are lost (at most maxLength bytes of them
// wait for the next write that succeeds); the server serves on.
logDestination.on('error', () => undefined);

/**
 * The process entry: read the configuration, open storage, listen, and shut
 * down cleanly on SIGTERM/SIGINT. The only place that exits the process.
 */
async function main(): Promise<void> {
  let env;
  try {
    env = withEnvFile(resolve('.env'), process.env);
    for (const name of unknownEnvFileNames(resolve('.env'))) process.stderr.write(`xmpp-web-gateway: warning: .env sets ${name}, which is no setting (see .env.example)\n`);
  } catch (err) {
    // A .env that is a directory or unreadable: one line, as the CLI says it (it was a stack trace, exit 1).
    process.stderr.write(`xmpp-web-gateway: configuration error: cannot read .env: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  let config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const line of err.problems) process.stderr.write(`xmpp-web-gateway: configuration error: ${line}\n`);
      process.exit(2);
    }
    throw err;
  }
  // Node's default for SIGHUP is to die on the spot (a closed terminal, a logrotate script's kill -HUP, Prosody's
  // reload): no system-shutdown to the clients, and their stream-management queues never stored. Settings are read
  // at start only and logs go to stdout: nothing to reload or reopen, so it is said and the process serves on.
  const hupLog = pino({ level: config.logLevel }, logDestination);
  process.on('SIGHUP', () => hupLog.warn({ event: 'sighup' }, 'SIGHUP ignored: settings are read at start only (restart to change them), logs go to stdout (nothing to reopen)'));
  if (isSupervisor(config)) {
    // Logs are JSON lines (pino) in every process, the primary's too.
    const log = pino({ level: config.logLevel }, logDestination);
    supervise(config, (fields, message) => log.warn(fields, message), (code) => process.exit(code));
    return;
  }
  const storage = await openConfiguredStorage(config);
  const app = await buildConfiguredApp(config, storage);
  await listenOrStop(app, () => app.http.listen({ port: config.port, host: config.host }), 'PORT', config.port, config.host);
  const metricsHttp = app.metricsHttp;
  if (metricsHttp) await listenOrStop(app, () => metricsHttp.listen({ port: config.metricsPort, host: config.metricsHost }), 'METRICS_PORT', config.metricsPort, config.metricsHost);
  // WORKERS > 1: the shared port reaches any worker; BOSH requests forwarded to this one need its own address.
  const own = app.cluster ? await listenOwnAddress(app.http, config.clusterAdvertiseUrl) : undefined;
  if (own) await app.cluster!.boshForwarder.advertise(own.url);

  let stopping: string | undefined;
  let stoppingSince = 0;
  /**
   * A second SIGTERM or SIGINT during the graceful shutdown (the second Ctrl-C; Node's own default does the same)
   * ends the process at once rather than after SHUTDOWN_TIMEOUT, as its timer does: what is written stays written
   * (an SQLite write is synchronous, so none is half done when a signal is handled; a PostgreSQL statement commits
   * whole or not at all), and the line counts the accepted messages whose offline write had not finished. Storing
   * those would be the rest of the graceful shutdown, which is what the operator chose not to wait for.
   */
  const force = (signal: string) => {
    app.http.log.error({ event: 'shutdown-forced', signal, ...app.shutdownProgress() },
      `${signal} during the shutdown: exiting at once, with offline writes unfinished`);
    process.exit(1);
  };
  /** Shuts down; `failed` (a lost cluster lease) exits non-zero even when the shutdown went well. */
  const stop = (signal: string, failed = false) => {
    if (stopping !== undefined) {
      // A worker of WORKERS=N is signalled by its primary and, from a terminal, by Ctrl-C as well (the process
      // group): there the second signal is no operator's, and the primary forces it by message (onForcedStop).
      // Nor does a signal force a shutdown no signal began (a lost lease: a SIGTERM is then the first one's).
      // A second one within SAME_SIGNAL_MS is the first one again: under `npm start` a terminal's Ctrl-C reaches
      // both npm and this process (the process group), and npm forwards it too (@npmcli/run-script).
      if (isSignal(signal) && isSignal(stopping) && !isWorker() && performance.now() - stoppingSince >= SAME_SIGNAL_MS) force(signal);
      return;
    }
    stopping = signal;
    stoppingSince = performance.now();
    app.http.log[failed ? 'error' : 'info']({ event: 'shutdown', signal }, 'shutting down');
    // Fires even while offline writes are still going on: they yield to the event loop (shutdown.ts).
    const timer = setTimeout(() => {
      app.http.log.error({ event: 'shutdown-timeout', seconds: config.shutdownTimeout, ...app.shutdownProgress() },
        'SHUTDOWN_TIMEOUT reached: exiting with offline writes unfinished');
      process.exit(1);
    }, config.shutdownTimeout * 1000);
    timer.unref();
    // CLUSTER=redis: SIGTERM is a rolling restart (sessions resume on the other nodes); a lost lease
    // ends them, as the others have taken this node's sessions over already.
    (app.cluster && !failed ? app.leave() : app.shutdown()).then(() => {
      app.http.log.info({ event: 'shutdown-complete', ...app.shutdownProgress() }, 'shut down');
      process.exit(failed ? 1 : 0);
    }, (err: unknown) => {
      app.http.log.error({ err, ...app.shutdownProgress() }, 'shutdown failed');
      process.exit(1);
    });
  };
  // The others count this node dead (its lease ran out: a pause, a partition) and take its sessions over: stop serving.
  app.cluster?.node.onLost(() => stop('cluster-lease-lost', true));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  onForcedStop((signal) => force(signal));
  // Said once the signals are handled: whoever reads this line and sends SIGTERM gets the graceful shutdown. Logged
  // before them, a SIGTERM sent at once could come before the handler and end the process with no shutdown at all
  // (seen in shutdown-log-pipe once tap's hooks no longer loaded into the process, whose own handlers had hidden it).
  // port: the bound one (PORT=0 picks a free port; tests and scripts read it here, not from Fastify's own line).
  const bound = app.http.server.address();
  app.http.log.info({ event: 'listening', domains: config.domains, port: typeof bound === 'object' && bound !== null ? bound.port : config.port, metricsPort: config.metricsPort || undefined, node: app.cluster?.node.id, internal: own?.url }, 'xmpp-web-gateway is serving');
}

const isSignal = (s: string): boolean => s === 'SIGTERM' || s === 'SIGINT';

const LISTEN_PROBLEMS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'the address is in use (another process listens on it)',
  EACCES: 'permission denied (a port below 1024 needs privileges)',
  EADDRNOTAVAIL: 'the address is not one of this machine\'s',
};

/**
 * A listener that cannot be opened (the port in use, a privileged port, a HOST this machine does not have)
 * stops the start with one line naming the variable, as a bad value does, instead of a stack trace; what was
 * opened (storage, the admin socket, the cluster membership) is closed first.
 */
async function listenOrStop(app: App, listen: () => Promise<unknown>, variable: string, port: number, host: string): Promise<void> {
  try {
    await listen();
  } catch (err) {
    const problem = LISTEN_PROBLEMS[String((err as NodeJS.ErrnoException).code)];
    if (problem === undefined) throw err;
    process.stderr.write(`xmpp-web-gateway: configuration error: ${variable}=${port} cannot be listened on at ${host}: ${problem}\n`);
    await app.shutdown().catch(() => undefined);
    process.exit(2);
  }
}

/** The app; a cluster that cannot start (Redis unreachable, NODE_ID taken) stops the start naming the variable. */
async function buildConfiguredApp(config: Config, storage: Storage): Promise<App> {
  try {
    const adminSocket = serverAdminSocketPath(config, (line) => process.stderr.write(`xmpp-web-gateway: warning: ${line}\n`));
    return await buildApp(config, storage, { logger: { level: config.logLevel, stream: logDestination }, unknownUserSecret: loadOrCreateSecret(config.dataDir), adminSocket });
  } catch (err) {
    if (!(err instanceof ClusterStartError) && !(err instanceof AdminSocketError)) throw err;
    process.stderr.write(`xmpp-web-gateway: configuration error: ${err.message}\n`);
    await storage.close();
    process.exit(2);
  }
}

/**
 * SQLite (the default) or PostgreSQL. An SQLite file that cannot be opened
 * stops the start naming the path and the likely cause. A PostgreSQL that cannot be reached
 * stops the start naming DATABASE_URL, without echoing it (it may hold a
 * password).
 */
async function openConfiguredStorage(config: Config): Promise<Storage> {
  try {
    // Before the app and its logger exist: a PostgreSQL connection that fails while idle (the pool's, or the one
    // listening for account changes) is opened again by the storage, and said in the log, not dropped silently.
    const log = pino({ level: config.logLevel }, logDestination);
    return await openStorage({
      backend: config.storage, dataDir: config.dataDir, databaseUrl: config.databaseUrl, credentialCacheBytes: config.credentialCacheBytes,
      connectTimeoutMs: config.databaseConnectTimeout, statementTimeoutMs: config.databaseStatementTimeout,
      onIdleError: (err) => log.warn({ event: 'storage-connection-error', err }, 'a PostgreSQL connection failed; it is opened again'),
      onCredentialsDropped: (account) => log.debug({ event: 'credentials-dropped', account: account ? `${account[1]}@${account[0]}` : '*' },
        'an account changed in the database (NOTIFY): the credentials kept for it are dropped'),
    });
  } catch (err) {
    if (err instanceof StorageOpenError) {
      process.stderr.write(`xmpp-web-gateway: ${err.message}\n`);
      process.exit(1);
    }
    if (config.storage !== 'postgres') throw err;
    process.stderr.write(`xmpp-web-gateway: configuration error: DATABASE_URL: cannot open the PostgreSQL database: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`xmpp-web-gateway: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});

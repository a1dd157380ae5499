/**
 * N real gateway processes in a cluster (`node dist/main.js` with
 * CLUSTER=redis, SM_BACKEND=redis, STORAGE=postgres), one redis-server and
 * one PostgreSQL for them (started here unless given), each process on
 * 127.0.0.1 with its own PORT and NODE_ID (n0, n1, …). A process can be
 * killed (kill -9 by default) and restarted with the same NODE_ID and port.
 * Accounts are created with the storage API against the shared PostgreSQL.
 * stop() ends every process by PID (SIGTERM, then SIGKILL), then the
 * databases this started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { deriveStoredCredentials, openPostgresStorage } from '../../src/storage/index.js';
import { ensureBuilt, MAIN, ROOT } from './built.js';
import { eventually } from './eventually.js';
import { startPostgres, type TestPostgres } from './postgres.js';
import { freePort, startRedis, type TestRedis } from './redis.js';
import { MANY_CLIENTS, PRE_SASL2 } from './server.js';

const LOG_LIMIT = 200_000;

/**
 * The lease (CLUSTER_NODE_TTL) every process gets here, 3 s: a node killed by a test is seen dead, and
 * a restarted one serves again, a few seconds later. On a loaded machine (CI runs three test files at
 * once, a browser among them) a process's renewals stall: 773 ms was logged in one full run. Past the
 * lease less one renewal period its lease lapses: the other nodes answer its BOSH sessions' requests
 * with item-not-found until it renews, and a node that judges the others declares it dead and fences
 * it (it stops serving and exits). With 1.5 s (a stall of 1.2 s), two full runs failed in ways this
 * explains, with no log kept to prove it: a strophe.js login through the balancer ended with CONNFAIL
 * (bosh-forward-process.test.ts), and a process stopped answering under credential-cache.test.ts.
 * 3 s takes a stall of 2.4 s. A process that exits unasked is now reported with its log (onUnaskedExit).
 */
const TEST_NODE_TTL_MS = 3000;

/**
 * For a test that never waits for a lease to run out (no node killed -9 and then seen dead, none
 * restarted under the same NODE_ID): the production default lease, 10 s, renewed every 2 s, which
 * only a stall of 8 s lets lapse.
 */
export const LONG_LEASE: Readonly<Record<string, string>> = { CLUSTER_NODE_TTL: '10000' };

export interface Exit { readonly code: number | null; readonly signal: NodeJS.Signals | null }

export interface GatewayProcess {
  readonly index: number;
  /** Its NODE_ID. */
  readonly id: string;
  readonly port: number;
  readonly wsUrl: string;
  readonly boshUrl: string;
  readonly httpUrl: string;
  /** The PID of the current run; undefined once it exited. */
  pid(): number | undefined;
  /** What the current run wrote (pino JSON lines on stdout, and stderr), the last LOG_LIMIT characters. */
  log(): string;
  /** The current run's log lines that parse as JSON (pino). */
  events(): Array<Record<string, unknown>>;
  /** Resolves when the current run exits. */
  exited(): Promise<Exit>;
  /** The current run is to exit by the test's own doing other than kill() (a signal the test sends itself). */
  expectExit(): void;
}

export interface GatewayCluster {
  readonly nodes: readonly GatewayProcess[];
  readonly redisUrl: string;
  readonly databaseUrl: string;
  /** Sends `signal` (SIGKILL by default, a crash) to process `i` and waits for it to exit. */
  kill(i: number, signal?: NodeJS.Signals): Promise<Exit>;
  /** Starts process `i` again, same NODE_ID and port, and waits until /readyz says ready. */
  restart(i: number): Promise<void>;
  addUser(username: string, password: string, host?: string): Promise<void>;
  /** Ends every process this started (by PID), then the Redis and PostgreSQL it started. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  readonly nodes: number;
  /** More environment for every process (strings, as an operator sets them). */
  readonly env?: Readonly<Record<string, string>>;
  /** Reuse these instead of starting a Redis and a PostgreSQL of our own (they are not stopped then). */
  readonly redis?: TestRedis;
  readonly postgres?: TestPostgres;
  /** Every run's output is also appended, whole, to `{logDir}/{NODE_ID}.log` (a test's trace across restarts). */
  readonly logDir?: string;
  /**
   * Told when a process that was serving exits unasked (not through kill(), stop() or expectExit()), with
   * its exit and the end of its log: a fenced node (cluster-lease-lost) or a crash, which otherwise shows
   * only as refused connections. withGatewayCluster fails its test with it.
   */
  readonly onUnaskedExit?: (report: string) => void;
}

/** GET /readyz: whether it says ready, and what it answered (with WORKERS > 1 each worker's status), for a timeout's message. */
async function readyz(port: number): Promise<{ ready: boolean; answer: string }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    return { ready: res.status === 200, answer: `${res.status} ${await res.text()}` };
  } catch (err) {
    return { ready: false, answer: String(err) };
  }
}

/** One gateway process, re-spawnable with the same environment. */
class Gateway implements GatewayProcess {
  readonly wsUrl: string;
  readonly boshUrl: string;
  readonly httpUrl: string;
  #child: ChildProcess | undefined;
  #exit: Promise<Exit> = Promise.resolve({ code: null, signal: null });
  #log = '';
  /** The current run's exit was asked for (kill(), expectExit()). */
  #asked = false;

  constructor(readonly index: number, readonly id: string, readonly port: number, private readonly env: NodeJS.ProcessEnv,
    private readonly logFile?: string, private readonly onUnaskedExit?: (report: string) => void) {
    this.httpUrl = `http://127.0.0.1:${port}`;
    this.wsUrl = `ws://127.0.0.1:${port}/xmpp-websocket`;
    this.boshUrl = `${this.httpUrl}/http-bind`;
  }

  pid(): number | undefined {
    const c = this.#child;
    return c && c.exitCode === null && c.signalCode === null ? c.pid : undefined;
  }

  log(): string { return this.#log; }

  events(): Array<Record<string, unknown>> {
    return this.#log.split('\n').flatMap((line) => {
      try {
        const v: unknown = JSON.parse(line);
        return typeof v === 'object' && v !== null ? [v as Record<string, unknown>] : [];
      } catch {
        return [];
      }
    });
  }

  exited(): Promise<Exit> { return this.#exit; }

  expectExit(): void { this.#asked = true; }

  async start(): Promise<void> {
    this.#log = '';
    this.#asked = false;
    let serving = false;
    const child = spawn(process.execPath, [MAIN], { cwd: ROOT, env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    this.#exit = new Promise((resolve) => child.once('exit', (code, signal) => {
      // Not while starting: start() fails with the log itself.
      if (serving && !this.#asked && this.#child === child) {
        // The last output comes through its pipes after 'exit' may have been emitted.
        setImmediate(() => this.onUnaskedExit?.(`gateway ${this.id} (pid ${child.pid}) exited unasked, code ${code} signal ${signal}; the end of its log: ${this.#log.slice(-3000)}`));
      }
      resolve({ code, signal });
    }));
    const append = (d: Buffer) => {
      this.#log = (this.#log + d.toString()).slice(-LOG_LIMIT);
      if (this.logFile) appendFileSync(this.logFile, d);
    };
    child.stdout!.on('data', append);
    child.stderr!.on('data', append);
    // A restart waits for the dead run's lease (CLUSTER_NODE_TTL) before it serves.
    let last = 'no answer yet';
    await eventually(async () => {
      if (this.pid() === undefined) throw new Error(`exited: ${this.#log.slice(-2000)}`);
      const { ready, answer } = await readyz(this.port);
      last = answer;
      return ready;
    }, { timeout: 30_000, message: () => `gateway ${this.id} to be ready (last /readyz: ${last}): ${this.#log.slice(-2000)}` });
    serving = true;
  }

  async kill(signal: NodeJS.Signals): Promise<Exit> {
    const pid = this.pid();
    this.#asked = true;
    if (pid !== undefined) process.kill(pid, signal);
    return this.#exit;
  }

  /** SIGTERM (a clean leave), SIGKILL after `graceMs`. */
  async end(graceMs: number): Promise<void> {
    if (this.pid() === undefined) return;
    const timer = setTimeout(() => { const pid = this.pid(); if (pid !== undefined) process.kill(pid, 'SIGKILL'); }, graceMs);
    await this.kill('SIGTERM');
    clearTimeout(timer);
  }
}

export async function startGatewayCluster(opts: ClusterOptions): Promise<GatewayCluster> {
  ensureBuilt(MAIN);
  const redis = opts.redis ?? await startRedis();
  const postgres = opts.postgres ?? await startPostgres();
  const dataDir = mkdtempSync(join(tmpdir(), 'xwg-cluster-'));
  const redisUrl = redis.url();
  const databaseUrl = await postgres.createDatabase();
  const nodes: Gateway[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.end(10_000)));
    if (!opts.postgres) await postgres.stop();
    if (!opts.redis) await redis.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < opts.nodes; i++) {
      const port = await freePort();
      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH, HOST: '127.0.0.1', PORT: String(port), NODE_ID: `n${i}`, XMPP_DOMAIN: 'localhost',
        CLUSTER: 'redis', REDIS_URL: redisUrl, SM_BACKEND: 'redis', STORAGE: 'postgres', DATABASE_URL: databaseUrl,
        // One DATA_DIR: the nodes share the secret for unknown users' fake salts (created by the first).
        DATA_DIR: dataDir, LOG_LEVEL: 'info', SCRAM_ITERATIONS: '4096', ALLOW_INSECURE_PLAIN: 'true', CLUSTER_NODE_TTL: String(TEST_NODE_TTL_MS),
        ...MANY_CLIENTS, ...PRE_SASL2, ...opts.env,
      };
      const node = new Gateway(i, `n${i}`, port, env, opts.logDir && join(opts.logDir, `n${i}.log`), opts.onUnaskedExit);
      nodes.push(node);
      await node.start();
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    nodes, redisUrl, databaseUrl,
    kill: (i, signal = 'SIGKILL') => nodes[i]!.kill(signal),
    restart: (i) => nodes[i]!.start(),
    async addUser(username, password, host = 'localhost') {
      const storage = await openPostgresStorage({ url: databaseUrl });
      try {
        await storage.users.create(host, username, await deriveStoredCredentials(password, 4096));
      } finally {
        await storage.close();
      }
    },
    stop,
  };
}

/** startGatewayCluster, stopped when `t` ends. */
export async function withGatewayCluster(t: Test, opts: ClusterOptions): Promise<GatewayCluster> {
  let ended = false;
  const cluster = await startGatewayCluster({ onUnaskedExit: (report) => { if (!ended) t.fail(report); }, ...opts });
  t.teardown(() => {
    ended = true;
    return cluster.stop();
  });
  return cluster;
}

/**
 * One Redis and one PostgreSQL for a whole test file whose tests each start a cluster: started before its
 * first test, stopped after its last. Each cluster given them (`...backing()` in its options) still gets
 * a clean slate, a Redis database (16 at most per file) and a PostgreSQL database of its own, without the
 * servers being started and stopped for every test (PostgreSQL's initdb and start take a second or two of
 * CPU each time). gateways.ts's clusterBackends does the same for in-process gateways.
 */
export function fileBacking(t: Test): () => { readonly redis: TestRedis; readonly postgres: TestPostgres } {
  let backing: { redis: TestRedis; postgres: TestPostgres } | undefined;
  t.before(async () => {
    const redis = await startRedis();
    backing = { redis, postgres: await startPostgres().catch(async (err: unknown) => { await redis.stop(); throw err; }) };
  });
  t.teardown(async () => {
    await backing?.postgres.stop();
    await backing?.redis.stop();
  });
  return () => {
    if (!backing) throw new Error('fileBacking: used before its t.before ran');
    return backing;
  };
}

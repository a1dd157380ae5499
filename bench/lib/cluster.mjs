// The benchmark's cluster mode (issue 14 item 6): the gateway on Redis and
// PostgreSQL, as one process with write-through on (`gateway-redis`) and as
// WORKERS=2 on the one port (`gateway-cluster`), against a redis-server and a
// PostgreSQL the bench starts on loopback in temporary folders (Debian
// packages; the logic of test/helpers/redis.ts and postgres.ts, which are
// TypeScript). Only processes started here are signalled, by PID.
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DOMAIN, Gateway, cpuSeconds, stopChild } from './servers.mjs';
import { median } from './stats.mjs';

/** The cluster servers and the scenarios each runs (the rest are the single process's and the peers'). */
export const CLUSTER_SERVERS = {
  'gateway-redis': { workers: 1, db: 1, scenarios: ['login-rate', 'msg-throughput', 'resume', 'write-through', 'presence'] },
  'gateway-cluster': { workers: 2, db: 2, scenarios: ['login-rate', 'msg-throughput', 'resume', 'presence'] },
};
/** Write-through off for the same process: SM state and routing in memory, storage still PostgreSQL. */
export const WRITE_THROUGH_OFF = { CLUSTER: 'none', SM_BACKEND: 'memory' };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const PG_ROOT = '/usr/lib/postgresql';

/** Installs a Debian package when `path` is missing (root only), as test/helpers/apt.ts does. */
function ensurePackage(path, pkg) {
  if (existsSync(path)) return;
  if (process.getuid?.() !== 0) throw new Error(`${path} is missing: apt-get install ${pkg}`);
  execFileSync('flock', ['/tmp/xmpp-web-gateway-apt.lock', 'sh', '-c', `test -x ${path} || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${pkg}; }`], { stdio: 'ignore', timeout: 600000 });
  if (!existsSync(path)) throw new Error(`apt-get install ${pkg} did not provide ${path}`);
}

function pgBin() {
  const newest = () => (existsSync(PG_ROOT) ? readdirSync(PG_ROOT) : []).filter((v) => existsSync(join(PG_ROOT, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a))[0];
  if (!newest()) ensurePackage('/usr/bin/pg_ctlcluster', 'postgresql');
  return join(PG_ROOT, newest(), 'bin');
}

/** CPU seconds of a process and all its live descendants (the primary's workers, the postmaster's backends). */
export function treeCpuSeconds(root) {
  const children = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch { /* gone meanwhile */ }
  }
  let total = 0;
  const stack = [root];
  while (stack.length) {
    const pid = stack.pop();
    try { total += cpuSeconds(pid); } catch { /* gone meanwhile */ }
    stack.push(...(children.get(pid) ?? []));
  }
  return total;
}

/** redis-server and PostgreSQL for the whole run, each in a temporary folder on 127.0.0.1. */
export class Backing {
  name = 'redis+postgres';
  /** @param {{ redisPort: number, pgPort: number, log: (s: string) => void }} o */
  constructor(o) {
    this.redisPort = o.redisPort;
    this.pgPort = o.pgPort;
    this.log = o.log;
    /** @type {import('node:child_process').ChildProcess[]} */
    this.children = [];
    this.dirs = [];
  }

  async start() {
    ensurePackage('/usr/bin/redis-server', 'redis-server');
    const rdir = mkdtempSync(join(tmpdir(), 'xwg-bench-redis-'));
    this.dirs.push(rdir);
    this.redis = this.spawn('/usr/bin/redis-server', ['--port', String(this.redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', rdir, '--protected-mode', 'yes', '--loglevel', 'warning'], {});
    await this.until(() => this.cli(['PING']).trim() === 'PONG', 'redis-server');
    await this.startPostgres();
    this.log(`redis-server (port ${this.redisPort}) and PostgreSQL (port ${this.pgPort}) in ${this.dirs.join(' ')}`);
  }

  /** As test/helpers/postgres.ts: initdb, fsync off, no Unix socket; as `postgres` when we are root (it refuses root). */
  async startPostgres() {
    const bin = pgBin();
    const dir = mkdtempSync(join(tmpdir(), 'xwg-bench-pg-'));
    this.dirs.push(dir);
    const asUser = {};
    if (process.getuid?.() === 0) {
      const id = (f) => Number(execFileSync('id', [f, 'postgres'], { encoding: 'utf8' }).trim());
      Object.assign(asUser, { uid: id('-u'), gid: id('-g') });
      chownSync(dir, asUser.uid, asUser.gid);
    }
    execFileSync(join(bin, 'initdb'), ['-D', join(dir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'], { ...asUser, cwd: dir, stdio: 'pipe' });
    this.postgres = this.spawn(join(bin, 'postgres'), ['-D', join(dir, 'data'), '-h', '127.0.0.1', '-p', String(this.pgPort), '-k', '',
      '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=200'], asUser);
    this.psqlOn = (db, sql) => execFileSync(join(bin, 'psql'), ['-h', '127.0.0.1', '-p', String(this.pgPort), '-U', 'postgres', '-d', db, '-qAt', '-v', 'ON_ERROR_STOP=1', '-f', '-'], { encoding: 'utf8', stdio: 'pipe', input: sql });
    this.psql = (sql) => execFileSync(join(bin, 'psql'), ['-h', '127.0.0.1', '-p', String(this.pgPort), '-U', 'postgres', '-d', 'postgres', '-qAt', '-c', sql], { encoding: 'utf8', stdio: 'pipe' });
    await this.until(() => this.psql('SELECT 1').trim() === '1', 'postgres');
  }

  spawn(bin, args, asUser) {
    const child = spawn(bin, args, { ...asUser, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderrTail = '';
    child.stderr.on('data', (d) => { child.stderrTail = (child.stderrTail + d).slice(-2000); });
    this.children.push(child);
    return child;
  }

  async until(ready, what) {
    const end = Date.now() + 30000;
    for (;;) {
      try { if (ready()) return; } catch { /* not yet */ }
      const dead = this.children.find((c) => c.exitCode !== null);
      if (dead || Date.now() > end) throw new Error(`${what} did not start: ${dead?.stderrTail ?? 'timeout'}`);
      await sleep(100);
    }
  }

  /** redis-cli against the bench's Redis (synchronous: a few ms, called at the edges of a measured window). */
  cli(args) {
    return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(this.redisPort), ...args], { encoding: 'utf8', stdio: 'pipe' });
  }

  /** An empty database for one server; its URL. */
  createDatabase(name) {
    this.psql(`DROP DATABASE IF EXISTS ${name}`);
    this.psql(`CREATE DATABASE ${name}`);
    return `postgres://postgres@127.0.0.1:${this.pgPort}/${name}`;
  }

  /**
   * Commands Redis executed so far, by command (INFO commandstats; the
   * commands a Lua script calls count as well), and the scripts among them.
   */
  commandStats() {
    const byCmd = {};
    for (const m of this.cli(['INFO', 'commandstats']).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) byCmd[m[1]] = Number(m[2]);
    return byCmd;
  }

  /** CPU seconds of redis-server and of PostgreSQL (the postmaster and its backends). */
  cpu() {
    return { redis: this.redis ? cpuSeconds(this.redis.pid) : 0, postgres: this.postgres ? treeCpuSeconds(this.postgres.pid) : 0 };
  }

  async stop() {
    // SIGINT is PostgreSQL's fast shutdown; redis-server stops on it too.
    for (const child of this.children.reverse()) await stopChild(child, 'SIGINT', 10000);
    this.children = [];
    this.removeDirs();
  }

  /** For process exit (no await possible): kills what is left, removes the folders. */
  killNow() {
    for (const child of this.children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    this.removeDirs();
  }

  removeDirs() {
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

/** The gateway on Redis and PostgreSQL: WORKERS processes, each a node of the cluster. */
export class GatewayCluster extends Gateway {
  /** @param {ConstructorParameters<typeof Gateway>[0] & { name: string, backing: Backing }} o */
  constructor(o) {
    super(o);
    this.name = o.name;
    this.backing = o.backing;
    Object.assign(this, CLUSTER_SERVERS[o.name]);
    this.databaseUrl = '';
  }

  get redisUrl() { return `redis://127.0.0.1:${this.backing.redisPort}/${this.db}`; }

  settings() {
    return {
      STORAGE: 'postgres', DATABASE_URL: this.databaseUrl, CLUSTER: 'redis', SM_BACKEND: 'redis',
      REDIS_URL: this.redisUrl, WORKERS: String(this.workers), NODE_ID: `bench-${this.name}`,
    };
  }

  async createUsers(users, password) {
    this.databaseUrl = this.backing.createDatabase(this.name.replace(/-/g, '_'));
    return super.createUsers(users, password);
  }

  /** The presence scenario's rosters (Gateway.writeRosters), in this server's PostgreSQL database. @param {string[][]} groups */
  async writeRosters(groups) {
    const db = this.databaseUrl.slice(this.databaseUrl.lastIndexOf('/') + 1);
    const rows = (f) => groups.flatMap((g) => g.flatMap((u) => f(u, g))).join(',');
    const sql = `BEGIN;
      INSERT INTO roster_versions (host, username, version) VALUES ${rows((u) => [`('${DOMAIN}', '${u}', 1)`])} ON CONFLICT (host, username) DO UPDATE SET version = 1;
      INSERT INTO roster_items (host, username, jid, name, subscription, ask, approved, groups) VALUES ${rows((u, g) => g.filter((v) => v !== u).map((v) => `('${DOMAIN}', '${u}', '${v}@${DOMAIN}', NULL, 'both', false, false, '[]')`))}
        ON CONFLICT (host, username, jid) DO UPDATE SET subscription = 'both', ask = false, approved = false;
      COMMIT;`;
    this.backing.psqlOn(db, sql);
  }

  /** Fresh cluster state for every start; ready once every worker is a member of the cluster. */
  async start() {
    this.backing.cli(['-n', String(this.db), 'FLUSHDB']);
    await super.start();
    if (this.env().CLUSTER !== 'redis') return;
    const end = Date.now() + 30000;
    while (Number(this.backing.cli(['-n', String(this.db), 'SCARD', `xwg:${this.db}:nodes`]).trim()) < this.workers) {
      if (Date.now() > end) throw new Error(`${this.name}: not all ${this.workers} workers joined the cluster in 30 s`);
      await sleep(100);
    }
  }

  /** The whole system's CPU: the primary and its workers, Redis, PostgreSQL. */
  cpuSeconds() {
    const b = this.backing.cpu();
    return treeCpuSeconds(this.pid) + b.redis + b.postgres;
  }

  /** What the meter reads at both edges of a measured window. */
  sample() {
    const b = this.backing.cpu();
    return { gateway: treeCpuSeconds(this.pid), ...b, commands: this.backing.commandStats() };
  }
}

/**
 * The figures of one measured window of a cluster server: Redis commands
 * per unit (login, resume, message), the scripts among them, the busiest
 * commands, and the CPU of Redis and PostgreSQL.
 */
export function clusterFigures(samples, wall, units, unit) {
  const [a, b] = samples ?? [];
  if (!a || !b) return {};
  const diff = Object.entries(b.commands).map(([cmd, n]) => [cmd, n - (a.commands[cmd] ?? 0)]).filter(([cmd, n]) => n > 0 && cmd !== 'info');
  const total = diff.reduce((s, [, n]) => s + n, 0);
  const scripts = diff.filter(([cmd]) => /^(eval|evalsha|fcall)/.test(cmd)).reduce((s, [, n]) => s + n, 0);
  const top = diff.sort((x, y) => y[1] - x[1]).slice(0, 8).map(([cmd, n]) => `${cmd} ${(n / units).toFixed(2)}`).join(', ');
  return {
    [`redisOpsPer${unit}`]: total / units, [`redisScriptsPer${unit}`]: scripts / units, redisTop: top,
    redisCpuPct: (100 * (b.redis - a.redis)) / wall, postgresCpuPct: (100 * (b.postgres - a.postgres)) / wall,
    gatewayCpuPct: (100 * (b.gateway - a.gateway)) / wall,
  };
}

/** The write-through scenario's line from its two windows (lib/../run.mjs onOff). */
export function writeThroughFigures({ on, off }) {
  return {
    msgsPerSecOn: on.msgsPerSec, msgsPerSecOff: off.msgsPerSec, costPct: 100 * (1 - on.msgsPerSec / off.msgsPerSec),
    // Messages per CPU-second of the whole system (gateway, Redis, PostgreSQL): the work each costs, steadier than the rate on shared cores.
    msgsPerCpuSecOn: on.msgsPerCpuSec, msgsPerCpuSecOff: off.msgsPerCpuSec, costPerCpuPct: 100 * (1 - on.msgsPerCpuSec / off.msgsPerCpuSec),
    // The measured windows (CLOCK_MONOTONIC µs), to cut a --cpu-prof of each process to them (lib/profile.mjs).
    monoUsOn: on.monoUs, monoUsOff: off.monoUs, deliveredOn: on.delivered, deliveredOff: off.delivered,
    p99On: on.p99, p99Off: off.p99, redisOpsPerMsg: on.redisOpsPerMsg, redisScriptsPerMsg: on.redisScriptsPerMsg, redisTop: on.redisTop,
    redisCpuPct: on.redisCpuPct, gatewayCpuPctOn: on.gatewayCpuPct, gatewayCpuPctOff: off.gatewayCpuPct,
    otherCpuPct: Math.max(on.otherCpuPct ?? 0, off.otherCpuPct ?? 0),
    failedSetup: (on.failedSetup ?? 0) + (off.failedSetup ?? 0), setupErrors: [...(on.setupErrors ?? []), ...(off.setupErrors ?? [])].slice(0, 3),
  };
}

const PEERS = ['prosody', 'ejabberd'];

/**
 * The "Cluster" section: the cluster's rates against the peers and the
 * single process, issue 14's goals, the cost of write-through and the Redis
 * commands per login, resume and message. '' when no cluster server ran.
 */
export function clusterSection(med, results, fmt) {
  const names = Object.keys(CLUSTER_SERVERS).filter((s) => Object.values(med).some((byServer) => byServer[s]));
  if (!names.length) return '';
  const get = (scen, srv, key) => { const x = med[scen]?.[srv]; return x && !x.notAvailable ? x[key] : undefined; };
  const best = (scen, key) => PEERS.map((s) => [s, get(scen, s, key)]).filter(([, x]) => Number.isFinite(x)).sort((a, b) => b[1] - a[1])[0];
  const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b ? `${(a / b).toFixed(2)}×` : '–');
  const cols = ['gateway', ...names, ...PEERS];
  const lines = [`| metric | ${cols.join(' | ')} | cluster / best peer | cluster / gateway |`, `|---|${cols.map(() => '---:').join('|')}|---:|---:|`];
  for (const [scen, key, label] of [['login-rate', 'sessionsPerSec', 'logins/s'], ['resume', 'resumesPerSec', 'resumes/s'], ['msg-throughput', 'msgsPerSec', 'messages/s (WS)'],
    ['login-rate', 'loginsPerCpuSec', 'logins per CPU-s (cluster: workers + Redis + PostgreSQL)'], ['resume', 'resumesPerCpuSec', 'resumes per CPU-s'], ['msg-throughput', 'msgsPerCpuSec', 'messages per CPU-s'],
    ['login-rate', 'serverCpuPct', 'server CPU % (logins)'], ['resume', 'p99', 'reconnect+resume p99 ms']]) {
    const c = get(scen, 'gateway-cluster', key);
    const b = best(scen, key);
    const context = /CpuPct$|p99/.test(key);
    lines.push(`| ${label} | ${cols.map((s) => fmt(get(scen, s, key), key === 'p99' ? 2 : 0)).join(' | ')} | ${context ? '' : ratio(c, b?.[1])} | ${context ? '' : ratio(c, get(scen, 'gateway', key))} |`);
  }
  const goal = (scen, key, what) => {
    const c = get(scen, 'gateway-cluster', key);
    const b = best(scen, key);
    if (c === undefined || !b) return `| ${what} | ≥ 1.5× best peer | cluster ${fmt(c)}; best peer ${b ? `${b[0]} ${fmt(b[1])}` : '–'} | not measured |`;
    return `| ${what} | ≥ 1.5× best peer | cluster ${fmt(c)} vs ${b[0]} ${fmt(b[1])}: ${(c / b[1]).toFixed(2)}× | ${c >= 1.5 * b[1] ? '**met**' : '**not met**'} |`;
  };
  const cost = get('write-through', 'gateway-redis', 'costPct');
  const targets = ['| goal (issue 14 item 6) | target | measured (medians) | verdict |', '|---|---|---|---|',
    goal('login-rate', 'sessionsPerSec', 'cluster (WORKERS=2) logins/s'), goal('resume', 'resumesPerSec', 'cluster (WORKERS=2) resumes/s'),
    `| write-through cost, one process | ≤ 15 % of messages/s | ${fmt(get('write-through', 'gateway-redis', 'msgsPerSecOn'))} on vs ${fmt(get('write-through', 'gateway-redis', 'msgsPerSecOff'))} off msg/s: ${fmt(cost, 1)} % (per system CPU-s: ${fmt(get('write-through', 'gateway-redis', 'costPerCpuPct'), 1)} %) | ${cost === undefined ? 'not measured' : cost <= 15 ? '**met**' : '**not met**'} |`];
  return [lines.join('\n'), targets.join('\n'), redisTable(names, get, results, fmt)].join('\n\n');
}

/** Redis commands per login, resume and message, with the busiest commands of the last repetition. */
function redisTable(names, get, results, fmt) {
  const lines = ['| server | per | Redis commands | of which scripts (EVAL/EVALSHA) | Redis CPU % | Redis CPU µs per unit | busiest commands per unit (last repetition) |', '|---|---|---:|---:|---:|---:|---|'];
  for (const name of names) {
    for (const [scen, unit, what, rate] of [['login-rate', 'Login', 'login', 'sessionsPerSec'], ['resume', 'Resume', 'resume', 'resumesPerSec'], ['msg-throughput', 'Msg', 'message', 'msgsPerSec']]) {
      const ops = get(scen, name, `redisOpsPer${unit}`);
      if (ops === undefined) continue;
      const last = results.filter((r) => r.scenario === scen && r.server === name && r.redisTop).at(-1);
      // Medians of each run's Redis CPU per unit (its share of a core over its rate).
      const us = median(results.filter((r) => r.scenario === scen && r.server === name && !r.error && r[rate] > 0).map((r) => (1e4 * r.redisCpuPct) / r[rate]));
      lines.push(`| ${name} | ${what} | ${fmt(ops, 2)} | ${fmt(get(scen, name, `redisScriptsPer${unit}`), 2)} | ${fmt(get(scen, name, 'redisCpuPct'))} | ${fmt(us, 1)} | ${last?.redisTop ?? ''} |`);
    }
  }
  return lines.join('\n');
}

/** The setup lines of RESULTS.md for the cluster servers. */
export function clusterSetup(servers) {
  if (!servers.some((s) => CLUSTER_SERVERS[s])) return '';
  return [
    '- Cluster servers (issue 14): a redis-server (no persistence) and a PostgreSQL (fsync off) started by the bench on 127.0.0.1 in temporary folders, shared by both; each cluster server has its own Redis database (flushed before every start) and PostgreSQL database, with the same accounts and SCRAM cost (`user import`, 4096 iterations).',
    '  `gateway-redis`: one process, `CLUSTER=redis SM_BACKEND=redis STORAGE=postgres` (Redis write-through of the XEP-0198 state, session directory and delivery in Redis). `gateway-cluster`: the same with `WORKERS=2` (two worker processes accepting on the one port, WORKERS_SCHEDULING=none, each a cluster node): a pair\'s two sessions are on different workers about half the time, so their messages cross Redis streams.',
    '  Their CPU figures are the whole system\'s: the gateway\'s processes, redis-server and PostgreSQL (postmaster and backends). Redis commands are INFO commandstats deltas over the measured window divided by the logins, resumes or delivered messages in it (commands a Lua script calls count; the background of leases and blocking reads is included and small).',
    '- write-through (gateway-redis only): msg-throughput with write-through on, then on a fresh process with `CLUSTER=none SM_BACKEND=memory` (storage still PostgreSQL), in one run; the cost is 1 − on/off of messages/s, and of messages per system CPU-second.',
  ].join('\n');
}

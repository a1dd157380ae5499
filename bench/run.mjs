#!/usr/bin/env node
// xmpp-web-gateway benchmark (issue 6): the gateway against Prosody 0.12 and
// ejabberd 23.01 on the same machine, in the same run, each server restarted
// for every scenario and repetition, plus a bare `ws` echo server as the
// transport ceiling. See bench/README.md.
//
//   npm run bench                 full: 3 repetitions, scale curve, writes bench/RESULTS.md
//   npm run bench -- --quick      1 repetition, smaller N, < 3 min, writes bench/RESULTS-quick.md
//   npm run bench -- --smoke      gateway only, tiny N, < 30 s, prints the table, writes nothing
//   options: --reps N  --servers gateway,prosody,ejabberd  --scenarios login-rate,idle-memory,msg-throughput,bosh,resume,ceiling,slow-reader,bosh-amplification,bystander-ping,shaping,archiving
//            --profile (also profile the gateway with --cpu-prof: msg-throughput, login-rate, bosh, resume)  --only-profile (writes no results file)
//            --build (npm run build first)  --out FILE  --no-write  --keep (keep the work folder)  --workers N  --no-scale  --scale-all (scale curve for the peers too)
//            --baseline <git-ref> (also run that revision of the gateway, built in a temporary worktree, as gateway@<commit>, taking turns with the current tree)
import { Worker } from 'node:worker_threads';
import { spawnSync } from 'node:child_process';
import { cpus, loadavg, tmpdir, totalmem, release as osRelease } from 'node:os';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, statSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve as resolvePath } from 'node:path';
import { Ejabberd, Echo, Gateway, Prosody, ROOT, cpuSeconds, initProc, machineBusySeconds, rssKiB, snapshotGateway, versions } from './lib/servers.mjs';
import { KeyCache } from './lib/scram.mjs';
import { Histogram, median, now } from './lib/stats.mjs';
import { summarizeProfile } from './lib/profile.mjs';
import { SHAPING_OFF, boshAmplification, bystanderPing, slowReader } from './lib/flow.mjs';
import { BaselineTree, beforeAfter, isGateway } from './lib/baseline.mjs';
import { Backing, CLUSTER_SERVERS, GatewayCluster, WRITE_THROUGH_OFF, clusterFigures, clusterSection, clusterSetup, writeThroughFigures } from './lib/cluster.mjs';

const PASSWORD = 'bench-Pa55word';
const ALL_SERVERS = ['gateway', 'prosody', 'ejabberd', ...Object.keys(CLUSTER_SERVERS)];
const SCENARIOS = ['login-rate', 'idle-memory', 'msg-throughput', 'bosh', 'resume', 'ceiling', 'slow-reader', 'bosh-amplification', 'bystander-ping', 'shaping', 'write-through', 'archiving', 'presence'];
/** Flow-control scenarios (issue 10) the peers have no equivalent of (the gateway's own limits and settings). */
const GATEWAY_ONLY = new Set(['slow-reader', 'bosh-amplification', 'shaping', 'archiving', 'presence']);
/** Whether `scenario` runs on server `name`: the cluster servers (lib/cluster.mjs) run their own few. */
const runsOn = (name, scenario) => (CLUSTER_SERVERS[name] ? CLUSTER_SERVERS[name].scenarios.includes(scenario)
  : scenario !== 'write-through' && (!GATEWAY_ONLY.has(scenario) || isGateway(name)));
const BODY = 'The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. 0123456789abcdef'.slice(0, 100);

/** Sizes per mode. Times in ms. */
const MODES = {
  smoke: {
    reps: 1, servers: ['gateway'], users: 80, settle: 500, watchdog: 120000, quiet: null, warmSessions: 20,
    login: { n: 20, c: 10, warm: 5 }, idle: { n: 40, c: 20 },
    msg: { pairs: 4, window: 4, warm: 200, dur: 1000 }, bosh: { pairs: 2, window: 2, warm: 200, dur: 1000 },
    resume: { k: 10, c: 5 }, scale: null, presence: { groups: 2, k: 10, window: 2, warm: 300, dur: 1000, readyMs: 5000, settle: 1000, interval: 0 },
    flow: { slowReader: { requests: 200, settle: 1000, maxMs: 10000 }, boshAmp: { requests: 300, settle: 1000, maxMs: 10000 }, ping: { messages: 2000, maxMs: 20000 } },
  },
  quick: {
    reps: 1, servers: ALL_SERVERS, users: 1000, settle: 2000, watchdog: 600000, warmSessions: 200, quiet: { perRun: 2000, total: 10000 }, retries: 1,
    login: { n: 500, c: 50, warm: 50 }, idle: { n: 1000, c: 100 },
    msg: { pairs: 20, window: 8, warm: 1000, dur: 3000 }, bosh: { pairs: 10, window: 2, warm: 1000, dur: 3000 },
    resume: { k: 200, c: 20 }, scale: null, presence: { groups: 5, k: 20, window: 2, warm: 1000, dur: 3000, readyMs: 10000, settle: 1000, interval: 0 },
    flow: { slowReader: { requests: 2000, settle: 2000, maxMs: 20000 }, boshAmp: { requests: 3000, settle: 2000, maxMs: 20000 }, ping: { messages: 50000, maxMs: 60000 } },
  },
  full: {
    reps: 3, servers: ALL_SERVERS, users: 10000, settle: 3000, watchdog: 4 * 3600000, warmSessions: 200, quiet: { perRun: 60000, total: 1800000 }, retries: 2,
    login: { n: 2000, c: 50, warm: 100 }, idle: { n: 5000, c: 100 },
    msg: { pairs: 50, window: 8, warm: 1500, dur: 6000 }, bosh: { pairs: 30, window: 2, warm: 1500, dur: 6000 },
    resume: { k: 1000, c: 50 }, scale: { points: [1000, 10000], reps: 1, c: 100 }, presence: { groups: 10, k: 20, window: 2, warm: 1500, dur: 6000, readyMs: 15000, settle: 1000, interval: 0 },
    flow: { slowReader: { requests: 3000, settle: 3000, maxMs: 30000 }, boshAmp: { requests: 3000, settle: 3000, maxMs: 30000 }, ping: { messages: 50000, maxMs: 90000 } },
  },
};

// ---------------------------------------------------------------- arguments
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const opt = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
const modeName = flag('--smoke') ? 'smoke' : flag('--quick') ? 'quick' : 'full';
const mode = structuredClone(MODES[modeName]);
if (opt('--reps')) mode.reps = Number(opt('--reps'));
// A run on a busy shared machine needs more time, and repeating disturbed runs only doubles it.
if (opt('--watchdog')) mode.watchdog = 1000 * Number(opt('--watchdog'));
if (opt('--retries')) mode.retries = Number(opt('--retries'));
// --presence groups=10,k=20,dur=5000: the presence scenario's sizes (groups, accounts per group, window, warm, dur ms, readyMs, settle ms, interval ms: each session at most one change per interval, 0 = as fast as the window allows).
for (const kv of opt('--presence')?.split(',') ?? []) {
  const [k, v] = kv.split('=');
  if (!(k in mode.presence) || !Number.isFinite(Number(v))) { process.stderr.write(`--presence: unknown ${kv} (keys: ${Object.keys(mode.presence).join(', ')})\n`); process.exit(2); }
  mode.presence[k] = Number(v);
}
const onlyProfile = flag('--only-profile');
const serverNames = onlyProfile ? ['gateway'] : (opt('--servers')?.split(',') ?? mode.servers).filter((s) => ALL_SERVERS.includes(s));
const scenarioNames = onlyProfile ? [] : (opt('--scenarios')?.split(',') ?? SCENARIOS).filter((s) => SCENARIOS.includes(s));
const doProfile = flag('--profile') || onlyProfile;
const workerCount = Number(opt('--workers') ?? 2);
const baselineRef = opt('--baseline');
/** --gateway-root DIR: measure DIR's dist/ (another checkout's build, same package-lock) instead of this tree's, for every gateway-family server. */
const gatewayRoot = opt('--gateway-root') ? resolvePath(/** @type {string} */ (opt('--gateway-root'))) : ROOT;
/** Where the results go: RESULTS.md for full runs, RESULTS-quick.md for quick ones, nowhere for smoke. */
const outFileFor = (m) => (flag('--no-write') || (flag('--only-profile') && !opt('--out')) ? undefined
  : opt('--out') ?? (m === 'full' ? join(ROOT, 'bench', 'RESULTS.md') : m === 'quick' ? join(ROOT, 'bench', 'RESULTS-quick.md') : undefined));

const log = (s) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The reconnect scenario (issue 15 item 8) is a script of its own: one gateway behind a delaying proxy, no worker pool.
if (opt('--scenarios') === 'reconnect') {
  const r = spawnSync(process.execPath, [join(ROOT, 'bench', 'reconnect.mjs'), ...argv], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}

if (flag('--baseline') && (!baselineRef || baselineRef.startsWith('--'))) { log('--baseline needs a git revision, e.g. --baseline a1c1618'); process.exit(2); }
if (baselineRef && (onlyProfile || !serverNames.includes('gateway'))) { log('--baseline compares with the current gateway: keep gateway in --servers (and no --only-profile)'); process.exit(2); }

// ---------------------------------------------------------------- file descriptors
// Spawned servers inherit the runner's limit; the generator holds one socket per session.
const needFds = Math.max(mode.users, mode.idle.n) + 4096;
{
  const soft = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim()) || 0;
  const hard = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).stdout.trim();
  const hardN = hard === 'unlimited' ? Infinity : Number(hard);
  if (soft < needFds && !process.env.BENCH_ULIMIT_RAISED) {
    const target = Math.min(hardN, Math.max(needFds, 65536));
    if (target > soft) {
      log(`raising ulimit -n from ${soft} to ${target}`);
      const r = spawnSync('sh', ['-c', `ulimit -n ${target} && exec "$0" "$@"`, process.execPath, ...process.execArgv, process.argv[1], ...argv],
        { stdio: 'inherit', env: { ...process.env, BENCH_ULIMIT_RAISED: '1' } });
      process.exit(r.status ?? 1);
    }
    log(`warning: ulimit -n is ${soft} (hard ${hard}); ${needFds} wanted`);
  }
}

// ---------------------------------------------------------------- worker pool
class Pool {
  constructor(n) {
    this.seq = 0;
    /** @type {Map<number, { resolve: Function, reject: Function }>} */
    this.pending = new Map();
    this.workers = Array.from({ length: n }, (_, i) => {
      const w = new Worker(new URL('./lib/worker.mjs', import.meta.url), { workerData: { password: PASSWORD, localAddress: `127.0.1.${10 + i}` } });
      w.on('message', (m) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (m.error) p.reject(new Error(`worker ${i}: ${m.error}`)); else p.resolve(m.result);
      });
      w.on('error', (err) => { for (const p of this.pending.values()) p.reject(err); this.pending.clear(); });
      return w;
    });
  }

  call(i, cmd, args = {}) {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.workers[i].postMessage({ id, cmd, ...args });
    });
  }

  /** Calls every worker with its own arguments. */
  each(cmd, argsOf) { return Promise.all(this.workers.map((_, i) => this.call(i, cmd, argsOf(i)))); }

  async close() { await Promise.all(this.workers.map((w) => w.terminate())); }
}

/** Splits a list into `n` interleaved parts. */
const split = (list, n) => Array.from({ length: n }, (_, i) => list.filter((_, j) => j % n === i));
/** Splits users into pairs, pairs into `n` parts (a pair never spans two workers). */
const splitPairs = (list, n) => split(Array.from({ length: list.length >> 1 }, (_, k) => [list[2 * k], list[2 * k + 1]]), n).map((ps) => ps.flat());
const range = (from, to) => Array.from({ length: Math.max(0, to - from) }, (_, i) => `u${from + i}`);
const merged = (parts) => parts.reduce((h, p) => h.merge(p.hist), new Histogram());
const sum = (parts, k) => parts.reduce((s, p) => s + (p[k] ?? 0), 0);
const firstErrors = (parts) => parts.flatMap((p) => p.errors ?? []).slice(0, 3);

async function freePort(preferred) {
  const base = preferred + Number(process.env.BENCH_PORT_OFFSET ?? 0);
  for (let p = base; p < base + 500; p += 7) {
    const ok = await new Promise((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(p, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (ok) return p;
  }
  throw new Error(`no free port near ${preferred + Number(process.env.BENCH_PORT_OFFSET ?? 0)}`);
}

// ---------------------------------------------------------------- measuring
/** The server's CPU (meter) over the window from startAt to endAt (now() ms). */
async function meterWindow(srv, startAt, endAt) {
  await sleep(Math.max(0, startAt - now()));
  const stop = meter(srv);
  await sleep(Math.max(0, endAt - now()));
  return stop();
}

/**
 * CPU of the server (a cluster server: its processes, Redis and PostgreSQL)
 * and of this whole generator process (all threads), between two instants;
 * a cluster server's Redis commands too (`samples`, for clusterFigures).
 */
function meter(srv) {
  const pid = srv?.pid;
  const serverCpu = () => (srv.cpuSeconds ? srv.cpuSeconds() : cpuSeconds(pid));
  const s0 = srv?.sample?.();
  const a = { server: pid ? serverCpu() : 0, gen: process.cpuUsage(), t: now(), machine: machineBusySeconds(), mono: monoUs() };
  return () => {
    const g = process.cpuUsage(a.gen);
    const wall = (now() - a.t) / 1000;
    const server = pid ? serverCpu() - a.server : NaN;
    const gen = (g.user + g.system) / 1e6;
    const machine = machineBusySeconds() - a.machine;
    return {
      wall, serverCpu: server, serverCpuPct: (100 * server) / wall, genCpu: gen, genCpuPct: (100 * gen) / wall,
      // Everything else the machine ran meanwhile (kernel softirq work for loopback included): other users of the cores.
      otherCpuPct: (100 * (machine - gen - (pid ? server : 0))) / wall,
      // CLOCK_MONOTONIC µs, the clock of V8's profiler: the measured window inside a .cpuprofile.
      monoUs: [a.mono, monoUs()],
      samples: s0 && [s0, srv.sample()],
    };
  };
}

const monoUs = () => Number(process.hrtime.bigint() / 1000n);

/** Median of a few RSS samples. */
async function rssSample(pid, n = 3) {
  const xs = [];
  for (let i = 0; i < n; i++) { xs.push(rssKiB(pid)); if (i + 1 < n) await sleep(250); }
  return median(xs);
}

/** Whether the scale curve runs on this server: the gateway's only, unless --scale-all. */
function scalesOn(name) {
  return Boolean(mode.scale) && !flag('--no-scale') && (isGateway(name) || flag('--scale-all'));
}

/**
 * Accounts to create on a server: all of mode.users where the scale curve runs (its 10k sessions), else
 * only what the scenarios use (ejabberd creates about 90 accounts/s, so this keeps the full run short).
 */
function accountsFor(name) {
  return presenceFirst(name) + (scenarioNames.includes('presence') && runsOn(name, 'presence') ? mode.presence.groups * mode.presence.k : 0);
}

/** The accounts of every scenario but presence, u0…; presence's groups come after them (they have rosters, the others none). */
function presenceFirst(name) {
  if (scalesOn(name)) return mode.users;
  return Math.min(mode.users, Math.max(mode.idle.n, mode.login.n + mode.login.warm, mode.resume.k, 2 * mode.msg.pairs, 2 * mode.bosh.pairs) + mode.warmSessions);
}

/** The presence scenario's groups of a server: mode.presence.groups × k accounts, each group all mutual contacts. */
function presenceGroups(name) {
  const { groups, k } = mode.presence;
  const first = presenceFirst(name);
  return Array.from({ length: groups }, (_, g) => range(first + g * k, first + (g + 1) * k));
}

/** How long a server may take to answer one step of a login or resume before the session counts as failed. */
const ANSWER_TIMEOUT_MS = 15000;

const QUIET_PCT = 25;
/**
 * Waits (at most maxMs) until the rest of the machine uses less than
 * QUIET_PCT % of a core, sampling /proc/stat over 0.5 s windows.
 */
async function waitQuiet(maxMs) {
  if (maxMs <= 0) return undefined;
  const t0 = Date.now();
  for (;;) {
    const m0 = machineBusySeconds();
    const g0 = process.cpuUsage();
    const w0 = now();
    await sleep(500);
    const g = process.cpuUsage(g0);
    const other = (100 * (machineBusySeconds() - m0 - (g.user + g.system) / 1e6)) / ((now() - w0) / 1000);
    if (other < QUIET_PCT || Date.now() - t0 >= maxMs) return { waitedMs: Date.now() - t0, otherPct: Math.round(other) };
  }
}

let sourceCounter = 0;
/** A fresh loopback source address per worker and server start, so no TCP 4-tuple in TIME_WAIT is reused. */
async function freshSources(pool) {
  sourceCounter++;
  await pool.each('source', (i) => ({ address: `127.${1 + Math.floor(sourceCounter / 250) % 250}.${1 + (sourceCounter % 250)}.${10 + i}` }));
}

async function loginAll(pool, url, users, concurrency, timeout = ANSWER_TIMEOUT_MS) {
  const parts = await pool.each('login', (i) => ({ url, users: split(users, pool.workers.length)[i], concurrency: Math.max(1, Math.ceil(concurrency / pool.workers.length)), timeout }));
  return {
    ok: sum(parts, 'ok'), failed: sum(parts, 'failed'), errors: firstErrors(parts), hist: merged(parts),
    t0: Math.min(...parts.map((p) => p.t0)), t1: Math.max(...parts.map((p) => p.t1)), t1Ok: Math.max(...parts.map((p) => p.t1Ok)), misses: Math.max(...parts.map((p) => p.misses)),
  };
}

/** Message flows between pairs (WS or BOSH) or over echo connections; the measured window is [startAt, endAt]. */
async function flows(pool, srv, transport, url, p, firstUser = 0) {
  const users = range(firstUser, firstUser + 2 * p.pairs);
  const parts = splitPairs(users, pool.workers.length);
  const setup = await pool.each('pairsSetup', (i) => ({ url, transport, users: parts[i], concurrency: 20, timeout: ANSWER_TIMEOUT_MS }));
  if (setup.some((s) => s.notAvailable)) return { notAvailable: true, errors: firstErrors(setup) };
  const failedSetup = sum(setup, 'failed');
  const startAt = now() + 200 + p.warm;
  const endAt = startAt + p.dur;
  const measured = meterWindow(srv, startAt, endAt);
  const res = await pool.each('pairsRun', () => ({ startAt, endAt, window: p.window, body: BODY, drainMs: 3000, transport }));
  const m = await measured;
  const hist = merged(res);
  const delivered = sum(res, 'delivered');
  const secs = p.dur / 1000;
  return {
    pairs: sum(setup, 'pairs'), window: p.window, failedSetup, setupErrors: firstErrors(setup),
    delivered, msgsPerSec: delivered / secs, msgsPerCpuSec: m ? delivered / m.serverCpu : NaN,
    p50: hist.quantile(0.5), p99: hist.quantile(0.99), max: hist.max,
    sent: sum(res, 'sent'), bounced: sum(res, 'bounced'), leftInFlight: sum(res, 'inflight'),
    // XEP-0198 <r/> the server sent per delivered message (each answered with <a/>: two more frames).
    ackRequestsPerMsg: sum(res, 'acksAnswered') / Math.max(1, sum(res, 'deliveredAll')),
    serverCpuPct: m?.serverCpuPct, genCpuPct: m?.genCpuPct, otherCpuPct: m?.otherCpuPct, monoUs: m?.monoUs,
    ...clusterFigures(m?.samples, m?.wall, delivered, 'Msg'),
  };
}

/**
 * Before an RSS baseline: mode.warmSessions logins, closed cleanly, so one-time
 * growth (JIT code, V8's young generation growing to its working size, Lua
 * and BEAM allocator pools) is not charged to the measured sessions.
 */
async function warmUp(pool, srv, concurrency) {
  const users = accountsFor(srv.name);
  const n = Math.min(mode.warmSessions, users);
  await loginAll(pool, srv.wsUrl, range(users - n, users), concurrency);
  await pool.each('closeAll', () => ({}));
  await sleep(1000);
}

/** The generator's SCRAM key cache, for the scenarios that log in from this thread (flow control). */
const keys = { /** @type {KeyCache | undefined} */ cache: undefined };

const SCENARIO_FNS = {
  async 'login-rate'(pool, srv) {
    const p = mode.login;
    const warm = await loginAll(pool, srv.wsUrl, range(p.n, p.n + p.warm), p.c);
    const stop = meter(srv);
    const r = await loginAll(pool, srv.wsUrl, range(0, p.n), p.c);
    const m = stop();
    return {
      n: p.n, concurrency: p.c, ok: r.ok, failed: r.failed + warm.failed, errors: [...warm.errors, ...r.errors].slice(0, 3),
      sessionsPerSec: r.ok / ((r.t1Ok - r.t0) / 1000), p50: r.hist.quantile(0.5), p99: r.hist.quantile(0.99),
      loginsPerCpuSec: r.ok / m.serverCpu, serverCpuPct: m.serverCpuPct, genCpuPct: m.genCpuPct, otherCpuPct: m.otherCpuPct, monoUs: m.monoUs, keyCacheMisses: r.misses,
      ...clusterFigures(m.samples, m.wall, r.ok, 'Login'),
    };
  },

  async 'idle-memory'(pool, srv) {
    const p = mode.idle;
    await warmUp(pool, srv, p.c);
    const rss0 = await rssSample(srv.pid);
    const half = p.n >> 1;
    const r1 = await loginAll(pool, srv.wsUrl, range(0, half), p.c);
    await sleep(1000);
    const rssHalf = await rssSample(srv.pid);
    const r2 = await loginAll(pool, srv.wsUrl, range(half, p.n), p.c);
    await sleep(mode.settle);
    const rss1 = await rssSample(srv.pid);
    const open = sum(await pool.each('count', () => ({})), 'open');
    const ok = r1.ok + r2.ok;
    return {
      n: p.n, ok, failed: r1.failed + r2.failed, errors: [...r1.errors, ...r2.errors].slice(0, 3), openAtEnd: open,
      rssBeforeKiB: rss0, rssHalfKiB: rssHalf, rssAfterKiB: rss1,
      kibPerSession: (rss1 - rss0) / ok,
      // The second half alone: one-time growth (e.g. V8's young generation growing to its working size) mostly happens in the first.
      kibPerSessionMarginal: (rss1 - rssHalf) / r2.ok,
      setupPerSec: ok / ((r1.t1 - r1.t0 + r2.t1 - r2.t0) / 1000),
    };
  },

  async 'msg-throughput'(pool, srv) {
    return flows(pool, srv, 'ws', srv.wsUrl, mode.msg);
  },

  async bosh(pool, srv) {
    return flows(pool, srv, 'bosh', srv.boshUrl, mode.bosh);
  },

  async resume(pool, srv) {
    const p = mode.resume;
    const setup = await loginAll(pool, srv.wsUrl, range(0, p.k), p.c);
    await sleep(300);
    const stop = meter(srv);
    const parts = await pool.each('resumeRun', () => ({ url: srv.wsUrl, concurrency: Math.max(1, Math.ceil(p.c / pool.workers.length)), timeout: ANSWER_TIMEOUT_MS }));
    const m = stop();
    const hist = merged(parts);
    const ok = sum(parts, 'ok');
    const t0 = Math.min(...parts.map((x) => x.t0));
    const t1 = Math.max(...parts.map((x) => x.t1Ok));
    return {
      k: p.k, concurrency: p.c, setupFailed: setup.failed, ok, failed: sum(parts, 'failed'), errors: [...setup.errors, ...firstErrors(parts)].slice(0, 3),
      resumesPerSec: ok / ((t1 - t0) / 1000), p50: hist.quantile(0.5), p99: hist.quantile(0.99), resumesPerCpuSec: ok / m.serverCpu, serverCpuPct: m.serverCpuPct, genCpuPct: m.genCpuPct, otherCpuPct: m.otherCpuPct, monoUs: m.monoUs,
      ...clusterFigures(m.samples, m.wall, ok, 'Resume'),
    };
  },

  async ceiling(pool, srv) {
    return flows(pool, srv, 'echo', srv.wsUrl, mode.msg);
  },

  'slow-reader': (pool, srv) => slowReader(srv, keys.cache, mode.flow.slowReader),
  'bosh-amplification': (pool, srv) => boshAmplification(srv, keys.cache, mode.flow.boshAmp),
  'bystander-ping': (pool, srv) => bystanderPing(srv, keys.cache, mode.flow.ping),

  /** msg-throughput with the message archive (XEP-0313) on, then off (MAM_ENABLED=false), in one run (each on a fresh server). */
  archiving: async (pool, srv) => onOffFigures(await onOff(pool, srv, { MAM_ENABLED: 'false' })),

  /** msg-throughput with inbound shaping at its default, then off, in one run (each on a fresh server). */
  shaping: async (pool, srv) => onOffFigures(await onOff(pool, srv, SHAPING_OFF)),

  /**
   * Groups of k accounts, all mutual contacts (subscription both, written into storage before the server
   * started), all logged in and available; every session then keeps `window` presence changes in flight
   * (<show>away</show> on and off, a new <status/> each time) until the window ends. A change is complete
   * when every contact received it. Gateway family only (the rosters are written into its storage).
   */
  async presence(pool, srv) {
    const p = mode.presence;
    const parts = split(presenceGroups(srv.name), pool.workers.length);
    const setup = await pool.each('presenceSetup', (i) => ({ url: srv.wsUrl, groups: parts[i], concurrency: 10, timeout: ANSWER_TIMEOUT_MS, readyMs: p.readyMs }));
    const startAt = now() + 200 + p.warm;
    const endAt = startAt + p.dur;
    const measured = meterWindow(srv, startAt, endAt);
    const res = await pool.each('presenceRun', () => ({ startAt, endAt, window: p.window, drainMs: 3000, settleMs: p.settle, interval: p.interval }));
    const m = await measured;
    const hist = merged(res);
    const secs = p.dur / 1000;
    const changes = sum(res, 'completedIn');
    const cluster = clusterFigures(m.samples, m.wall, changes, 'Change');
    // The gateway's processes alone (a cluster server's serverCpu also holds Redis and PostgreSQL).
    const gatewayCpu = cluster.gatewayCpuPct === undefined ? m.serverCpu : (cluster.gatewayCpuPct * m.wall) / 100;
    return {
      sessions: sum(setup, 'ok'), groups: p.groups, groupSize: p.k, window: p.window, interval: p.interval, failedSetup: sum(setup, 'failed'), setupErrors: firstErrors(setup),
      readyMs: Math.max(...setup.map((x) => x.readyMs)), missingInitial: sum(setup, 'missingInitial'),
      changesPerSec: changes / secs, sentPerSec: sum(res, 'sentIn') / secs, fanoutPerSec: sum(res, 'receiptsIn') / secs,
      // Every presence from a contact a client got, copies of a change included.
      presenceInPerSec: sum(res, 'presenceIn') / secs,
      p50: hist.quantile(0.5), p99: hist.quantile(0.99), max: hist.max,
      serverCpuMsPerChange: (1000 * m.serverCpu) / changes, gatewayCpuMsPerChange: (1000 * gatewayCpu) / changes,
      gatewayCpuUsPerFanout: (1e6 * gatewayCpu) / sum(res, 'receiptsIn'),
      // Second copies of a change a contact got while it was in flight (duplicates) or after every contact had it (late),
      // per completed change; the sender's own presence back (RFC 6121 §4.4.2: to all the account's resources).
      duplicates: sum(res, 'duplicates'), late: sum(res, 'late'), copiesPerChange: (sum(res, 'duplicates') + sum(res, 'late')) / Math.max(1, sum(res, 'completed')),
      ownEchoPerChange: sum(res, 'ownEcho') / Math.max(1, sum(res, 'sent')),
      // (contact, sender) pairs whose last arriving presence was not the sender's last change, `settle` ms after the drain.
      staleFinal: sum(res, 'staleFinal'), ...(p.settle > 1000 && { staleAfter1s: sum(res, 'staleAfter1s') }), staleBehind: res.flatMap((r) => r.staleBehind).slice(0, 10), contactPairs: sum(setup, 'ok') * (p.k - 1),
      sent: sum(res, 'sent'), completed: sum(res, 'completed'), unfinished: sum(res, 'unfinished'), missingReceipts: sum(res, 'missing'),
      serverCpuPct: m.serverCpuPct, genCpuPct: m.genCpuPct, otherCpuPct: m.otherCpuPct, monoUs: m.monoUs,
      ...cluster,
    };
  },

  /** gateway-redis: msg-throughput with Redis write-through on, then off (lib/cluster.mjs), in one run. */
  async 'write-through'(pool, srv) {
    return writeThroughFigures(await onOff(pool, srv, WRITE_THROUGH_OFF));
  },
};

/** msg-throughput on the server as configured, then on a fresh one with `offEnv` on top, in one run. */
async function onOff(pool, srv, offEnv) {
  const on = await flows(pool, srv, 'ws', srv.wsUrl, mode.msg);
  await pool.each('release', () => ({}));
  await srv.stop();
  srv.extraEnv = { ...offEnv };
  try {
    await freshSources(pool);
    await srv.start();
    return { on, off: await flows(pool, srv, 'ws', srv.wsUrl, mode.msg) };
  } finally {
    srv.extraEnv = {};
  }
}

/** A feature's cost from one onOff pair: messages/s both ways, on against off in %, and the p99s. */
function onOffFigures({ on, off }) {
  return {
    msgsPerSecOn: on.msgsPerSec, msgsPerSecOff: off.msgsPerSec, onVsOffPct: 100 * (on.msgsPerSec / off.msgsPerSec - 1),
    p99On: on.p99, p99Off: off.p99,
    // The busier of the two windows decides whether the pair is measured again (runOne).
    otherCpuPct: Math.max(on.otherCpuPct ?? 0, off.otherCpuPct ?? 0), serverCpuPctOn: on.serverCpuPct, serverCpuPctOff: off.serverCpuPct,
    failedSetup: (on.failedSetup ?? 0) + (off.failedSetup ?? 0), setupErrors: [...(on.setupErrors ?? []), ...(off.setupErrors ?? [])].slice(0, 3),
  };
}

/** Scale point: `total` sessions, of which msg.pairs pairs exchange messages while the rest sit idle. */
async function scalePoint(pool, srv, total) {
  const p = mode.msg;
  await warmUp(pool, srv, mode.scale.c);
  const rss0 = await rssSample(srv.pid);
  const idle = await loginAll(pool, srv.wsUrl, range(2 * p.pairs, total), mode.scale.c);
  await sleep(mode.settle);
  const rssIdle = await rssSample(srv.pid);
  const f = await flows(pool, srv, 'ws', srv.wsUrl, p, 0);
  return {
    sessions: total, idleOk: idle.ok, failed: idle.failed + (f.failedSetup ?? 0), errors: idle.errors, rssBeforeKiB: rss0, rssIdleKiB: rssIdle,
    kibPerSession: (rssIdle - rss0) / idle.ok, msgsPerSec: f.msgsPerSec, msgsPerCpuSec: f.msgsPerCpuSec, p50: f.p50, p99: f.p99,
    serverCpuPct: f.serverCpuPct, genCpuPct: f.genCpuPct, otherCpuPct: f.otherCpuPct,
  };
}

// ---------------------------------------------------------------- reporting
const fmt = (x, d = 0) => (x === undefined || x === null || Number.isNaN(x) ? '–' : typeof x === 'string' ? x : Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
const ratio = (a, b, d = 2) => (Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? `${(a / b).toFixed(d)}×` : '–');

/** scenario, metric key, label, decimals, higher-is-better @type {[string, string, string, number, boolean][]} */
const ROWS = [
  ['login-rate', 'sessionsPerSec', 'logins/s (open→SCRAM→bind→SM)', 0, true],
  ['login-rate', 'p50', 'login setup p50 ms', 2, false],
  ['login-rate', 'p99', 'login setup p99 ms', 2, false],
  ['login-rate', 'loginsPerCpuSec', 'logins per server CPU-s', 0, true],
  ['idle-memory', 'kibPerSession', 'RSS KiB per idle SM session', 1, false],
  ['idle-memory', 'kibPerSessionMarginal', 'RSS KiB per session, second half only', 1, false],
  ['msg-throughput', 'msgsPerSec', 'messages/s (WS)', 0, true],
  ['msg-throughput', 'msgsPerCpuSec', 'messages per server CPU-s', 0, true],
  ['msg-throughput', 'p50', 'message latency p50 ms', 2, false],
  ['msg-throughput', 'p99', 'message latency p99 ms', 2, false],
  ['msg-throughput', 'ackRequestsPerMsg', 'SM <r/> per delivered message', 2, false],
  ['msg-throughput', 'serverCpuPct', 'server CPU % (msg)', 0, false],
  ['msg-throughput', 'genCpuPct', 'generator CPU % (msg)', 0, false],
  ['msg-throughput', 'otherCpuPct', 'other CPU % on the machine (msg)', 0, false],
  ['bosh', 'msgsPerSec', 'BOSH messages/s', 0, true],
  ['bosh', 'p50', 'BOSH latency p50 ms', 2, false],
  ['bosh', 'p99', 'BOSH latency p99 ms', 2, false],
  ['resume', 'resumesPerSec', 'resumes/s (cut→reconnect→SCRAM→resume)', 0, true],
  ['resume', 'p50', 'reconnect+resume p50 ms', 2, false],
  ['resume', 'p99', 'reconnect+resume p99 ms', 2, false],
  ['resume', 'resumesPerCpuSec', 'resumes per server CPU-s', 0, true],
  ['login-rate', 'serverCpuPct', 'server CPU % (logins)', 0, false],
  ['login-rate', 'genCpuPct', 'generator CPU % (logins)', 0, false],
  ['resume', 'serverCpuPct', 'server CPU % (resumes)', 0, false],
  ['slow-reader', 'peakRssGrowthMiB', 'slow reader: peak RSS growth MiB', 1, false],
  ['slow-reader', 'rssGrowthPerInputByte', 'slow reader: RSS growth per input byte', 1, false],
  ['slow-reader', 'growthPctOfAmplified', 'slow reader: RSS growth, % of the vCard bytes asked for', 1, false],
  ['bosh-amplification', 'peakRssGrowthMiB', 'BOSH amplification: peak RSS growth MiB', 1, false],
  ['bosh-amplification', 'rssGrowthPerInputByte', 'BOSH amplification: RSS growth per input byte', 1, false],
  ['bosh-amplification', 'growthPctOfAmplified', 'BOSH amplification: RSS growth, % of the vCard bytes asked for', 1, false],
  ['bystander-ping', 'p50', 'bystander ping p50 ms during the flood', 2, false],
  ['bystander-ping', 'p99', 'bystander ping p99 ms during the flood', 2, false],
  ['bystander-ping', 'floodMsgsPerSec', 'flood to an offline user, messages/s', 0, true],
  ['shaping', 'msgsPerSecOn', 'messages/s, inbound shaping at its default', 0, true],
  ['shaping', 'msgsPerSecOff', 'messages/s, inbound shaping off', 0, true],
  ['shaping', 'onVsOffPct', 'shaping on against off, %', 1, true],
  ['login-rate', 'redisOpsPerLogin', 'Redis commands per login', 1, false],
  ['resume', 'redisOpsPerResume', 'Redis commands per resume', 1, false],
  ['msg-throughput', 'redisOpsPerMsg', 'Redis commands per message', 2, false],
  ['write-through', 'msgsPerSecOn', 'messages/s, Redis write-through on', 0, true],
  ['write-through', 'msgsPerSecOff', 'messages/s, write-through off (memory)', 0, true],
  ['write-through', 'costPct', 'write-through cost, % of messages/s', 1, false],
  ['archiving', 'msgsPerSecOn', 'messages/s, message archive on (both sides archived)', 0, true],
  ['archiving', 'msgsPerSecOff', 'messages/s, message archive off (MAM_ENABLED=false)', 0, true],
  ['archiving', 'onVsOffPct', 'archive on against off, %', 1, true],
  ['archiving', 'p99On', 'message latency p99 ms, archive on', 2, false],
  ['archiving', 'p99Off', 'message latency p99 ms, archive off', 2, false],
  ['presence', 'changesPerSec', 'presence changes/s (each to all contacts of its group)', 0, true],
  ['presence', 'fanoutPerSec', 'presence stanzas received by contacts/s (first copies)', 0, true],
  ['presence', 'copiesPerChange', 'extra copies of a change received, per change', 2, false],
  ['presence', 'staleFinal', 'contacts left showing an older presence at the end', 0, false],
  ['presence', 'p50', 'presence change → contact p50 ms', 2, false],
  ['presence', 'p99', 'presence change → contact p99 ms', 2, false],
  ['presence', 'serverCpuMsPerChange', 'server CPU ms per presence change (cluster: + Redis + PostgreSQL)', 3, false],
  ['presence', 'gatewayCpuMsPerChange', 'gateway processes CPU ms per presence change', 3, false],
  ['presence', 'redisOpsPerChange', 'Redis commands per presence change', 1, false],
  ['presence', 'serverCpuPct', 'server CPU % (presence)', 0, false],
  ['presence', 'otherCpuPct', 'other CPU % on the machine (presence)', 0, false],
];

function medians(results) {
  /** @type {Record<string, Record<string, Record<string, number | string>>>} */
  const out = {};
  for (const r of results) {
    const key = r.scenario === 'ceiling' ? 'msg-throughput' : r.scenario;
    out[key] ??= {};
    out[key][r.server] ??= {};
  }
  for (const [scen, byServer] of Object.entries(out)) {
    for (const server of Object.keys(byServer)) {
      const rs = results.filter((r) => (r.scenario === 'ceiling' ? 'msg-throughput' : r.scenario) === scen && r.server === server);
      if (rs.every((r) => r.notAvailable)) { byServer[server] = { notAvailable: 'not available' }; continue; }
      const keys = new Set(rs.flatMap((r) => Object.keys(r).filter((k) => typeof r[k] === 'number')));
      for (const k of keys) byServer[server][k] = median(rs.map((r) => r[k]));
      byServer[server].reps = rs.filter((r) => !r.notAvailable).length;
    }
  }
  return out;
}

/** @param {string} [base] the baseline's server name (--baseline): adds a current/baseline column, to 3 decimals for the 5 % rule */
function table(med, servers, base) {
  const cols = [...servers, 'ws-echo'];
  const lines = [
    `| scenario | metric | ${cols.join(' | ')} |${base ? ' current/baseline |' : ''} gw/Prosody | gw/ejabberd | gw/ceiling |`,
    `|---|---|${cols.map(() => '---:').join('|')}|${base ? '---:|' : ''}---:|---:|---:|`,
  ];
  for (const [scen, key, label, d] of ROWS) {
    const row = med[scen];
    if (!row) continue;
    const v = (s) => (row[s]?.notAvailable ? 'not available' : row[s]?.[key]);
    const g = v('gateway');
    const ceilingOk = scen === 'msg-throughput' && ['msgsPerSec', 'msgsPerCpuSec', 'p50', 'p99', 'serverCpuPct', 'genCpuPct', 'otherCpuPct'].includes(key);
    // CPU shares and ack counts are context, not results: no ratios for them.
    const context = /CpuPct$|^ackRequests/.test(key);
    const cell = (s) => { const x = v(s); return fmt(typeof x === 'number' && /CpuPct$/.test(key) ? Math.max(0, x) : x, d); };
    // A ratio of two signed percentages (shaping or archiving on against off) means nothing.
    const baseCell = base ? ` ${context || key === 'onVsOffPct' ? '' : ratio(g, v(base), 3)} |` : '';
    lines.push(`| ${scen} | ${label} | ${cols.map((s) => (s === 'ws-echo' && !ceilingOk ? '' : cell(s))).join(' | ')} |${baseCell} ${context ? '' : ratio(g, v('prosody'))} | ${context ? '' : ratio(g, v('ejabberd'))} | ${ceilingOk && key === 'msgsPerSec' ? ratio(g, v('ws-echo')) : ''} |`);
  }
  return lines.join('\n');
}

const verdict = (checks) => {
  if (checks.some((c) => c === undefined)) return 'not measured';
  return checks.every(Boolean) ? '**met**' : '**not met**';
};

/** The issue's targets, met / not met, with the measured gap. */
function targets(med) {
  const get = (scen, server, key) => { const x = med[scen]?.[server]; return x && !x.notAvailable ? x[key] : undefined; };
  const bestHigh = (scen, key) => { const xs = ['prosody', 'ejabberd'].map((s) => [s, get(scen, s, key)]).filter(([, x]) => Number.isFinite(x)); return xs.length ? xs.reduce((a, b) => (b[1] > a[1] ? b : a)) : undefined; };
  const bestLow = (scen, key) => { const xs = ['prosody', 'ejabberd'].map((s) => [s, get(scen, s, key)]).filter(([, x]) => Number.isFinite(x)); return xs.length ? xs.reduce((a, b) => (b[1] < a[1] ? b : a)) : undefined; };
  const rows = [];
  const higher = (scen, key, factor, unit, d = 0) => {
    const g = get(scen, 'gateway', key);
    const b = bestHigh(scen, key);
    if (g === undefined || !b) return { ok: undefined, text: `gateway ${fmt(g, d)}${unit}; best peer ${b ? `${b[0]} ${fmt(b[1], d)}${unit}` : '–'}` };
    return { ok: g >= factor * b[1], text: `gateway ${fmt(g, d)}${unit} vs best peer ${b[0]} ${fmt(b[1], d)}${unit}: ${(g / b[1]).toFixed(2)}× (need ≥ ${factor}×)` };
  };
  const lower = (scen, key, factor, unit, d = 2) => {
    const g = get(scen, 'gateway', key);
    const b = bestLow(scen, key);
    if (g === undefined || !b) return { ok: undefined, text: `gateway ${fmt(g, d)}${unit}; best peer ${b ? `${b[0]} ${fmt(b[1], d)}${unit}` : '–'}` };
    return { ok: g <= factor * b[1], text: `gateway ${fmt(g, d)}${unit} vs best peer ${b[0]} ${fmt(b[1], d)}${unit}: ${(g / b[1]).toFixed(2)}× (need ≤ ${factor}×)` };
  };
  {
    const a = higher('msg-throughput', 'msgsPerSec', 1.5, ' msg/s');
    const g = get('msg-throughput', 'gateway', 'msgsPerSec');
    const c = get('msg-throughput', 'ws-echo', 'msgsPerSec');
    const okC = g !== undefined && c !== undefined ? g >= 0.35 * c : undefined;
    rows.push(['messages/s (WS)', '≥ 1.5× best peer, ≥ 35% of ws-echo ceiling', `${a.text}; ${fmt(c !== undefined && g !== undefined ? (100 * g) / c : NaN, 1)}% of ceiling ${fmt(c)} msg/s`, verdict([a.ok, okC])]);
  }
  { const a = higher('msg-throughput', 'msgsPerCpuSec', 1.5, ''); rows.push(['messages per server CPU-second', '≥ 1.5× best peer', a.text, verdict([a.ok])]); }
  { const a = lower('msg-throughput', 'p99', 1, ' ms'); rows.push(['p99 latency', '≤ best peer', a.text, verdict([a.ok])]); }
  { const a = lower('idle-memory', 'kibPerSession', 0.5, ' KiB', 1); rows.push(['RSS per idle SM session', '≤ 0.5× best peer', a.text, verdict([a.ok])]); }
  { const a = higher('login-rate', 'sessionsPerSec', 1.5, '/s'); rows.push(['logins/s', '≥ 1.5× best peer', a.text, verdict([a.ok])]); }
  {
    const na = med.bosh?.gateway?.notAvailable;
    const a = higher('bosh', 'msgsPerSec', 1.5, ' msg/s');
    rows.push(['BOSH msgs/s', '≥ 1.5× best peer', na ? 'gateway: not available (/http-bind answered 404)' : a.text, na ? 'not available' : verdict([a.ok])]);
  }
  {
    const a = higher('resume', 'resumesPerSec', 1.5, '/s');
    const b = lower('resume', 'p99', 1, ' ms');
    rows.push(['resumes/s', '≥ 1.5× best peer, reconnect+resume p99 ≤ best peer', `${a.text}; p99 ${b.text}`, verdict([a.ok, b.ok])]);
  }
  rows.push(...flowTargets(get));
  return ['| target | goal | measured (medians) | verdict |', '|---|---|---|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

/**
 * Issue 10's targets. Memory: bounded by the configured limits, not by the
 * attack: peak RSS growth at most FLOW_RSS_CAP_MIB whatever the attack asks
 * for (176 MiB of vCards in a full run; before flow control the server grew by
 * 640 MiB and 840 MiB). The configured bounds are a few MiB (2 ×
 * WS_MAX_BUFFERED_BYTES; BOSH_MAX_QUEUED_BYTES + BOSH_MAX_RESPONSE_BYTES); the
 * rest of the cap is slack for V8's heap growth and socket buffers.
 */
const FLOW_RSS_CAP_MIB = 32;

function flowTargets(get) {
  const rows = [];
  const cap = (x, limit) => (x === undefined ? undefined : x <= limit);
  for (const [scen, what] of [['slow-reader', 'peak RSS, slow reader (WS)'], ['bosh-amplification', 'peak RSS, BOSH amplification']]) {
    const g = (k) => get(scen, 'gateway', k);
    rows.push([what, `bounded by the configured limits, not the attack: growth ≤ ${FLOW_RSS_CAP_MIB} MiB whatever is asked for`, `${fmt(g('peakRssGrowthMiB'), 1)} MiB growth for ${fmt(g('inputKiB'))} KiB sent (${fmt(g('rssGrowthPerInputByte'), 1)} per input byte), ${fmt(g('growthPctOfAmplified'), 1)} % of ${fmt(g('amplifiedMiB'))} MiB asked for`, verdict([cap(g('peakRssGrowthMiB'), FLOW_RSS_CAP_MIB)])]);
  }
  {
    const p99 = get('bystander-ping', 'gateway', 'p99');
    const peers = ['prosody', 'ejabberd'].map((s) => `${s} ${fmt(get('bystander-ping', s, 'p99'), 2)} ms`).join(', ');
    rows.push(['bystander ping p99 during the flood', '≤ 100 ms', `gateway ${fmt(p99, 2)} ms over ${fmt(get('bystander-ping', 'gateway', 'messages'))} messages to an offline user (${peers})`, verdict([cap(p99, 100)])]);
  }
  {
    const pct = get('shaping', 'gateway', 'onVsOffPct');
    const mam = get('archiving', 'gateway', 'onVsOffPct');
    rows.push(['messages/s with the message archive on', 'within 20 % of off (issue 16)', `${fmt(get('archiving', 'gateway', 'msgsPerSecOn'))} vs ${fmt(get('archiving', 'gateway', 'msgsPerSecOff'))} msg/s: ${fmt(mam, 1)} %`, verdict([mam === undefined ? undefined : mam >= -20])]);
    rows.push(['messages/s with inbound shaping on', 'within 5 % of off', `${fmt(get('shaping', 'gateway', 'msgsPerSecOn'))} vs ${fmt(get('shaping', 'gateway', 'msgsPerSecOff'))} msg/s: ${fmt(pct, 1)} %`, verdict([pct === undefined ? undefined : pct >= -5])]);
  }
  return rows;
}

/**
 * What issue 6 asks for a rate target that is not met: the measured gap,
 * what limits it (CPU figures of this run and the gateway's profile by
 * area) and what would close it. Only the last part is fixed text.
 */
function gaps(med, profiles) {
  const sections = [];
  const rate = (scen, key, perCpuKey, what, profileLabel) => {
    const g = med[scen]?.gateway;
    const peers = ['prosody', 'ejabberd'].map((name) => [name, med[scen]?.[name]]).filter(([, x]) => x && Number.isFinite(x[key]));
    if (!g || !Number.isFinite(g[key]) || !peers.length) return;
    const [bestName, best] = peers.reduce((a, b) => (b[1][key] > a[1][key] ? b : a));
    const need = 1.5 * best[key];
    if (g[key] >= need) return;
    const gPer = g[perCpuKey];
    const bPer = best[perCpuKey];
    const prof = profiles.find((p) => p.label === profileLabel);
    const lines = [
      `### ${what}: ${fmt(g[key])}/s where 1.5× ${bestName} is ${fmt(need)}/s`,
      '',
      `- **Gap:** ${fmt(need - g[key])} ${what} per second more (+${fmt((100 * (need - g[key])) / g[key])} %).`,
      `- **What limits it: CPU on one core.** The gateway is one Node.js event loop; while measuring it used ${fmt(g.serverCpuPct)} % of a core (100 % = one core; the part above 100 is V8's GC threads and libuv), and the load generator ${fmt(g.genCpuPct)} % of the same ${cpus().length} cores. Its rate is its ${what} per CPU-second (${fmt(gPer)}) times the one core its JavaScript runs on. ${bestName} (${fmt(best.serverCpuPct)} % CPU: ${bestName === 'ejabberd' ? 'BEAM schedulers on every core' : 'its one Lua thread'}) did ${fmt(bPer)} per CPU-second: per unit of CPU the gateway does ${ratio(gPer, bPer)} its work. 1.5× ${bestName} at the gateway's cost per ${what === 'logins' ? 'login' : 'resume'} needs ${fmt((100 * need) / gPer)} % of a core.`,
    ];
    if (prof?.areas) {
      lines.push(`- **Profile** (\`node --cpu-prof\` during ${profileLabel}, ${underProfiler(prof.run)}; self time by area):`, '', '  | area | % of busy |', '  |---|---:|');
      for (const a of prof.areas) lines.push(`  | ${a.area} | ${fmt(a.pctBusy, 1)} |`);
      lines.push('');
    }
    sections.push(lines.join('\n'));
  };
  rate('login-rate', 'sessionsPerSec', 'loginsPerCpuSec', 'logins', 'login-rate');
  rate('resume', 'resumesPerSec', 'resumesPerCpuSec', 'resumes', 'resume');
  if (sections.length) sections.push(`### What would close it\n\n${CLOSE_THE_GAP}`);
  return sections.join('\n\n');
}

// Written from the login and resume profiles of the full runs; it changes when the design does, not per run.
const CLOSE_THE_GAP = [
  'More than one core for the gateway. Every protocol step of a login or a resume is a round trip with one socket write each (the protocol fixes their number); the rest is spread over Node\'s HTTP and stream machinery, XML, SCRAM, SQLite and the XMPP code (the table above), with no single hot spot left.',
  'Several gateway processes sharing the listening port (`WORKERS=N` with `CLUSTER=redis`, issue 14) use more than one core: the gateway-cluster rows and the "Cluster" section measure them, and what the shared state costs per login, resume and message.',
  'Smaller steps, each a few per cent: an upgrade listener that skips fastify\'s request routing for `/xmpp-websocket` (the design card asks for @fastify/websocket), and building the XML tree in the well-formedness scan instead of a second pass by fast-xml-parser (the design card names fast-xml-parser).',
].join(' ');

/** Where the peers got fewer accounts than the gateway (no scale curve for them), says how many. */
function accountsNote(meta) {
  const fewer = Object.entries(meta.accounts ?? {}).filter(([, n]) => n < meta.params.users);
  if (!fewer.length) return '';
  return ` on the gateway; ${fewer.map(([name, n]) => `u0…u${n - 1} on ${name}`).join(', ')} (what their scenarios use: the scale curve runs on the gateway only)`;
}

function scaleTable(rows) {
  if (!rows.length) return '';
  const lines = ['| sessions | server | RSS KiB/session | marginal KiB/session | messages/s | msgs per CPU-s | p50 ms | p99 ms | server CPU % | generator CPU % |', '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of rows) {
    // The growth from the previous point's idle RSS to this one's, per added session: the cost of one more
    // session once the process's one-time growth (heap reservations, JIT code) is paid.
    const prev = rows.filter((q) => q.server === r.server && q.sessions < r.sessions).at(-1);
    const marginal = prev && prev.rssIdleKiB !== undefined && r.rssIdleKiB !== undefined ? (r.rssIdleKiB - prev.rssIdleKiB) / (r.sessions - prev.sessions) : undefined;
    lines.push(`| ${fmt(r.sessions)} | ${r.server} | ${fmt(r.kibPerSession, 1)} | ${fmt(marginal, 1)} | ${fmt(r.msgsPerSec)} | ${fmt(r.msgsPerCpuSec)} | ${fmt(r.p50, 2)} | ${fmt(r.p99, 2)} | ${fmt(r.serverCpuPct)} | ${fmt(r.genCpuPct)} |`);
  }
  return lines.join('\n');
}

function underProfiler(r) {
  if (r.msgsPerSec !== undefined) return `${fmt(r.msgsPerSec)} messages/s`;
  if (r.sessionsPerSec !== undefined) return `${fmt(r.sessionsPerSec)} logins/s`;
  if (r.resumesPerSec !== undefined) return `${fmt(r.resumesPerSec)} resumes/s`;
  return r.error ?? '?';
}

function profileTable(s) {
  if (!s) return '';
  const lines = [`Busy (non-idle) samples: ${fmt(s.busyMs)} ms of ${fmt(s.totalMs)} ms profiled (${s.windowed ? 'the measured window only' : 'whole process life'}).`, '', '| # | function (file:function:line) | self ms | self % of busy |', '|---:|---|---:|---:|'];
  s.functions.forEach((f, i) => lines.push(`| ${i + 1} | \`${f.fn}\` | ${fmt(f.selfMs)} | ${fmt(f.pctBusy, 1)} |`));
  if (s.areas) {
    lines.push('', '| area (self time summed) | self ms | % of busy |', '|---|---:|---:|');
    s.areas.forEach((a) => lines.push(`| ${a.area} | ${fmt(a.selfMs)} | ${fmt(a.pctBusy, 1)} |`));
  }
  lines.push('', '| file (self time summed) | self ms | % of busy |', '|---|---:|---:|');
  s.files.slice(0, 15).forEach((f) => lines.push(`| \`${f.file}\` | ${fmt(f.selfMs)} | ${fmt(f.pctBusy, 1)} |`));
  return lines.join('\n');
}

/** Newest modification time under dist/ (what the snapshot measured). */
function distTime() {
  let newest = 0;
  const walk = (d) => { for (const e of readdirSync(d, { withFileTypes: true })) { const p = join(d, e.name); if (e.isDirectory()) walk(p); else newest = Math.max(newest, statSync(p).mtimeMs); } };
  try { walk(join(gatewayRoot, 'dist')); } catch { return '?'; }
  return new Date(newest).toISOString();
}

function machine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? '?';
  const nproc = spawnSync('nproc', { encoding: 'utf8' }).stdout.trim();
  return { nproc, model, memGiB: (totalmem() / 2 ** 30).toFixed(1), kernel: osRelease() };
}

/** The commit under test, marked when src/ has uncommitted changes (read-only git). */
function commitOf(root = ROOT) {
  try {
    let commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).stdout.trim();
    const dirty = spawnSync('git', ['status', '--porcelain', '--', 'src'], { cwd: root, encoding: 'utf8' }).stdout.trim();
    if (dirty) commit += ' + uncommitted changes in src/';
    return commit;
  } catch { return '?'; }
}

// ---------------------------------------------------------------- main
async function main() {
  const started = Date.now();
  await initProc();
  if (flag('--build')) {
    log('npm run build');
    const b = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
    if (b.status !== 0) throw new Error('npm run build failed');
  }
  // Resolved before anything starts, so a bad revision stops the run at once.
  const baseline = baselineRef ? new BaselineTree({ root: ROOT, ref: baselineRef, log }) : undefined;
  /** Every server of the run in turn order: the baseline right after the current gateway (A B A B… per repetition). */
  const names = baseline ? serverNames.flatMap((n) => (n === 'gateway' ? [n, baseline.name] : [n])) : serverNames;
  // Under TMPDIR (/tmp unless set): the servers' data folders, so TMPDIR=/dev/shm puts their databases in memory.
  const work = mkdtempSync(join(tmpdir(), 'xwg-bench-'));
  const snapshot = snapshotGateway(join(ROOT, 'bench', '.snapshot', work.split('/').pop()), gatewayRoot);
  // The last resort for every way out (errors, signals, the watchdog): no worktree, snapshot or work folder is left behind.
  process.once('exit', () => {
    baseline?.remove();
    rmSync(snapshot, { recursive: true, force: true });
    if (!flag('--keep')) rmSync(work, { recursive: true, force: true });
  });
  const runMeta = {
    mode: modeName, argv, started: new Date().toISOString(), distBuilt: distTime(), commit: commitOf(),
    ...(gatewayRoot !== ROOT && { gatewayRoot: { dir: gatewayRoot, commit: commitOf(gatewayRoot) } }),
    workers: workerCount, servers: names, params: mode, loadavg: loadavg(),
    accounts: Object.fromEntries(names.map((n) => [n, accountsFor(n)])),
    ...(baseline && { baseline: { ref: baseline.ref, commit: baseline.commit, name: baseline.name } }),
  };
  process.stdout.write(`${JSON.stringify({ run: runMeta })}\n`);
  log(`mode ${modeName}: ${mode.reps} repetition(s), servers ${names.join(', ')}, scenarios ${scenarioNames.join(', ') || '(none)'}; work folder ${work}`);
  const pool = new Pool(workerCount);
  /** @type {Record<string, any>} */
  const servers = {};
  const all = [];
  const stopAll = async () => { for (const s of all) { try { await s.stop(); } catch (err) { log(`stop ${s.name}: ${err.message}`); } } };
  let aborted = false;
  const onSignal = async (sig) => {
    if (aborted) return;
    aborted = true;
    log(`${sig}: stopping the servers`);
    await stopAll();
    process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Before the watchdog starts: the build is not part of the measured run's time budget.
  await baseline?.build(join(work, 'baseline-src'));
  const watchdog = setTimeout(async () => { log(`watchdog: the run exceeded ${mode.watchdog / 1000} s; stopping`); await stopAll(); process.exit(1); }, mode.watchdog);
  watchdog.unref();

  const results = [];
  const scale = [];
  /** @type {any[]} runs repeated because of other load */
  const discarded = [];
  /** @type {any[]} */
  const profiles = [];
  try {
    const gwPort = await freePort(25280);
    if (serverNames.includes('gateway') || doProfile) all.push(servers.gateway = new Gateway({ dir: join(work, 'gateway'), port: gwPort, root: snapshot, log }));
    if (baseline) {
      // The same class, env and settings as the current tree; only the built code differs.
      const gw = new Gateway({ dir: join(work, 'gateway-baseline'), port: await freePort(25290), root: /** @type {string} */ (baseline.dir), log });
      gw.name = baseline.name;
      all.push(servers[baseline.name] = gw);
    }
    if (serverNames.includes('prosody')) all.push(servers.prosody = new Prosody({ dir: join(work, 'prosody'), port: await freePort(25380), log }));
    if (serverNames.includes('ejabberd')) {
      let p = await freePort(25390);
      while ((await freePort(p + 1000)) !== p + 1000) p = await freePort(p + 7);
      all.push(servers.ejabberd = new Ejabberd({ dir: join(work, 'ejabberd'), port: p, log }));
    }
    const clusterNames = serverNames.filter((n) => CLUSTER_SERVERS[n]);
    if (clusterNames.length) {
      const backing = new Backing({ redisPort: await freePort(25580), pgPort: await freePort(25590), log });
      process.once('exit', () => backing.killNow());
      await backing.start();
      // Last in `all`: stopped after the gateways that use it.
      for (const [i, name] of clusterNames.entries()) all.push(servers[name] = new GatewayCluster({ name, backing, dir: join(work, name), port: await freePort(25300 + 10 * i), root: snapshot, log }));
      all.push(backing);
    }
    if (scenarioNames.includes('ceiling')) all.push(servers['ws-echo'] = new Echo({ dir: join(work, 'echo'), port: await freePort(25480), log }));

    // Accounts u0..u(N-1), one password; then the SCRAM key cache of the generator.
    const cache = new KeyCache(PASSWORD);
    keys.cache = cache;
    for (const name of Object.keys(servers).filter((n) => n !== 'ws-echo')) {
      const srv = servers[name];
      const users = range(0, accountsFor(name));
      const t = Date.now();
      const salted = await srv.createUsers(users, PASSWORD);
      if (scenarioNames.includes('presence') && runsOn(name, 'presence')) await srv.writeRosters(presenceGroups(name));
      cache.load(salted);
      if (Object.keys(salted).length === 0) {
        // Salts chosen by the server: learn them from the SASL first step, then derive here.
        for (let attempt = 1; ; attempt++) {
          await srv.start();
          await freshSources(pool);
          try {
            const probes = await pool.each('probe', (i) => ({ url: srv.wsUrl, users: split(users, pool.workers.length)[i], concurrency: 25 }));
            const failed = sum(probes, 'failed');
            if (failed) throw new Error(`${name}: ${failed} salt probes failed: ${firstErrors(probes).join('; ')}`);
            const salts = probes.flatMap((p) => p.salts);
            let next = 0;
            await Promise.all(Array.from({ length: 8 }, async () => { while (next < salts.length) { const s = salts[next++]; await cache.derive(s.salt, s.iterations); } }));
            break;
          } catch (err) {
            if (attempt >= 2) throw err;
            log(`${err.message.slice(0, 300)}; trying once more`);
          } finally {
            await pool.each('release', () => ({}));
            await srv.stop();
          }
        }
      }
      log(`${name}: ${users.length} accounts ready in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    }
    await pool.each('keys', () => ({ entries: cache.dump() }));

    let quietSpent = 0;
    const runOnce = async (scenario, srv, rep, fn) => {
      const name = srv.name;
      // Other users of the machine (tests of other engineers) distort every figure: wait (bounded) for quiet.
      const quiet = mode.quiet ? await waitQuiet(Math.min(mode.quiet.perRun, Math.max(0, mode.quiet.total - quietSpent))) : undefined;
      if (quiet) quietSpent += quiet.waitedMs;
      await freshSources(pool);
      await srv.start();
      let r;
      try {
        r = await fn(pool, srv);
      } catch (err) {
        r = { error: String(err.message ?? err).slice(0, 500) };
      } finally {
        await pool.each('release', () => ({}));
        await srv.stop();
      }
      return { scenario, server: name, rep, mode: modeName, ...r, load1: loadavg()[0], quietWaitMs: quiet?.waitedMs, otherBeforePct: quiet?.otherPct, ts: new Date().toISOString() };
    };
    /** One measured run; repeated (at most mode.retries times) when other load on the machine disturbed it. */
    const runOne = async (scenario, srv, rep, fn) => {
      let line;
      for (let attempt = 0; ; attempt++) {
        line = await runOnce(scenario, srv, rep, fn);
        const disturbed = line.otherCpuPct > QUIET_PCT;
        if (!(disturbed || line.error) || attempt >= (mode.retries ?? 0)) break;
        line.discarded = disturbed ? `other load ${Math.round(line.otherCpuPct)}% of a core; repeated` : `failed (${line.error}); repeated`;
        discarded.push(line);
        process.stdout.write(`${JSON.stringify(line)}\n`);
        log(`${scenario} on ${line.server}: ${line.discarded}`);
      }
      line.attempts = discarded.filter((d) => d.scenario === scenario && d.server === line.server && d.rep === rep).length + 1;
      process.stdout.write(`${JSON.stringify(line)}\n`);
      if (line.error || line.failed || line.failedSetup) log(`warning: ${scenario} on ${line.server}: ${line.error ?? ''} ${JSON.stringify(line.errors ?? line.setupErrors ?? [])}`);
      return line;
    };

    for (const scenario of scenarioNames) {
      const turns = scenario === 'ceiling' ? ['ws-echo'] : names.filter((n) => runsOn(n, scenario));
      for (let rep = 1; rep <= mode.reps; rep++) {
        for (const name of turns) results.push(await runOne(scenario, servers[name], rep, SCENARIO_FNS[scenario]));
      }
    }

    if (mode.scale && !flag('--no-scale') && !onlyProfile && scenarioNames.includes('msg-throughput')) {
      for (const total of mode.scale.points) {
        for (let rep = 1; rep <= mode.scale.reps; rep++) {
          // The gateway only, unless --scale-all: the curve shows that its cost per session is flat, and
          // 10k logins into each peer would take Prosody and ejabberd about 6 min of the 15 the full run has.
          for (const name of names.filter(scalesOn)) {
            const line = await runOne(`scale-${total}`, servers[name], rep, (pool, srv) => scalePoint(pool, srv, total));
            scale.push(line);
          }
        }
      }
    }

    if (doProfile) {
      // The gateway under node --cpu-prof: msg-throughput (the issue's ask) and login-rate.
      const kept = join(ROOT, 'bench', '.profiles');
      mkdirSync(kept, { recursive: true });
      for (const [label, fn] of [
        ['msg-throughput', (pool, srv) => flows(pool, srv, 'ws', srv.wsUrl, mode.msg)],
        ['login-rate', SCENARIO_FNS['login-rate']],
        ['bosh', SCENARIO_FNS.bosh],
        ['resume', SCENARIO_FNS.resume],
      ]) {
        const dir = join(work, `profile-${label}`);
        mkdirSync(dir, { recursive: true });
        const gw = new Gateway({ dir: join(work, 'gateway'), port: gwPort, root: snapshot, profileDir: dir, log });
        all.push(gw);
        const line = await runOne(`profile-${label}`, gw, 1, fn);
        const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
        if (!files.length) { log(`warning: no .cpuprofile was written for ${label}`); continue; }
        // CPU.<date>.<time>.<pid>.<thread id>.<n>.cpuprofile: the main thread's is thread 0; others (the SQLite
        // archive's writer thread) are kept beside it as …-thread<id>.cpuprofile.
        const threadOf = (f) => Number(f.split('.')[4]);
        const dest = join(kept, `gateway-${label}-${modeName}.cpuprofile`);
        const main = files.filter((f) => threadOf(f) === 0).sort().at(-1) ?? files.sort().at(-1);
        writeFileSync(dest, readFileSync(join(dir, main)));
        for (const f of files.filter((f) => f !== main)) {
          writeFileSync(join(kept, `gateway-${label}-${modeName}-thread${threadOf(f)}.cpuprofile`), readFileSync(join(dir, f)));
        }
        profiles.push({ label, ...summarizeProfile(dest, { root: `${snapshot}/`, top: 25, window: line.monoUs }), run: line, file: dest.slice(ROOT.length) });
        log(`profile kept in ${dest.slice(ROOT.length)}`);
      }
    }
  } finally {
    clearTimeout(watchdog);
    await stopAll();
    await pool.close();
    baseline?.remove();
    if (!flag('--keep')) rmSync(work, { recursive: true, force: true });
    rmSync(snapshot, { recursive: true, force: true });
  }

  const seconds = (Date.now() - started) / 1000;
  const meta = { ...runMeta, seconds: Math.round(seconds), finished: new Date().toISOString(), loadavgEnd: loadavg() };
  await report({ meta, results, scale, discarded, profiles });
  const broken = results.filter((r) => r.error);
  if (broken.length) { log(`${broken.length} scenario run(s) failed`); process.exitCode = 1; }
}

/**
 * Tables, targets and (unless --no-write) the results file, from the JSON
 * lines of a run: live, or again later with --report-from FILE.
 */
async function report({ meta, results, scale, discarded, profiles }) {
  const m = meta.params;
  const servers = meta.servers;
  const med = medians(results);
  const base = meta.baseline?.name;
  const tableText = table(med, servers, base);
  const targetText = targets(med);
  const gapText = gaps(med, profiles);
  const compareText = base ? beforeAfter(results, base, fmt) : '';
  const clusterText = clusterSection(med, results, fmt);
  const load = `Load average (1, 5, 15 min) at the start ${meta.loadavg?.map((x) => x.toFixed(2)).join(', ') ?? '?'}, at the end ${meta.loadavgEnd?.map((x) => x.toFixed(2)).join(', ') ?? '?'} (per run: load1 in the raw lines).`;
  const scaleMed = [];
  for (const total of m.scale?.points ?? []) {
    for (const name of servers) {
      const rs = scale.filter((r) => r.scenario === `scale-${total}` && r.server === name && !r.error);
      if (!rs.length) continue;
      const x = { sessions: total, server: name };
      for (const k of ['kibPerSession', 'rssIdleKiB', 'msgsPerSec', 'msgsPerCpuSec', 'p50', 'p99', 'serverCpuPct', 'genCpuPct']) x[k] = median(rs.map((r) => r[k]));
      scaleMed.push(x);
    }
  }
  const noisy = [...results, ...scale].filter((r) => r.otherCpuPct > QUIET_PCT)
    .map((r) => `${r.scenario}/${r.server}#${r.rep} ${Math.round(r.otherCpuPct)}%`);
  let noise = noisy.length
    ? `Other load on the machine above ${QUIET_PCT} % of a core while measuring (not the server, not the generator): ${noisy.join(', ')}.`
    : `No measured run saw more than ${QUIET_PCT} % of a core of other load on the machine.`;
  if (discarded.length) noise += ` ${discarded.length} disturbed run(s) were measured again (kept in the raw lines with "discarded").`;
  const failures = [...results, ...scale].filter((r) => r.failed > 0 || r.failedSetup > 0 || r.error)
    .map((r) => `${r.scenario}/${r.server}#${r.rep}: ${r.error ?? `${r.failed ?? r.failedSetup} failed (${(r.errors ?? r.setupErrors ?? []).join('; ')})`}`);
  if (failures.length) noise += `\n\nSessions that failed: ${failures.join('; ')}.`;
  const reps = `${m.reps} repetition${m.reps > 1 ? 's' : ''}`;
  const compareHead = base ? `## Before/after: the current tree against ${base} (--baseline ${meta.baseline.ref})` : '';
  process.stdout.write(`\n## Results (${meta.mode}, medians of ${reps})\n\n${tableText}\n\n${noise}\n\n${base ? `${compareHead}\n\n${compareText}\n\n` : ''}## Targets\n\n${targetText}\n${gapText ? `\n${gapText}\n` : ''}${clusterText ? `\n## Cluster\n\n${clusterText}\n` : ''}\n${load}\n`);
  if (scaleMed.length) process.stdout.write(`\n## Scale curve\n\n${scaleTable(scaleMed)}\n`);
  for (const pr of profiles) process.stdout.write(`\n## Gateway CPU profile during ${pr.label}\n\n${profileTable(pr)}\n`);
  if (meta.seconds !== undefined) process.stdout.write(`\nbench finished in ${meta.seconds} s\n`);
  const outFile = outFileFor(meta.mode);
  if (!outFile) return;

  const mach = machine();
  const vers = await versions();
  const raw = [{ run: meta }, ...results, ...scale, ...profiles.map((p) => p.run), ...discarded].map((r) => JSON.stringify(r)).join('\n');
  const md = `# Benchmark results (${meta.mode})

Generated by \`bench/run.mjs\` on ${meta.finished} (${meta.seconds} s).
${meta.mode === 'full' ? `Medians of ${reps}; every server restarted for each scenario and repetition.` : `${meta.mode} mode: **${reps}** per cell${m.reps < 3 ? ' (not a median of 3)' : ''}, smaller N; every server restarted for each scenario.`}

## Machine

| | |
|---|---|
| CPU | ${mach.model}, nproc ${mach.nproc} |
| memory | ${mach.memGiB} GiB |
| kernel | ${mach.kernel} |
| Node.js | ${vers.node} |
| Prosody | ${vers.prosody} (${vers.lua ?? 'lua'}, epoll backend) |
| ejabberd | ${vers.ejabberd} |
| gateway | commit ${meta.commit}; dist/ as built at ${meta.distBuilt} (copied at the start of the run) |
${base ? `| ${base} | \`--baseline ${meta.baseline.ref}\`: that commit checked out in a temporary git worktree and built there with this tree's node_modules and TypeScript |\n` : ''}
## Commands

\`\`\`sh
npm run bench                  # full
npm run bench -- --quick       # quick (< 3 min on a quiet machine)
npm run bench -- --smoke       # gateway only, tiny N (smoke test)
\`\`\`

This run: \`node bench/run.mjs ${meta.argv.join(' ')}\`.

## Setup

- Servers on 127.0.0.1, domain \`localhost\`, one at a time; the load generator is one Node process with ${meta.workers} worker threads on the same ${mach.nproc} cores (its own CPU is reported as "generator CPU %", 100 % = one core; "other CPU %" is what the rest of the machine used meanwhile).
- Accounts u0…u${m.users - 1}${accountsNote(meta)}, SCRAM-SHA-1 stored keys with **4096 PBKDF2 iterations on every server**: the gateway with \`SCRAM_ITERATIONS=4096\` (its minimum), ejabberd with \`EJABBERD_PASSWORD_FORMAT=scram\` (fixed 4096), Prosody's account files written directly in mod_auth_internal_hashed's format with \`iteration_count = 4096\` (Prosody uses the stored count; \`prosodyctl register\` would hash with 10000). With SCRAM the server never runs PBKDF2 at login; the client does, and the generator caches SaltedPassword per salt (prepared before measuring, as real clients cache it).
- Every WebSocket session: \`<open/>\` → SASL SCRAM-SHA-1 → restart → bind → \`<enable resume='true'/>\`; every \`<r/>\` is answered with \`<a h/>\`.
- Gateway: \`node dist/main.js\`, \`LOG_LEVEL=warn\`, defaults otherwise (SM ack_freq 1, WS ping 25 s). Prosody: \`../shared/peers/prosody.sh\` config (logs at info to a file, smacks, no limits). ejabberd: \`../shared/peers/ejabberd.sh\` config, \`EJABBERD_LOGLEVEL=warning\`.
- login-rate: ${m.login.n} logins, ${m.login.c} at once, after ${m.login.warm} warm-up logins; sessions stay open until the end.
- idle-memory: ${m.idle.n} idle SM sessions; RSS (VmRSS of the server process: node, lua5.4, beam.smp) ${m.settle / 1000} s after the last login minus RSS before the first, measured after ${m.warmSessions} warm-up logins that were closed again; "second half only" is the growth from ${m.idle.n >> 1} to ${m.idle.n} sessions per session, which leaves out one-time growth.
- msg-throughput: ${m.msg.pairs} pairs, each session keeps ${m.msg.window} chat messages (${BODY.length}-character body, ~200-byte stanza) in flight to its partner's full JID; ${m.msg.warm / 1000} s warm-up, ${m.msg.dur / 1000} s measured. Server CPU from /proc/PID/stat utime+stime.
- bosh: ${m.bosh.pairs} pairs of BOSH sessions (hold=1, wait=60), ${m.bosh.window} messages in flight per session, a long poll always outstanding; ${m.bosh.dur / 1000} s measured.
- Rates (logins/s, resumes/s) count the successful ones up to the last success: a session left unanswered until the ${ANSWER_TIMEOUT_MS / 1000} s timeout is counted as failed and listed below the table, and does not stretch the window.
- resume: ${m.resume.k} resumable sessions; each is cut (socket destroyed, no \`<close/>\`) and at once reconnected: new WebSocket → SCRAM → restart → \`<resume previd h/>\` → \`<resumed/>\`; ${m.resume.c} at once.
- ceiling: the same message flow against a bare \`ws\` echo server (bench/echo-server.mjs): each frame goes back to its sender.
- slow-reader (gateway only): u0 stores a 60 KB vCard; u1's WebSocket stops reading (socket paused) and asks for it ${m.flow?.slowReader.requests} times; peak RSS (sampled every 50 ms) over ${(m.flow?.slowReader.settle ?? 0) / 1000} s against the bytes sent and the vCard bytes asked for.
- bosh-amplification (gateway only): u1 stores a 60 KB vCard and sends one BOSH body with ${m.flow?.boshAmp.requests} requests for it, no request to fetch the answers; peak RSS likewise.
- bystander-ping: u3 sends ${m.flow?.ping.messages} chat messages to offline u2 as fast as its socket takes them (bounces read); meanwhile u4 pings the server back to back; the ping round trips during the flood.
${clusterSetup(servers)}
- archiving (gateway only): msg-throughput with the message archive on (the default: every chat message archived for sender and recipient, SQLite, batched commits the route waits for), then with \`MAM_ENABLED=false\`, each on a fresh server.
- shaping (gateway only): msg-throughput with \`MAX_INBOUND_BYTES_PER_SECOND\` at its default, then with rate and burst at 1 GiB (as good as off: the schema has no "off"), each on a fresh server.

## Results (medians)

${tableText}

${noise}

${load}
${base ? `\n${compareHead}\n\n${compareText}\n` : ''}
## Targets of issue 6

${targetText}
${gapText ? `\n## Targets not met: the gap, what limits it, what would close it\n\n${gapText}\n` : ''}${clusterText ? `\n## Cluster (issue 14 item 6)\n\n${clusterText}\n` : ''}${scaleMed.length ? `\n## Scale curve (${m.scale.reps} repetition per point)\n\n${m.msg.pairs} pairs exchange messages as in msg-throughput while the other sessions sit idle; RSS per session is the idle growth over all sessions, one-time growth included; "marginal" is the growth in idle RSS from the previous point per added session (each point is its own server process).\n\n${scaleTable(scaleMed)}\n` : ''}${profiles.map((pr) => `\n## Gateway CPU profile during ${pr.label}\n\n\`node --cpu-prof\` (${pr.file}, not committed); self time by function, % of non-idle samples in the measured window. Under the profiler: ${underProfiler(pr.run)}.\n\n${profileTable(pr)}\n`).join('')}
## Raw results (JSON lines)

\`\`\`jsonl
${raw}
\`\`\`
`;
  // The reconnect scenario's section (bench/reconnect.mjs, measured apart) is kept across full runs.
  const kept = existsSync(outFile) ? /<!-- reconnect:begin[\s\S]*?<!-- reconnect:end -->/.exec(readFileSync(outFile, 'utf8'))?.[0] : undefined;
  writeFileSync(outFile, kept ? `${md.trimEnd()}\n\n${kept}\n` : md);
  log(`wrote ${outFile.slice(ROOT.length)}`);
}

/** --report-from FILE: tables and results file again from the JSON lines of an earlier run (its stdout or RESULTS.md). */
async function reportFrom(file) {
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const meta = lines.find((l) => l.run)?.run;
  if (!meta) throw new Error(`${file} has no {"run": …} line`);
  const rest = lines.filter((l) => !l.run);
  const discarded = rest.filter((l) => l.discarded);
  const kept = rest.filter((l) => !l.discarded);
  const profiles = [];
  for (const line of kept.filter((l) => l.scenario.startsWith('profile-'))) {
    const label = line.scenario.slice('profile-'.length);
    const f = join(ROOT, 'bench', '.profiles', `gateway-${label}-${meta.mode}.cpuprofile`);
    try { profiles.push({ label, ...summarizeProfile(f, { top: 25, window: line.monoUs }), run: line, file: f.slice(ROOT.length) }); } catch { log(`no profile ${f}`); }
  }
  await report({
    meta, discarded, profiles,
    results: kept.filter((l) => SCENARIOS.includes(l.scenario)),
    scale: kept.filter((l) => l.scenario.startsWith('scale-')),
  });
}

(opt('--report-from') ? reportFrom(/** @type {string} */ (opt('--report-from'))) : main()).catch((err) => {
  log(`failed: ${err.stack ?? err}`);
  process.exit(1);
});

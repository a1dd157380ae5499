// The servers under test, each in its own folder under the bench's work
// directory, on 127.0.0.1 only: the gateway (node dist/main.js, spawned here),
// Prosody and ejabberd (through ../shared/peers/*.sh) and a bare ws echo
// server (the transport ceiling). Only processes started here are ever
// signalled, by PID.
import { spawn, execFile } from 'node:child_process';
import { createHash, createHmac, pbkdf2, randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** ../shared/peers of the project; of the main checkout for a git worktree under /work/wt/<name>. */
export const PEERS = [join(ROOT, '..', 'shared', 'peers'), join(ROOT, '..', '..', 'shared', 'peers')].find((d) => existsSync(d)) ?? join(ROOT, '..', 'shared', 'peers');
export const DOMAIN = 'localhost';
/** One PBKDF2 iteration count for every server: ejabberd's fixed 4096, the gateway's minimum; Prosody reads it per account. */
export const ITERATIONS = 4096;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs a command to completion; rejects with its output on a non-zero exit. */
export function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024, timeout: opts.timeout ?? 600000, ...opts }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`.slice(0, 4000)));
      else resolve({ stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

// ---- /proc readers ----
let clkTck = 100;
export async function initProc() {
  try { clkTck = Number((await run('getconf', ['CLK_TCK'])).stdout.trim()) || 100; } catch { /* 100 */ }
}

/** Resident set size in KiB (VmRSS). @param {number} pid */
export function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** User + system CPU seconds of the process (all its threads). @param {number} pid */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of proc(5) are utime and stime; f[0] is field 3 (state).
  return (Number(f[11]) + Number(f[12])) / clkTck;
}

/** CPU seconds the whole machine spent busy (all cores, /proc/stat), for spotting other load. */
export function machineBusySeconds() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal ...
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / clkTck;
}

/** Whether the process is gone (or a zombie nobody reaped). @param {number} pid */
export function gone(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z';
  } catch { return true; }
}

async function waitGone(pid, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (gone(pid)) return true;
    await sleep(50);
  }
  return gone(pid);
}

/** Signals a child we spawned and waits for its exit, with SIGKILL after `ms`. */
export async function stopChild(child, signal, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const t = setTimeout(() => child.kill('SIGKILL'), ms);
  await exited;
  clearTimeout(t);
}

async function httpStatus(url, method = 'GET', body) {
  try {
    const res = await fetch(url, { method, body, signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch { return 0; }
}

/**
 * Salted passwords for accounts whose salt we chose, so the generator needs
 * no PBKDF2 while measuring. Returns hex by `${saltB64}|${iterations}`.
 */
function deriveSalted(password, saltBytes, iterations) {
  return new Promise((res, rej) => pbkdf2(password, saltBytes, iterations, 20, 'sha1', (e, k) => (e ? rej(e) : res(k))));
}

export class Gateway {
  name = 'gateway';
  /** @param {{ dir: string, port: number, root?: string, profileDir?: string, log: (s: string) => void }} o */
  constructor(o) {
    this.dir = o.dir;
    /** Where dist/ and bin/ are (a snapshot, so concurrent rebuilds of dist/ do not change what is measured). */
    this.root = o.root ?? ROOT;
    this.port = o.port;
    this.profileDir = o.profileDir;
    this.log = o.log;
    this.pid = 0;
    /** @type {import('node:child_process').ChildProcess | undefined} */
    this.child = undefined;
    /** Settings of one scenario (e.g. inbound shaping off), on top of env(). @type {Record<string, string>} */
    this.extraEnv = {};
    mkdirSync(join(this.dir, 'data'), { recursive: true });
  }

  get wsUrl() { return `ws://127.0.0.1:${this.port}/xmpp-websocket`; }
  get boshUrl() { return `http://127.0.0.1:${this.port}/http-bind`; }

  env() {
    return {
      ...process.env,
      PORT: String(this.port), HOST: '127.0.0.1', DATA_DIR: join(this.dir, 'data'), XMPP_DOMAIN: DOMAIN,
      SCRAM_ITERATIONS: String(ITERATIONS), LOG_LEVEL: 'warn', ALLOW_INSECURE_PLAIN: 'false',
      // All generator connections come from a few loopback addresses.
      BOSH_MAX_SESSIONS_PER_IP: '100000',
      // Every bench client comes from 127.0.0.1: per-address limits would measure themselves, not the server.
      MAX_CONNECTIONS_PER_IP: '1000000', MAX_UNAUTHENTICATED_PER_IP: '1000000',
      NEW_CONNECTIONS_PER_IP_PER_SECOND: '1000000', NEW_CONNECTIONS_BURST_PER_IP: '1000000',
      ...this.settings(),
      ...this.extraEnv,
    };
  }

  /** Settings of a variant of the gateway (lib/cluster.mjs: Redis and PostgreSQL); a scenario's extraEnv still wins. */
  settings() { return {}; }

  /** `user import` of every account in one transaction. @param {string[]} users @param {string} password */
  async createUsers(users, password) {
    const input = users.map((u) => `${u}@${DOMAIN} ${password}\n`).join('');
    // cwd is the work folder so that a .env of the project is not read.
    await run(process.execPath, [join(this.root, 'bin', 'xmpp-web-gateway.js'), 'user', 'import'], { cwd: this.dir, env: this.env(), input });
    return {};
  }

  /**
   * The presence scenario's rosters, written straight into the stopped server's SQLite database
   * (after `user import` made it): every account of a group has every other one as a contact with
   * subscription both, and a roster version. @param {string[][]} groups
   */
  async writeRosters(groups) {
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(join(this.dir, 'data', 'gateway.sqlite'), { fileMustExist: true });
    try {
      const item = db.prepare("INSERT OR REPLACE INTO roster_items (host, username, jid, name, subscription, ask, approved, groups) VALUES (?, ?, ?, NULL, 'both', 0, 0, '[]')");
      const version = db.prepare('INSERT OR REPLACE INTO roster_versions (host, username, version) VALUES (?, ?, 1)');
      db.transaction(() => {
        for (const g of groups) {
          for (const u of g) {
            version.run(DOMAIN, u);
            for (const v of g) if (v !== u) item.run(DOMAIN, u, `${v}@${DOMAIN}`);
          }
        }
      })();
    } finally {
      db.close();
    }
  }

  async start() {
    const args = [];
    if (this.profileDir) args.push('--cpu-prof', `--cpu-prof-dir=${this.profileDir}`);
    // GW_NODE_ARGS: node flags for the gateway's processes only (say --trace-gc-nvp), not the bench's (README.md).
    if (process.env.GW_NODE_ARGS) args.push(...process.env.GW_NODE_ARGS.split(' ').filter(Boolean));
    args.push(join(this.root, 'dist', 'main.js'));
    const out = openSync(join(this.dir, 'gateway.log'), 'a');
    this.child = spawn(process.execPath, args, { cwd: this.dir, env: this.env(), stdio: ['ignore', out, out] });
    closeSync(out);
    this.pid = /** @type {number} */ (this.child.pid);
    this.stopping = false;
    const child = this.child;
    child.once('exit', (code, signal) => {
      if (!this.stopping) this.log(`${this.name} (pid ${child.pid}) exited by itself: code ${code}, signal ${signal}; log: ${join(this.dir, 'gateway.log')}`);
    });
    const end = Date.now() + 30000;
    while (Date.now() < end) {
      if (this.child.exitCode !== null) {
        const tail = readFileSync(join(this.dir, 'gateway.log'), 'utf8').split('\n').slice(-15).join('\n');
        throw new Error(`gateway exited with ${this.child.exitCode}:\n${tail}`);
      }
      if ((await httpStatus(`http://127.0.0.1:${this.port}/readyz`)) === 200) return;
      await sleep(100);
    }
    throw new Error('gateway did not become ready within 30 s');
  }

  async stop() {
    if (!this.child) return;
    this.stopping = true;
    await stopChild(this.child, 'SIGTERM', 30000);
    this.child = undefined;
  }
}

export class Prosody {
  name = 'prosody';
  /** @param {{ dir: string, port: number, log: (s: string) => void }} o */
  constructor(o) {
    this.dir = o.dir;
    this.port = o.port;
    this.log = o.log;
    this.pid = 0;
  }

  get wsUrl() { return `ws://127.0.0.1:${this.port}/xmpp-websocket`; }
  get boshUrl() { return `http://127.0.0.1:${this.port}/http-bind`; }

  /**
   * Writes the accounts as mod_auth_internal_hashed stores them (Prosody
   * 0.12, storage "internal": data/<host>/accounts/<user>.dat, a Lua table
   * with hex stored_key/server_key, the salt as a string and its
   * iteration_count, which SCRAM uses as stored). `prosodyctl register`
   * would take ~60 ms per account and hash with 10000 iterations.
   */
  async createUsers(users, password) {
    // util.datamanager escapes non-alphanumerics of the host as %xx; 'localhost' has none.
    const accounts = join(this.dir, 'data', DOMAIN, 'accounts');
    mkdirSync(accounts, { recursive: true });
    /** @type {Record<string, string>} */
    const salted = {};
    let next = 0;
    const work = async () => {
      while (next < users.length) {
        const user = users[next++];
        const salt = randomUUID();
        const sp = await deriveSalted(password, Buffer.from(salt, 'utf8'), ITERATIONS);
        const clientKey = createHmac('sha1', sp).update('Client Key').digest();
        const storedKey = createHash('sha1').update(clientKey).digest('hex');
        const serverKey = createHmac('sha1', sp).update('Server Key').digest('hex');
        writeFileSync(join(accounts, `${user}.dat`),
          `return {\n\t["iteration_count"] = ${ITERATIONS};\n\t["server_key"] = "${serverKey}";\n\t["stored_key"] = "${storedKey}";\n\t["salt"] = "${salt}";\n};\n`);
        salted[`${Buffer.from(salt, 'utf8').toString('base64')}|${ITERATIONS}`] = sp.toString('hex');
      }
    };
    await Promise.all(Array.from({ length: 8 }, work));
    return salted;
  }

  async start() {
    await run('bash', [join(PEERS, 'prosody.sh'), 'start', this.dir], { env: { ...process.env, PROSODY_HTTP_PORT: String(this.port) }, timeout: 120000 });
    this.pid = Number(readFileSync(join(this.dir, 'launcher.pid'), 'utf8').trim());
  }

  async stop() {
    if (!this.pid) return;
    await run('bash', [join(PEERS, 'prosody.sh'), 'stop', this.dir]);
    if (!(await waitGone(this.pid, 20000))) {
      try { process.kill(this.pid, 'SIGKILL'); } catch { /* gone */ }
      await waitGone(this.pid, 5000);
    }
    this.pid = 0;
  }
}

export class Ejabberd {
  name = 'ejabberd';
  /** @param {{ dir: string, port: number, log: (s: string) => void }} o */
  constructor(o) {
    this.dir = o.dir;
    this.port = o.port;
    this.log = o.log;
    this.pid = 0;
    mkdirSync(this.dir, { recursive: true });
  }

  get wsUrl() { return `ws://127.0.0.1:${this.port}/ws`; }
  get boshUrl() { return `http://127.0.0.1:${this.port}/bosh`; }

  env() {
    return {
      ...process.env, EJABBERD_HTTP_PORT: String(this.port),
      // SCRAM hashes (4096 iterations) as the other two store them; the format is fixed per DIR at creation.
      EJABBERD_PASSWORD_FORMAT: 'scram', EJABBERD_LOGLEVEL: 'warning',
    };
  }

  /** Bulk import (XEP-0227) into a running server; the names must be PREFIX0..PREFIX(n-1). */
  async createUsers(users, password) {
    const prefix = users[0].replace(/\d+$/, '');
    users.forEach((u, i) => { if (u !== `${prefix}${i}`) throw new Error('ejabberd bulk users must be numbered from 0'); });
    await this.start();
    try {
      // In chunks: one ctl call is an RPC with a timeout (~60 s), and SCRAM hashing runs ~130 accounts/s.
      for (let first = 0; first < users.length; first += 1000) {
        const count = Math.min(users.length, first + 1000);
        await run('bash', [join(PEERS, 'ejabberd.sh'), 'users', this.dir, prefix, String(count), password, String(first)], { env: this.env(), timeout: 600000 });
      }
    } finally {
      await this.stop();
    }
    return {};
  }

  async start() {
    await run('bash', [join(PEERS, 'ejabberd.sh'), 'start', this.dir], { env: this.env(), timeout: 120000 });
    this.pid = Number((await run('bash', [join(PEERS, 'ejabberd.sh'), 'pid', this.dir], { env: this.env() })).stdout.trim());
  }

  async stop() {
    if (!this.pid) return;
    await run('bash', [join(PEERS, 'ejabberd.sh'), 'stop', this.dir], { env: this.env(), timeout: 120000 });
    await waitGone(this.pid, 10000);
    this.pid = 0;
  }
}

/** A bare `ws` echo server: the transport ceiling of this machine. */
export class Echo {
  name = 'ws-echo';
  /** @param {{ dir: string, port: number, log: (s: string) => void }} o */
  constructor(o) {
    this.dir = o.dir;
    this.port = o.port;
    this.pid = 0;
    mkdirSync(this.dir, { recursive: true });
  }

  get wsUrl() { return `ws://127.0.0.1:${this.port}/`; }

  async createUsers() { return {}; }

  async start() {
    this.child = spawn(process.execPath, [join(ROOT, 'bench', 'echo-server.mjs'), String(this.port)], { cwd: this.dir, stdio: ['ignore', 'pipe', 'inherit'] });
    this.pid = /** @type {number} */ (this.child.pid);
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('echo server did not start')), 10000);
      this.child.stdout.once('data', () => { clearTimeout(t); resolve(undefined); });
      this.child.once('exit', (code) => { clearTimeout(t); reject(new Error(`echo server exited ${code}`)); });
    });
  }

  async stop() {
    if (this.child) await stopChild(this.child, 'SIGTERM', 30000);
    this.child = undefined;
  }
}

/** Versions for the report. */
export async function versions() {
  const v = { node: process.version };
  try { v.prosody = (await run('dpkg-query', ['-W', '-f=${Version}', 'prosody'])).stdout.trim(); } catch { v.prosody = 'not installed'; }
  try { v.ejabberd = (await run('dpkg-query', ['-W', '-f=${Version}', 'ejabberd'])).stdout.trim(); } catch { v.ejabberd = 'not installed'; }
  try { v.lua = readFileSync('/usr/bin/prosody', 'utf8').split('\n')[0].replace('#!/usr/bin/env ', ''); } catch { /* */ }
  return v;
}

/**
 * Copies dist/, bin/ and package.json of `from` (this tree, or another
 * checkout's build: run.mjs --gateway-root) to `dest` (inside this project, so
 * this tree's node_modules resolves), linking public/: other engineers rebuild
 * dist/ while the bench runs, and a half-written dist/ must not be measured.
 */
export function snapshotGateway(dest, from = ROOT) {
  if (!existsSync(join(from, 'dist', 'main.js'))) throw new Error(`${join(from, 'dist', 'main.js')} is missing: run npm run build (or pass --build)`);
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(dest, { recursive: true });
  cpSync(join(from, 'dist'), join(dest, 'dist'), { recursive: true });
  cpSync(join(from, 'bin'), join(dest, 'bin'), { recursive: true });
  cpSync(join(from, 'package.json'), join(dest, 'package.json'));
  symlinkSync(join(from, 'public'), join(dest, 'public'));
  return dest;
}

// --baseline <git-ref>: the gateway as it was at another revision, measured
// next to the current tree in the same run. Issue 12 reshapes the core and asks
// that "messages/s and logins/s stay within 5 % of the numbers before the
// change, measured in one run": numbers from different runs differ by more
// than 5 % on two shared cores, so before and after must share the run.
//
// The revision is checked out in a temporary git worktree (detached) and built
// there with this tree's TypeScript; node_modules is a symlink to this tree's,
// so nothing is installed from the network. The worktree is removed at the end,
// on errors and on SIGINT/SIGTERM (through the process's 'exit').
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { median } from './stats.mjs';

/** The issue's rule: current/baseline of these medians at least MIN_RATIO. */
const MIN_RATIO = 0.95;
/** scenario, metric, label: the rates issue 12 holds to the baseline. */
const RULED = [
  ['msg-throughput', 'msgsPerSec', 'messages/s (WS)'],
  ['login-rate', 'sessionsPerSec', 'logins/s'],
];
/**
 * The same work per server CPU-second: a cross-check, not the rule. Other load
 * on the shared cores changes how much CPU a server gets, and with it the rates
 * above, far more than its cost per message or login.
 */
const CROSS_CHECK = [
  ['msg-throughput', 'msgsPerCpuSec', 'messages per server CPU-s'],
  ['login-rate', 'loginsPerCpuSec', 'logins per server CPU-s'],
];
/** Other load (% of a core) above which a compared run is listed as disturbed; run.mjs's QUIET_PCT. */
const DISTURBED_PCT = 25;

const git = (root, args) => spawnSync('git', ['-C', root, ...args], { encoding: 'utf8' });

/** Whether a server name is a gateway: the current tree ('gateway') or a baseline ('gateway@<commit>'). */
export const isGateway = (name) => name === 'gateway' || name.startsWith('gateway@');

export class BaselineTree {
  /** @param {{ root: string, ref: string, log: (s: string) => void }} o */
  constructor(o) {
    this.root = o.root;
    this.ref = o.ref;
    this.log = o.log;
    const r = git(o.root, ['rev-parse', '--verify', '--quiet', '--short=7', `${o.ref}^{commit}`]);
    if (r.status !== 0) throw new Error(`--baseline ${o.ref}: not a commit of this repository`);
    this.commit = r.stdout.trim();
    this.name = `gateway@${this.commit}`;
    /** The worktree; set once `git worktree add` ran, cleared when removed. @type {string | undefined} */
    this.dir = undefined;
    /** The running build, killed by remove(). @type {import('node:child_process').ChildProcess | undefined} */
    this.child = undefined;
  }

  /** Checks the revision out in `dir` (which must not exist) and builds its dist/. @param {string} dir */
  async build(dir) {
    const add = git(this.root, ['worktree', 'add', '--detach', dir, this.commit]);
    if (add.status !== 0) throw new Error(`git worktree add ${dir} ${this.commit} failed: ${add.stderr}`);
    this.dir = dir;
    this.log(`baseline worktree ${dir} (${this.ref} = ${this.commit}); building ${this.name}`);
    symlinkSync(join(this.root, 'node_modules'), join(dir, 'node_modules'));
    const t = Date.now();
    const tsc = join(dir, 'node_modules', 'typescript', 'bin', 'tsc');
    const { code, out } = await new Promise((resolve) => {
      this.child = spawn(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      this.child.stdout?.on('data', (d) => { text += d; });
      this.child.stderr?.on('data', (d) => { text += d; });
      this.child.once('close', (c) => resolve({ code: c, out: text }));
    });
    this.child = undefined;
    // tsc emits despite type errors (this tree's node_modules may be newer than the revision's): run it if it built.
    if (!existsSync(join(dir, 'dist', 'main.js'))) throw new Error(`building ${this.name} failed (tsc exit ${code}):\n${out.slice(-2000)}`);
    if (code !== 0) this.log(`warning: tsc reported errors for ${this.name} (exit ${code}); running what it emitted:\n${out.slice(-1000)}`);
    this.log(`${this.name} built in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }

  /** Removes the worktree (synchronous, so it can run in an 'exit' listener); idempotent. */
  remove() {
    this.child?.kill('SIGKILL');
    const dir = this.dir;
    if (!dir) return;
    this.dir = undefined;
    const r = git(this.root, ['worktree', 'remove', '--force', dir]);
    if (r.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      git(this.root, ['worktree', 'prune']);
    }
  }
}

/**
 * The before/after section: per ruled rate the current tree's and the
 * baseline's value per repetition (interleaved A B A B…), the ratio of their
 * medians and the verdict; then one verdict line for the issue's rule.
 * @param {any[]} results @param {string} base the baseline's server name @param {(x: any, d?: number) => string} fmt
 */
export function beforeAfter(results, base, fmt) {
  const values = (scen, server, key) => results.filter((r) => r.scenario === scen && r.server === server && !r.error && Number.isFinite(r[key]))
    .sort((a, b) => a.rep - b.rep).map((r) => r[key]);
  const reps = (xs) => `${fmt(median(xs))} (${xs.map((x) => fmt(x)).join(', ')})`;
  /** One table row; the ratio of the medians, or undefined when either side was not measured. */
  const row = ([scen, key, label], judge) => {
    const cur = values(scen, 'gateway', key);
    const old = values(scen, base, key);
    if (!cur.length || !old.length) return { r: undefined, text: `| ${label} | – | – | – | ${judge ? `not measured (run ${scen})` : ''} |` };
    const r = median(cur) / median(old);
    const verdict = judge ? (r >= MIN_RATIO ? '**met**' : '**not met**') : 'cross-check';
    return { r, text: `| ${label} | ${reps(cur)} | ${reps(old)} | ${r.toFixed(3)}×${judge ? ` (need ≥ ${MIN_RATIO})` : ''} | ${verdict} |` };
  };
  const ruled = RULED.map((x) => row(x, true));
  const oks = ruled.map(({ r }) => (r === undefined ? undefined : r >= MIN_RATIO));
  const verdict = oks.some((x) => x === undefined) ? 'not measured' : oks.every(Boolean) ? '**met**' : '**not met**';
  const compared = new Set(RULED.map(([scen]) => scen));
  const disturbed = results.filter((r) => compared.has(r.scenario) && (r.server === 'gateway' || r.server === base) && r.otherCpuPct > DISTURBED_PCT)
    .map((r) => `${r.scenario}/${r.server}#${r.rep} ${Math.round(r.otherCpuPct)} %`);
  return [
    `| rate | gateway (current tree): median (per rep) | ${base}: median (per rep) | current/baseline | verdict |`,
    '|---|---:|---:|---:|---|',
    ...ruled.map((x) => x.text),
    ...CROSS_CHECK.map((x) => row(x, false).text),
    '',
    `Issue 12 (messages/s and logins/s within 5 % of the numbers before the change, measured in one run; medians of the repetitions, the two gateways taking turns A B A B…): ${verdict}.`,
    ...(disturbed.length ? ['', `Not a fair comparison: other load above ${DISTURBED_PCT} % of a core during ${disturbed.length} of the compared runs (${disturbed.join(', ')}); the rates follow the CPU each server got (see the per-CPU-second cross-check). Measure again on a quieter machine.`] : []),
  ].join('\n');
}

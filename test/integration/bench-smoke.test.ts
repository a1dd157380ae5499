import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// The benchmark is not part of the test suite (no timed tests); this only
// checks that it runs end to end against the gateway and prints its table.
// `--smoke` is the benchmark's cheapest mode: gateway only, tiny N.
const root = fileURLToPath(new URL('../..', import.meta.url));

// The four runs take about 110 s on 2 cores, near the suite's limit per file
// (package.json): on a loaded CI machine the 120 s it was then cut this file
// short. Each subtest still has its own limit.
t.setTimeout(1_800_000);

// What each run is awaited for is its exit. The bench's own watchdog (a whole
// --smoke run's limit, 120 s) is a hang guard for a person at a terminal, and
// on a loaded CI machine (load 26 on 2 cores) it stopped a run that was only
// slow: each run here gets the subtest's limit instead, less a margin for the
// run's own clean-up, so one clock bounds it.
const RUN_LIMIT_MS = 420_000;
const watchdog = ['--watchdog', String((RUN_LIMIT_MS - 30_000) / 1000)];

// A run still going when this process ends (a timeout, a failed assertion
// that threw) would keep its Redis, PostgreSQL, gateways and baseline worktree
// running through the rest of the suite: it gets SIGINT, on which it removes
// them (the SIGINT test below checks that).
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGINT');
});

/** Runs bench/run.mjs; `onStart` sees the child (to signal it). Resolves with the exit code and stdout+stderr. */
async function bench(args: string[], onStart?: (child: ChildProcess, output: () => string) => void) {
  const child = spawn(process.execPath, ['bench/run.mjs', ...args, ...watchdog], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('close', () => running.delete(child));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  onStart?.(child, () => out);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, out };
}

/** The --baseline worktree the run logged, and whether git still lists it. */
function baselineWorktree(out: string) {
  const dir = /baseline worktree (\S+)/.exec(out)?.[1];
  const listed = dir !== undefined && spawnSync('git', ['-C', root, 'worktree', 'list', '--porcelain'], { encoding: 'utf8' }).stdout.includes(dir);
  return { dir, exists: dir !== undefined && existsSync(dir), listed };
}

t.test('npm run bench -- --smoke runs every scenario against the gateway and prints its table', async (t) => {
  t.setTimeout(RUN_LIMIT_MS);
  const { code, out } = await bench(['--smoke']);
  t.equal(code, 0, `the benchmark exits 0\n${out.slice(-2000)}`);
  for (const scenario of ['login-rate', 'idle-memory', 'msg-throughput', 'bosh', 'resume', 'slow-reader', 'bosh-amplification', 'bystander-ping', 'shaping', 'presence']) {
    t.match(out, new RegExp(`^\\| ${scenario} \\| [^|]+ \\| -?[\\d,.]+ \\|`, 'm'), `${scenario} has a measured figure for the gateway`);
  }
  // The flow-control targets (issue 10) get a verdict from what was measured.
  for (const target of ['peak RSS, slow reader', 'peak RSS, BOSH amplification', 'bystander ping p99', 'messages/s with inbound shaping on']) {
    t.match(out, new RegExp(`^\\| ${target}[^\\n]*\\| \\*\\*(met|not met)\\*\\* \\|$`, 'm'), `${target}: measured, with a verdict`);
  }
  t.match(out, /^\| msg-throughput \| messages\/s \(WS\) \| [\d,.]+ \| [\d,.]+ \|/m, 'the ws-echo ceiling was measured too');
});

t.test('--baseline HEAD builds that revision in a temporary worktree, measures it next to the current tree, and removes the worktree', async (t) => {
  t.setTimeout(RUN_LIMIT_MS);
  const head = spawnSync('git', ['-C', root, 'rev-parse', '--short=7', 'HEAD'], { encoding: 'utf8' }).stdout.trim();
  const { code, out } = await bench(['--smoke', '--scenarios', 'msg-throughput,login-rate', '--baseline', 'HEAD']);
  t.equal(code, 0, `the benchmark exits 0\n${out.slice(-2000)}`);
  t.match(out, new RegExp(`^\\| scenario \\| metric \\| gateway \\| gateway@${head} \\| ws-echo \\| current/baseline \\|`, 'm'), 'both gateways and the ratio are columns');
  for (const row of ['messages/s \\(WS\\)', 'logins/s \\(open']) {
    t.match(out, new RegExp(`^\\| [a-z-]+ \\| ${row}[^|]* \\| [\\d,.]+ \\| [\\d,.]+ \\| [^|]* \\| \\d+\\.\\d{3}× \\|`, 'm'), `${row}: both measured, with their ratio`);
  }
  t.match(out, /^Issue 12 \(messages\/s and logins\/s within 5 %[^\n]*: \*\*(met|not met)\*\*\.$/m, 'the before/after verdict');
  const wt = baselineWorktree(out);
  t.ok(wt.dir, 'the run logged its worktree');
  t.notOk(wt.exists || wt.listed, 'the worktree is gone, from disk and from git');
});

t.test('--baseline: SIGINT during the build still removes the worktree', async (t) => {
  t.setTimeout(RUN_LIMIT_MS);
  const { code, out } = await bench(['--smoke', '--scenarios', 'msg-throughput', '--baseline', 'HEAD'], (child, output) => {
    const poll = setInterval(() => {
      if (!/baseline worktree /.test(output())) return;
      clearInterval(poll);
      child.kill('SIGINT');
    }, 20);
    child.once('close', () => clearInterval(poll));
  });
  t.equal(code, 130, `the run stops on SIGINT\n${out.slice(-2000)}`);
  const wt = baselineWorktree(out);
  t.ok(wt.dir, 'the run had made its worktree');
  t.notOk(wt.exists || wt.listed, 'the worktree is gone, from disk and from git');
  const work = /work folder (\S+)/.exec(out)?.[1];
  t.ok(work && !existsSync(work), 'so is the work folder');
});

t.test('--smoke on gateway-cluster: two workers on a Redis and a PostgreSQL the bench starts log in, and their Redis commands are counted', async (t) => {
  t.setTimeout(RUN_LIMIT_MS);
  const { code, out } = await bench(['--smoke', '--servers', 'gateway-cluster', '--scenarios', 'login-rate']);
  t.equal(code, 0, `the benchmark exits 0\n${out.slice(-2000)}`);
  t.match(out, /^\| login-rate \| logins\/s \(open[^|]*\| [\d,.]+ \|/m, 'the cluster logged in');
  t.match(out, /^\| login-rate \| Redis commands per login \| [\d,.]+ \|/m, 'Redis commands per login, measured');
  t.match(out, /^\| gateway-cluster \| login \| [\d,.]+ \| [\d,.]+ \|/m, 'the Cluster section lists them');
  const work = /work folder (\S+)/.exec(out)?.[1];
  t.ok(work && !existsSync(work), 'the work folder is gone');
  const dirs = /and PostgreSQL \(port \d+\) in (.+)$/m.exec(out)?.[1].split(' ') ?? [];
  t.equal(dirs.length, 2, 'the run logged the folders of its Redis and PostgreSQL');
  const running = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).stdout;
  for (const dir of dirs) {
    t.notOk(existsSync(dir), `${dir} is removed`);
    t.notOk(running.includes(dir), `no process of ${dir} is left`);
  }
});

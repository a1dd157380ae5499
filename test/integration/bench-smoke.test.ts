import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// The benchmark is not part of the test suite (no timed tests); this only
// checks that it runs end to end against the gateway and prints its table.
// `--smoke` is the benchmark's cheapest mode: gateway only, tiny N.
t.test('npm run bench -- --smoke runs every scenario against the gateway and prints its table', async (t) => {
  t.setTimeout(300_000);
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const child = spawn(process.execPath, ['bench/run.mjs', '--smoke'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  t.equal(code, 0, `the benchmark exits 0\n${out.slice(-2000)}`);
  for (const scenario of ['login-rate', 'idle-memory', 'msg-throughput', 'bosh', 'resume', 'slow-reader', 'bosh-amplification', 'bystander-ping', 'shaping']) {
    t.match(out, new RegExp(`^\\| ${scenario} \\| [^|]+ \\| -?[\\d,.]+ \\|`, 'm'), `${scenario} has a measured figure for the gateway`);
  }
  // The flow-control targets (issue 10) get a verdict from what was measured.
  for (const target of ['peak RSS, slow reader', 'peak RSS, BOSH amplification', 'bystander ping p99', 'messages/s with inbound shaping on']) {
    t.match(out, new RegExp(`^\\| ${target}[^\\n]*\\| \\*\\*(met|not met)\\*\\* \\|$`, 'm'), `${target}: measured, with a verdict`);
  }
  t.match(out, /^\| msg-throughput \| messages\/s \(WS\) \| [\d,.]+ \| [\d,.]+ \|/m, 'the ws-echo ceiling was measured too');
});

/**
 * The benchmark's reconnect scenario (issue 15 item 8) runs end to end
 * against the built gateway and counts round trips through its delaying
 * proxy. Round trips are a count, not a time: the protocol fixes them.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

t.test('npm run bench -- --scenarios reconnect counts the round trips: five for the classic reconnect, one with FAST', async (t) => {
  const child = spawn(process.execPath, ['bench/run.mjs', '--scenarios', 'reconnect', '--reps', '2', '--delay', '5', '--no-write'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  t.equal(code, 0, `the scenario exits 0\n${out.slice(-2000)}`);
  // <open/>, SCRAM first, SCRAM final, the restart's <open/>, <resume/>: five answers waited for.
  t.match(out, /^\| classic: SCRAM-SHA-1 \+ restart \+ `<resume\/>` \| 5 \| [\d.]+ \| [\d.]+ \|$/m, 'the classic path waits for five answers');
  // <open/> and <authenticate/> with the token and <resume/> in one flight, answered by <success/> with <resumed/>.
  t.match(out, /^\| SASL2 \+ FAST token \+ inline resume \| 1 \| [\d.]+ \| [\d.]+ \|$/m, 'FAST with inline resume waits for one');
  t.match(out, /Goal \(FAST 1 round trip after the open, classic ≥ 4\): \*\*met\*\*/, 'the goal is met');
});

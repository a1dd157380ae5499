import t from 'tap';
import { spawnSync } from 'node:child_process';

// test/setup/child-node-options.mjs: what a test starts does not load tap's coverage hook (coverage is off), which
// doubled a gateway's start-up CPU; whatever else NODE_OPTIONS carries reaches it.
t.test("a Node process a test starts gets NODE_OPTIONS without tap's processinfo import", async (t) => {
  t.notMatch(process.env.NODE_OPTIONS ?? '', /processinfo/, 'not in this process’s environment');
  const seen = (env: NodeJS.ProcessEnv) => spawnSync(process.execPath, ['-e', 'process.stdout.write(JSON.stringify([process.env.NODE_OPTIONS ?? null, process.execArgv]))'], { env, encoding: 'utf8' });
  const [options, execArgv] = JSON.parse(seen(process.env).stdout) as [string | null, string[]];
  t.notMatch(options ?? '', /processinfo/, 'not in the child’s NODE_OPTIONS');
  t.notMatch(execArgv.join(' '), /processinfo/, 'nor among its arguments');
  const kept = JSON.parse(seen({ ...process.env, NODE_OPTIONS: '--max-old-space-size=300' }).stdout) as [string | null];
  t.equal(kept[0], '--max-old-space-size=300', 'other options set for a child are passed on');
});

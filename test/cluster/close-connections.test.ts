/**
 * A node's close destroys every Redis connection made from its client
 * (redis.ts connectionOf / closeConnections), whatever its owner's stop
 * did. A module's stop that has not reached its connection when the close
 * ends (Redis unreachable: cluster/index.ts waits 0 ms for the modules then;
 * or a stop that hangs) leaves it open: once Redis is gone node-redis
 * reconnects for ever, and the process never exits. A cluster test file
 * once passed every test and was still killed by tap's timeout
 * (directed-presence-dead-node, whose nodes crash); this is the one way out
 * whatever the module did.
 *
 * A process of its own: a main client and one connection made from it,
 * subscribed; Redis stops; on SIGUSR2 the main client is destroyed, then
 * closeConnections runs (or not, the control). The process must end by
 * itself.
 */
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startRedis } from '../helpers/redis.js';
import { ensureBuilt, ROOT } from '../helpers/built.js';
import { eventually } from '../helpers/eventually.js';

const redisJs = join(ROOT, 'dist', 'cluster', 'redis.js');

const CHILD = `
const { connectRedis, connectionOf, closeConnections } = await import(${JSON.stringify(pathToFileURL(redisJs).href)});
const quiet = { warn() {} };
const main = await connectRedis(process.env.REDIS_URL, quiet, 'main');
const sub = connectionOf(main);
sub.on('error', () => undefined);
await sub.connect();
await sub.subscribe('x', () => undefined);
process.on('SIGUSR2', () => {
  main.destroy();
  if (process.argv[1] === 'close') closeConnections(main);
  process.stdout.write('closed\\n');
});
process.stdout.write('ready\\n');
`;

async function run(t: Test, mode: 'close' | 'control'): Promise<{ child: ChildProcess; exited: () => boolean }> {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, mode], { env: { ...process.env, REDIS_URL: redis.url() }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  let done = false;
  child.once('exit', () => { done = true; });
  t.teardown(() => { if (!done) child.kill('SIGKILL'); });
  await eventually(() => out.includes('ready\n'), { timeout: 15_000, message: () => `the child to connect: ${err}` });
  await redis.stop();
  child.kill('SIGUSR2');
  await eventually(() => out.includes('closed\n'), { timeout: 10_000, message: () => `the child to close: ${err}` });
  return { child, exited: () => done };
}

t.test('closeConnections ends a connection its owner never closed, reconnecting to a Redis that is gone: the process exits', async (t) => {
  ensureBuilt(redisJs);
  const { exited } = await run(t, 'close');
  const ended = await eventually(exited, { timeout: 10_000, message: 'the child to exit' }).then(() => true, () => false);
  t.ok(ended, 'the process ended by itself');
});

t.test('the control: without closeConnections the same process does not end', async (t) => {
  ensureBuilt(redisJs);
  const { exited } = await run(t, 'control');
  // Reconnection attempts every RECONNECT_MAX_MS (2 s) at most: a few of them.
  await new Promise((r) => setTimeout(r, 5000));
  t.notOk(exited(), 'still running, reconnecting to a Redis that is gone');
});

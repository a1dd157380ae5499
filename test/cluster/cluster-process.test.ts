/**
 * The cluster wiring with real processes (test/helpers/cluster.ts): nodes
 * join on start and leave on SIGTERM, a node whose lease is taken away
 * stops serving with a non-zero exit, /readyz says not ready while Redis is
 * unreachable (and the shutdown still ends), a Redis unreachable at start
 * stops the start naming REDIS_URL.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileBacking, withGatewayCluster } from '../helpers/cluster.js';
import { ensureBuilt, ROOT } from '../helpers/built.js';
import { eventually } from '../helpers/eventually.js';
import { startRedis } from '../helpers/redis.js';
import { connectRedis, keyPrefix } from '../../src/cluster/redis.js';
import { RawWsClient } from '../helpers/ws-client.js';

t.setTimeout(180_000);
// One Redis and one PostgreSQL for the file: each test's cluster takes a database of its own in each.
const backing = fileBacking(t);
const quiet = { warn: () => undefined };
const readyz = async (port: number) => (await fetch(`http://127.0.0.1:${port}/readyz`)).status;

t.test('nodes join on start, leave on SIGTERM (exit 0, a survivor cleans up after them), and a restart takes the same NODE_ID back', async (t) => {
  const cluster = await withGatewayCluster(t, { nodes: 2, ...backing() });
  const redis = await connectRedis(cluster.redisUrl, quiet, 'test');
  t.teardown(() => redis.destroy());
  const prefix = keyPrefix(cluster.redisUrl);
  t.same((await redis.sMembers(`${prefix}nodes`)).sort(), ['n0', 'n1']);
  t.equal(await readyz(cluster.nodes[1]!.port), 200);
  const metrics = await (await fetch(`${cluster.nodes[0]!.httpUrl}/metrics`)).text();
  t.match(metrics, /^xmpp_cluster_delivery_total\{event="sent",reason=""\} 0$/m, 'the delivery counters are served');
  t.match(metrics, /^xmpp_cluster_delivery_total\{event="refused",reason="inbox-full"\} 0$/m);

  const exit = await cluster.kill(1, 'SIGTERM');
  t.same(exit, { code: 0, signal: null }, 'a clean shutdown');
  t.equal(await redis.exists(`${prefix}node:n1`), 0, 'it released its lease');
  // The survivor cleans up after it as after a crash (its hibernating sessions, its inbox), then drops it.
  await eventually(async () => (await redis.sMembers(`${prefix}nodes`)).join() === 'n0',
    { timeout: 15_000, message: 'n0 took n1 out of the member set' });

  await cluster.restart(1);
  t.same((await redis.sMembers(`${prefix}nodes`)).sort(), ['n0', 'n1'], 'back under its name');
});

t.test('a node declared dead (lease gone, out of the member set) stops serving and exits non-zero, saying why', async (t) => {
  const cluster = await withGatewayCluster(t, { nodes: 1, ...backing() });
  const redis = await connectRedis(cluster.redisUrl, quiet, 'test');
  t.teardown(() => redis.destroy());
  const client = await RawWsClient.connect(cluster.nodes[0]!.wsUrl);
  t.teardown(() => client.ws.terminate());
  await cluster.addUser('alice', 'pw');
  await client.login('alice', 'pw', 'desk');
  // What a survivor does to a node paused longer than its lease: its lease is gone and it is out of the member set.
  cluster.nodes[0]!.expectExit();
  await redis.del(`${keyPrefix(cluster.redisUrl)}node:n0`);
  await redis.sRem(`${keyPrefix(cluster.redisUrl)}nodes`, 'n0');
  const exit = await cluster.nodes[0]!.exited();
  t.equal(exit.code, 1, 'non-zero exit');
  t.ok(cluster.nodes[0]!.events().some((e) => e.event === 'cluster-lease-lost'), 'the lost lease is logged');
  t.ok(cluster.nodes[0]!.events().some((e) => e.event === 'shutdown' && e.signal === 'cluster-lease-lost'), 'and the shutdown names it');
  await client.waitClosed(5000);
  t.pass("the session was closed, not left hanging");
});

t.test('/readyz says not ready while Redis is unreachable, and SIGTERM still ends the process', async (t) => {
  // A Redis of its own: this test stops it.
  const redis = await startRedis();
  const cluster = await withGatewayCluster(t, { nodes: 1, redis, postgres: backing().postgres });
  t.equal(await readyz(cluster.nodes[0]!.port), 200);
  await redis.stop(true);
  await eventually(async () => (await readyz(cluster.nodes[0]!.port)) === 503, { message: '/readyz to answer 503' });
  const started = Date.now();
  const exit = await cluster.kill(0, 'SIGTERM');
  t.equal(exit.signal, null, 'it exited by itself, not killed');
  t.ok(Date.now() - started < 9000, 'within the leave timeout and the drain');
});

t.test('a Redis unreachable at start stops the start naming REDIS_URL (exit 2)', async (t) => {
  const main = join(ROOT, 'dist', 'main.js');
  ensureBuilt(main);
  const env = {
    PATH: process.env.PATH, HOST: '127.0.0.1', PORT: '0', CLUSTER: 'redis', REDIS_URL: 'redis://127.0.0.1:1/0', SM_BACKEND: 'redis',
    STORAGE: 'postgres', DATABASE_URL: await backing().postgres.createDatabase(), NODE_ID: 'lonely', LOG_LEVEL: 'silent', DATA_DIR: t.testdir(),
  };
  const child = spawn(process.execPath, [main], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL'); });
  const code = await new Promise((r) => child.once('exit', r));
  t.equal(code, 2);
  t.match(stderr, /configuration error: REDIS_URL: cannot connect to Redis/, 'names the variable');
  t.notMatch(stderr, /127\.0\.0\.1:1/, 'without echoing the URL (it may hold a password)');
});

/**
 * Delivery survives a consumer killed mid-way (kill -9 of a real process):
 * the entry its handler had not finished is read again, in order, by the
 * restarted node with the same NODE_ID, and so is what was addressed to it
 * while it was down. Nothing is read twice that was acknowledged.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { ensureBuilt, ROOT } from '../helpers/built.js';
import { connectRedis, keyPrefix } from '../../src/cluster/redis.js';
import { joinCluster } from '../../src/cluster/node.js';
import { createRedisDelivery, type InboxEntry } from '../../src/cluster/delivery.js';
import { eventually } from '../helpers/eventually.js';

let redis: TestRedis;
t.before(async () => { redis = await startRedis(); });
t.teardown(async () => { await redis.stop(); });

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
const CAPS = { log: quiet, maxEntries: 1000, maxBytes: 1 << 20, maxAttempts: 3, blockMs: 200 };
const dist = (file: string) => pathToFileURL(join(ROOT, 'dist', 'cluster', file)).href;

// Node 'b' in a process of its own: prints each entry it is given; an entry for hang… never finishes.
const CONSUMER = `
const { connectRedis, keyPrefix } = await import(${JSON.stringify(dist('redis.js'))});
const { joinCluster } = await import(${JSON.stringify(dist('node.js'))});
const { createRedisDelivery } = await import(${JSON.stringify(dist('delivery.js'))});
const quiet = { info() {}, warn() {}, error() {} };
const url = process.env.REDIS_URL;
const node = await joinCluster(await connectRedis(url, quiet, 'b'), { id: 'b', prefix: keyPrefix(url), ttlMs: 1000, log: quiet });
const d = createRedisDelivery(node, { log: quiet, maxEntries: 1000, maxBytes: 1048576, maxAttempts: 3, batch: 1 });
d.onEntry(async (e) => { process.stdout.write('got ' + e.to + '\\n'); if (e.to.startsWith('hang')) await new Promise(() => {}); });
await d.start();
process.stdout.write('ready\\n');
`;

const stanza = (to: string): InboxEntry => ({ kind: 'stanza', to, xml: `<message to='${to}'/>` });

t.test('an entry whose handler was cut short by kill -9 is read again by the restarted node, before what came later', async (t) => {
  ensureBuilt(join(ROOT, 'dist', 'cluster', 'delivery.js'));
  const url = redis.url();
  const child = spawn(process.execPath, ['--input-type=module', '-e', CONSUMER], { env: { ...process.env, REDIS_URL: url }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL'); });
  await eventually(() => out.includes('ready\n'), { timeout: 15000, message: () => `the consumer process to start: ${err}` });

  const aRedis = await connectRedis(url, quiet, 'a');
  t.teardown(() => aRedis.destroy());
  const aNode = await joinCluster(aRedis, { id: 'a', prefix: keyPrefix(url), ttlMs: 1000, log: quiet });
  t.teardown(() => aNode.stop());
  const a = createRedisDelivery(aNode, CAPS);
  for (const to of ['x0', 'x1', 'hang2', 'x3']) await a.send('b', stanza(to));
  await eventually(() => out.includes('got hang2\n'), { message: 'the consumer to reach hang2' });
  const exited = new Promise((r) => child.once('exit', r));
  process.kill(child.pid!, 'SIGKILL');
  await exited;
  t.same(out.split('\n').filter((l) => l.startsWith('got ')), ['got x0', 'got x1', 'got hang2'], 'the killed consumer got as far as hang2');
  // Its lease is still current for a moment: this is addressed to it while it is down.
  await a.send('b', stanza('x4'));

  const bRedis = await connectRedis(url, quiet, 'b2');
  t.teardown(() => bRedis.destroy());
  // The same NODE_ID: joinCluster waits for the dead process's lease to run out.
  const bNode = await joinCluster(bRedis, { id: 'b', prefix: keyPrefix(url), ttlMs: 1000, log: quiet });
  t.teardown(() => bNode.stop());
  const b = createRedisDelivery(bNode, CAPS);
  t.teardown(() => b.stop());
  const got: string[] = [];
  b.onEntry(async (e) => { got.push(e.to); });
  await b.start();
  await eventually(() => got.length >= 3, { message: 'the restarted node to read its inbox' });
  t.same(got, ['hang2', 'x3', 'x4'], 'the unfinished entry again, then the rest, in order; x0 and x1 were acknowledged');
  await eventually(async () => (await aRedis.xLen(`${keyPrefix(url)}inbox:b`)) === 0, { message: 'the inbox emptied' });
});

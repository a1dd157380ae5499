/**
 * CLUSTER=redis: /readyz answers 503 while Redis is unreachable (the node
 * cannot reach its directory, inbox or XEP-0198 journal), and what operators
 * read says the same: xmpp_ready 0 (the dashboard's "1 while /readyz says
 * ready"), the flip counted in xmpp_readiness_changes_total (the flapping
 * alert), one not-ready log line with the reason, and all of it back once
 * Redis is. One in-process gateway on a real Redis, reached through a TCP
 * relay the test cuts and restores; storage in memory.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import { createConnection, createServer, type Socket } from 'node:net';
import pino from 'pino';
import { loadConfig } from '../../src/config/index.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import { startCluster } from '../../src/cluster/index.js';
import type { Log } from '../../src/xmpp/log.js';
import { MANY_CLIENTS, PRE_SASL2, startServer } from '../helpers/server.js';
import { startRedis } from '../helpers/redis.js';
import { scrape, value } from '../helpers/metrics-text.js';
import { eventually } from '../helpers/eventually.js';

/** A TCP relay to 127.0.0.1:`port` that can be cut (every connection closed, new ones refused) and restored. */
async function relay(port: number): Promise<{ port: number; cut(): void; restore(): void; close(): Promise<void> }> {
  const open = new Set<Socket>();
  let up = true;
  const server = createServer((client) => {
    if (!up) return client.destroy();
    const upstream = createConnection({ host: '127.0.0.1', port });
    for (const s of [client, upstream]) { open.add(s); s.on('close', () => open.delete(s)); s.on('error', () => undefined); }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    cut() { up = false; for (const s of open) s.destroy(); },
    restore() { up = true; },
    close: () => new Promise<void>((resolve) => { for (const s of open) s.destroy(); server.close(() => resolve()); }),
  };
}

t.test('Redis unreachable: /readyz 503 with its reason, xmpp_ready 0, the flips counted and logged; then ready again', async (t) => {
  const redis = await startRedis();
  t.teardown(() => redis.stop());
  const link = await relay(redis.port);
  t.teardown(() => link.close());
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({ write(chunk: Buffer, _e, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done(); } });
  // The cluster needs STORAGE=postgres in its configuration; the store handed over is in memory (nothing here reads accounts).
  const env = {
    CLUSTER: 'redis', REDIS_URL: `redis://127.0.0.1:${link.port}/0`, NODE_ID: 'r1', STORAGE: 'postgres', DATABASE_URL: 'postgres://unused.invalid/none',
    SM_BACKEND: 'redis', CLUSTER_NODE_TTL: '1000',
  };
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', SCRAM_ITERATIONS: '4096', ...PRE_SASL2, ...MANY_CLIENTS, ...env });
  const cluster = await startCluster(config, pino({ level: 'silent' }) as unknown as Log);
  const server = await startServer(env, createMemoryStorage(), { cluster, logger: { level: 'info', stream: sink } });
  t.teardown(async () => { await server.close(); await cluster.close().catch(() => undefined); });
  const readyz = async () => {
    const res = await fetch(`${server.httpUrl}/readyz`);
    return { status: res.status, body: await res.json() as { status: string; reason?: string } };
  };
  const notReadyLines = () => lines.filter((l) => l.event === 'not-ready');

  t.same(await readyz(), { status: 200, body: { status: 'ready' } });
  const before = await scrape(server);
  t.equal(value(before, 'xmpp_ready'), 1, 'ready');

  link.cut();
  await eventually(async () => (await readyz()).status === 503, { message: '/readyz to answer 503 while Redis is away' });
  t.same(await readyz(), { status: 503, body: { status: 'not ready', reason: 'redis' } }, 'with the reason');
  const down = await scrape(server);
  t.equal(value(down, 'xmpp_ready'), 0, 'xmpp_ready says not ready, as /readyz does');
  t.equal(value(down, 'xmpp_readiness_changes_total') - value(before, 'xmpp_readiness_changes_total'), 1, 'the flip is counted');
  t.equal(notReadyLines().length, 1, 'one not-ready line');
  t.match(notReadyLines()[0], { reason: 'redis' });

  link.restore();
  await eventually(async () => (await readyz()).status === 200, { message: '/readyz to answer 200 once Redis is back' });
  const up = await scrape(server);
  t.equal(value(up, 'xmpp_ready'), 1, 'xmpp_ready back to 1');
  t.equal(value(up, 'xmpp_readiness_changes_total') - value(before, 'xmpp_readiness_changes_total'), 2, 'both flips counted');
  t.equal(lines.filter((l) => l.event === 'ready').length, 1, 'one ready-again line');
});

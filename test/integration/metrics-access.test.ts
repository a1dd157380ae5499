/**
 * Who may scrape (issue 17 item 2): /metrics is served to the direct peers
 * METRICS_ALLOW names, judged by the socket's address and never by
 * X-Forwarded-For (which anyone reaching a trusted proxy writes), and
 * METRICS_PORT moves it to a listener of its own. Every client here comes
 * from 127.0.0.1, so the refusals use allow lists without loopback.
 */
import t from 'tap';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { createPeerFilter } from '../../src/http/metrics-access.js';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withServer } from '../helpers/server.js';
import { ensureBuilt, ROOT } from '../helpers/built.js';
import { freePort } from '../helpers/redis.js';
import { eventually } from '../helpers/eventually.js';

async function scrape(base: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const res = await fetch(`${base}/metrics`, { headers });
  return { status: res.status, body: await res.text() };
}

t.test('by default loopback may scrape', async (t) => {
  const server = await withServer(t);
  const r = await scrape(server.httpUrl);
  t.equal(r.status, 200);
  t.match(r.body, /^# HELP xmpp_sessions /m, 'the gateway metrics');
});

t.test('a peer outside METRICS_ALLOW gets 403, whatever X-Forwarded-For says', async (t) => {
  // 127.0.0.1 is a trusted proxy, so req.ip would be the forged 10.1.2.3, which the list allows.
  const server = await withServer(t, { METRICS_ALLOW: '10.0.0.0/8', TRUSTED_PROXIES: '127.0.0.1' });
  const plain = await scrape(server.httpUrl);
  t.equal(plain.status, 403);
  t.notMatch(plain.body, /xmpp_/, 'no metric leaks');
  const forged = await scrape(server.httpUrl, { 'x-forwarded-for': '10.1.2.3' });
  t.equal(forged.status, 403, 'a forged X-Forwarded-For naming an allowed address is not believed');
});

t.test('an allowed peer is served even when X-Forwarded-For names a stranger', async (t) => {
  const server = await withServer(t, { METRICS_ALLOW: '127.0.0.1', TRUSTED_PROXIES: '127.0.0.1' });
  t.equal((await scrape(server.httpUrl, { 'x-forwarded-for': '203.0.113.9' })).status, 200);
});

t.test('METRICS_ALLOW=none refuses everyone', async (t) => {
  const server = await withServer(t, { METRICS_ALLOW: 'none' });
  t.equal((await scrape(server.httpUrl)).status, 403);
});

t.test('METRICS_PORT serves /metrics on its own listener and PORT no longer does', async (t) => {
  const server = await withServer(t, { METRICS_PORT: '9464' });
  t.equal((await scrape(server.httpUrl)).status, 404, 'not on the public port');
  const metrics = server.app.metricsHttp;
  if (!metrics) return t.fail('no metrics listener');
  // main.ts listens on METRICS_PORT; the test takes a free port instead.
  await metrics.listen({ port: 0, host: '127.0.0.1' });
  const address = metrics.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const r = await scrape(`http://127.0.0.1:${port}`);
  t.equal(r.status, 200);
  t.match(r.body, /^# HELP xmpp_sessions /m);
  t.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 404, 'nothing else is served there');
});

t.test('METRICS_ALLOW applies on the metrics port too', async (t) => {
  const server = await withServer(t, { METRICS_PORT: '9464', METRICS_ALLOW: '192.168.0.0/16' });
  await server.app.metricsHttp!.listen({ port: 0, host: '127.0.0.1' });
  const address = server.app.metricsHttp!.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  t.equal((await scrape(`http://127.0.0.1:${port}`)).status, 403);
});

t.test('the peer filter: addresses, ranges, IPv4-mapped peers and garbage', async (t) => {
  const allowed = createPeerFilter(loadConfig({}).metricsAllow);
  for (const ok of ['127.0.0.1', '127.9.9.9', '::1', '10.2.3.4', '172.31.255.1', '192.168.1.1', 'fd00::5', '::ffff:10.0.0.1']) t.ok(allowed(ok), `${ok} is allowed by default`);
  for (const no of ['192.0.2.2', '172.32.0.1', '8.8.8.8', '2001:db8::1', '::ffff:8.8.8.8', 'garbage', '', undefined]) t.notOk(allowed(no), `${String(no)} is refused by default`);
  const one = createPeerFilter(['2001:db8::7', '198.51.100.0/24']);
  t.ok(one('2001:db8::7'));
  t.notOk(one('2001:db8::8'));
  t.ok(one('198.51.100.200'));
  t.notOk(one('198.51.101.1'));
});

t.test('a bad METRICS_ALLOW stops the start naming the variable', async (t) => {
  t.throws(() => loadConfig({ METRICS_ALLOW: '10.0.0.0/99' }), ConfigError);
  t.throws(() => loadConfig({ METRICS_ALLOW: 'example.com' }), /METRICS_ALLOW="example.com" is invalid/);
  t.throws(() => loadConfig({ METRICS_PORT: '-1' }), /METRICS_PORT/);
  t.throws(() => loadConfig({ PORT: '8080', METRICS_PORT: '8080' }), /METRICS_PORT=8080 is invalid: expected a port other than PORT/);
  t.equal(loadConfig({ PORT: '8080', METRICS_PORT: '9464' }).metricsPort, 9464);
});

t.test('the real process listens on METRICS_PORT at METRICS_HOST', async (t) => {
  const main = join(ROOT, 'dist', 'main.js');
  ensureBuilt(main);
  const dir = mkdtempSync(join(tmpdir(), 'xwg-metrics-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const [port, metricsPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, [main], {
    stdio: 'ignore',
    env: { PATH: process.env.PATH, PORT: String(port), HOST: '127.0.0.1', METRICS_PORT: String(metricsPort), METRICS_HOST: '127.0.0.1', DATA_DIR: dir, LOG_LEVEL: 'silent' },
  });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  await eventually(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, { timeout: 30_000, message: 'the gateway to be ready' });
  const r = await scrape(`http://127.0.0.1:${metricsPort}`);
  t.equal(r.status, 200);
  t.match(r.body, /^xmpp_build_info\{/m);
  t.equal((await scrape(`http://127.0.0.1:${port}`)).status, 404, 'not on PORT');
});

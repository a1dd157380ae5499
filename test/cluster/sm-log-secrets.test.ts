/**
 * A guest's smid is the only secret of its session: SASL ANONYMOUS logins
 * are new random accounts, and any anonymous login that presents the smid
 * resumes it (README "Stream management", resume.ts sameAccount). So no log
 * line may carry it, on either node of a takeover. Two in-process gateways on
 * a real Redis, their application and cluster logs read as JSON lines.
 */
import t, { type Test } from 'tap';
import { Writable } from 'node:stream';
import pino from 'pino';
import { loadConfig } from '../../src/config/index.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import { startCluster } from '../../src/cluster/index.js';
import type { Log } from '../../src/xmpp/log.js';
import { NS } from '../../src/xml/index.js';
import { MANY_CLIENTS, PRE_SASL2, startServer, type TestServer } from '../helpers/server.js';
import { startRedis } from '../helpers/redis.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { eventually } from '../helpers/eventually.js';

const lines: string[] = [];
const sink = new Writable({ write(chunk: Buffer, _e, done) { lines.push(chunk.toString()); done(); } });
const redis = await startRedis();
t.teardown(() => redis.stop());

async function node(t: Test, id: string): Promise<TestServer> {
  const env = {
    CLUSTER: 'redis', REDIS_URL: redis.url(0), NODE_ID: id, STORAGE: 'postgres', DATABASE_URL: 'postgres://unused.invalid/none',
    SM_BACKEND: 'redis', CLUSTER_NODE_TTL: '1000', SASL_ANONYMOUS_HOSTS: 'localhost', SM_RESUME_TIMEOUT: '60',
  };
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', SCRAM_ITERATIONS: '4096', ...PRE_SASL2, ...MANY_CLIENTS, ...env });
  // Debug: every line either node could write about the session.
  const cluster = await startCluster(config, pino({ level: 'debug' }, sink) as unknown as Log);
  const server = await startServer(env, createMemoryStorage(), { cluster, logger: { level: 'debug', stream: sink } });
  t.teardown(async () => { await cluster.leave().catch(() => undefined); await server.close(); await cluster.close().catch(() => undefined); });
  return server;
}

/** A guest on `server`: SASL ANONYMOUS and the stream restart. */
async function guest(t: Test, server: TestServer): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.ws.terminate());
  await c.openStream();
  c.send(`<auth xmlns='${NS.SASL}' mechanism='ANONYMOUS'/>`);
  if ((await c.next()).local !== 'success') throw new Error('anonymous login failed');
  await c.openStream();
  return c;
}

t.test('a guest session taken over by another node: its smid is in no log line', async (t) => {
  const n1 = await node(t, 'n1');
  const n2 = await node(t, 'n2');
  const a = await guest(t, n1);
  a.send(`<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='${NS.BIND}'/></iq>`);
  await a.until((el) => el.attr('id') === 'b');
  a.send(`<enable xmlns='${NS.SM}' resume='true'/>`);
  const smid = (await a.until((el) => el.is('enabled', NS.SM))).attr('id')!;
  a.ws.terminate();
  await eventually(() => lines.some((l) => l.includes('"session-hibernated"')), { message: 'the session hibernates on n1' });

  const b = await guest(t, n2);
  b.send(`<resume xmlns='${NS.SM}' previd='${smid}' h='0'/>`);
  t.ok((await b.until((el) => el.ns === NS.SM && el.local !== 'r')).is('resumed', NS.SM), 'another guest login with the smid resumes it on n2');
  await eventually(() => lines.some((l) => l.includes('"session-moved"') || l.includes('"session-taken-over"')), { message: 'the takeover logged' });
  const leaking = lines.filter((l) => l.includes(smid));
  t.same(leaking, [], 'no log line holds the smid');
});

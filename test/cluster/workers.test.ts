/**
 * WORKERS=N (issue 14 item 6): one gateway process whose primary forks
 * three workers on the one port, each a cluster node (NODE_ID-w<i>). Clients on
 * different workers chat; a BOSH session whose requests each come on a new
 * connection (so the primary hands them to either worker) keeps working,
 * forwarded to the worker that holds it; a worker killed with -9 is started
 * again under its name; SIGTERM to the primary ends every worker, one at a
 * time (the first leaves as in a rolling restart, the last ends the sessions).
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { fileBacking, withGatewayCluster } from '../helpers/cluster.js';
import { eventually } from '../helpers/eventually.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { RawBoshClient } from '../helpers/bosh-client.js';
import { connectRedis, keyPrefix } from '../../src/cluster/redis.js';
import { NS, x, type XmlElement } from '../../src/xml/index.js';
import { openPostgresStorage } from '../../src/storage/postgres/index.js';
import { SmPeer, chat } from '../helpers/sm-peer.js';
import { parseMetrics, value } from '../helpers/metrics-text.js';

t.setTimeout(180_000);
const quiet = { warn: () => undefined };

// One Redis and one PostgreSQL for the file: each test's cluster takes a database of its own in each.
const backing = fileBacking(t);
// Clients here do not answer the server's <close/> (RFC 7395 §3.6) when a worker ends their stream on
// SIGTERM; each stopping worker waited WS_CLOSE_TIMEOUT (5 s by default) for it. What is tested is the
// order and outcome of the stops, not that wait.
const CLOSE_WAIT = { WS_CLOSE_TIMEOUT: '1' };

/** The PIDs of the children of `pid` (the primary's workers). */
function children(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

t.test('workers on one port share their sessions; a killed worker comes back under its name; SIGTERM ends all', async (t) => {
  const cluster = await withGatewayCluster(t, { nodes: 1, ...backing(), env: { WORKERS: '3', ...CLOSE_WAIT } });
  const [gw] = cluster.nodes;
  const redis = await connectRedis(cluster.redisUrl, quiet, 'test');
  t.teardown(() => redis.destroy());
  const prefix = keyPrefix(cluster.redisUrl);
  const members = async () => (await redis.sMembers(`${prefix}nodes`)).sort().join(',');
  await eventually(async () => (await members()) === 'n0-w0,n0-w1,n0-w2', { timeout: 20_000, message: 'the three workers in the cluster' });
  await cluster.addUser('alice', 'pw');
  await cluster.addUser('bob', 'pw');

  // The primary hands each new connection to the next worker: log in until alice and bob sit on different ones.
  const alice = await RawWsClient.connect(gw!.wsUrl);
  t.teardown(() => alice.ws.terminate());
  await alice.login('alice', 'pw', 'desk');
  const nodeOf = async (bare: string, resource: string) => JSON.parse((await redis.hGet(`${prefix}dir:${bare}`, resource)) ?? '{}').node as string | undefined;
  const aliceNode = await eventually(() => nodeOf('alice@localhost', 'desk'), { timeout: 5000, message: "alice's directory entry" });
  let bob: RawWsClient | undefined;
  for (let i = 0; i < 6 && !bob; i++) {
    const c = await RawWsClient.connect(gw!.wsUrl);
    t.teardown(() => c.ws.terminate());
    await c.login('bob', 'pw', `phone${i}`);
    const node = await eventually(() => nodeOf('bob@localhost', `phone${i}`), { timeout: 5000, message: "bob's directory entry" });
    if (node !== aliceNode) bob = c;
  }
  t.ok(bob, 'bob got a session on the other worker');
  const bobJid = await eventually(async () => {
    const all = await redis.hGetAll(`${prefix}dir:bob@localhost`);
    return Object.entries(all).find(([, v]) => JSON.parse(v).node !== aliceNode)?.[0];
  }, { timeout: 5000, message: "bob's resource on the other worker" });
  alice.send(`<message xmlns='jabber:client' to='bob@localhost/${bobJid}' type='chat'><body>across workers</body></message>`);
  const got = await bob!.until((el: XmlElement) => el.local === 'message' && el.getChildText('body') === 'across workers', 10_000);
  t.equal(got.attrs.from, 'alice@localhost/desk', 'delivered from the other worker');

  // /metrics, each scrape on a connection of its own: whichever worker answers, it counts every worker's
  // sessions (they were one worker's each before, and jumped from scrape to scrape).
  const bound = Object.keys(await redis.hGetAll(`${prefix}dir:alice@localhost`)).length + Object.keys(await redis.hGetAll(`${prefix}dir:bob@localhost`)).length;
  const seen: number[] = [];
  for (let i = 0; i < 8; i++) {
    const res = await fetch(`${gw!.httpUrl}/metrics`, { headers: { connection: 'close' } });
    t.equal(res.status, 200, 'scraped');
    const samples = parseMetrics(await res.text());
    seen.push(value(samples, 'xmpp_sessions', { state: 'bound' }));
    if (i === 0) {
      t.equal(value(samples, 'xmpp_ready'), 1, 'xmpp_ready: every worker ready is 1, not the number of workers');
      t.equal(value(samples, 'xmpp_build_info'), 1, 'one build, one series at 1');
    }
  }
  t.same(seen, seen.map(() => bound), `every scrape counts the ${bound} bound sessions of all the workers`);

  // BOSH, each request on a connection of its own: whichever worker gets it, the session answers.
  const bosh = new RawBoshClient(gw!.boshUrl, { agent: new http.Agent({ keepAlive: false }) });
  t.teardown(() => bosh.destroy());
  const jid = await bosh.login('alice', 'pw', 'web');
  t.equal(jid, 'alice@localhost/web', 'logged in and bound over four connections');
  // Each worker in turn gets a request: those not holding the session forward it to the one that does.
  for (let i = 0; i < 6; i++) {
    const ping = await bosh.send({}, x('iq', { xmlns: NS.CLIENT, type: 'get', id: `p${i}` }, x('ping', { xmlns: 'urn:xmpp:ping' })));
    t.equal(ping.body?.getChild('iq', NS.CLIENT)?.attr('type'), 'result', `ping ${i} answered`);
  }
  const held = await eventually(async () => {
    const pid = gw!.pid();
    return pid === undefined ? undefined : children(pid);
  }, { timeout: 5000, message: 'the workers' });
  t.equal(held.length, 3, 'three worker processes');
  // Worker 0 by what it logged (pino's pid), not by the order of the PIDs: they wrap around (pid_max).
  const listeningPids = (node: string) => gw!.events().filter((e) => e.event === 'listening' && e.node === node).map((e) => e.pid as number);
  const [w0] = listeningPids('n0-w0');
  t.ok(w0 !== undefined && held.includes(w0), "worker 0's process found by its log");

  // A worker dies (kill -9): the primary starts it again under the same NODE_ID.
  process.kill(w0!, 'SIGKILL');
  await eventually(() => {
    const now = children(gw!.pid()!);
    return now.length === 3 && !now.includes(w0!);
  }, { timeout: 20_000, message: 'the killed worker replaced' });
  // Logs are JSON (pino) in the primary too: a log collector must not meet a line of plain text.
  t.ok(gw!.events().some((e) => e.event === 'worker-restarted' && e.worker === 0 && e.node === 'n0-w0' && e.signal === 'SIGKILL'),
    "the primary's restart of the worker is a JSON log line");
  await eventually(async () => (await members()) === 'n0-w0,n0-w1,n0-w2'
    && (await redis.exists(`${prefix}node:n0-w0`)) === 1,
  { timeout: 30_000, message: 'all three alive in the cluster again' });
  await eventually(() => listeningPids('n0-w0').some((pid) => pid !== w0 && children(gw!.pid()!).includes(pid)),
    { timeout: 30_000, message: 'the new worker 0 serving' });

  const workers = children(gw!.pid()!);
  const exit = await cluster.kill(0, 'SIGTERM');
  t.same(exit, { code: 0, signal: null }, 'the primary exits cleanly once its workers have');
  t.same(workers.filter((pid) => { try { process.kill(pid, 0); return true; } catch { return false; } }), [], 'no worker left running');
});

t.test('SIGTERM to the primary stops its workers one at a time: the first leaves as in a rolling restart, the last ends the sessions and stores their queues offline', async (t) => {
  const cluster = await withGatewayCluster(t, { nodes: 1, ...backing(), env: { WORKERS: '2', ...CLOSE_WAIT } });
  const [gw] = cluster.nodes;
  await cluster.addUser('alice', 'pw');
  await cluster.addUser('bob', 'pw');
  await eventually(() => gw!.events().filter((e) => e.event === 'listening').length === 2, { timeout: 20_000, message: 'both workers serving' });
  const redis = await connectRedis(cluster.redisUrl, quiet, 'test');
  t.teardown(() => redis.destroy());
  const nodeOf = async (resource: string) => JSON.parse((await redis.hGet(`${keyPrefix(cluster.redisUrl)}dir:alice@localhost`, resource)) ?? '{}').node as string | undefined;
  // The primary hands each connection to the next worker: log in until alice sits on worker 0, the one stopped first.
  let alice: SmPeer | undefined;
  for (let i = 0; i < 6 && !alice; i++) {
    const peer = await SmPeer.login(gw!.wsUrl, 'alice', 'pw', `phone${i}`, { autoAck: false });
    t.teardown(() => peer.c.ws.terminate());
    if ((await eventually(() => nodeOf(`phone${i}`), { message: "alice's directory entry" })) === 'n0-w0') alice = peer;
    else peer.c.send(`<close xmlns='${NS.FRAMING}'/>`);
  }
  if (!alice) throw new Error('alice never got a session on worker 0');
  const bob = await RawWsClient.connect(gw!.wsUrl);
  t.teardown(() => bob.ws.terminate());
  await bob.login('bob', 'pw', 'desk');
  for (const id of ['m1', 'm2', 'm3']) bob.send(chat(alice.jid, id));
  await eventually(() => alice.h === 3, { message: 'alice got the three messages (not acknowledged)' });

  const exit = cluster.kill(0, 'SIGTERM');
  t.equal((await alice.c.waitClosed(15_000)).code, 1001, 'worker 0 goes first: alice is dropped (1001), her session not ended');
  const { peer, answer } = await SmPeer.resume(gw!.wsUrl, 'alice', 'pw', alice.smid!, { autoAck: false, h: 0 });
  t.teardown(() => peer.c.ws.terminate());
  t.equal(answer.local, 'resumed', 'she resumes on worker 1, still running');
  await eventually(() => peer.h === 3, { message: 'the three unacknowledged messages resent' });
  const error = await peer.c.until((el) => el.local === 'error', 15_000);
  t.equal(streamErrorCondition(error), 'system-shutdown', 'worker 1, the last, ends the session when its turn comes');
  t.same(await exit, { code: 0, signal: null }, 'the primary exits cleanly once its workers have');
  t.equal(gw!.events().filter((e) => e.event === 'cluster-drained').length, 1, 'one worker left as in a rolling restart, the last ended its sessions');
  const storage = await openPostgresStorage({ url: cluster.databaseUrl });
  const stored = await storage.offline.list('localhost', 'alice').finally(() => storage.close());
  t.same(stored.map((m) => /id=['"](m\d)['"]/.exec(m.stanza)?.[1]).sort(), ['m1', 'm2', 'm3'], 'her unacknowledged messages are stored offline, each once: nothing stranded in Redis');
});

interface WorkerStatus { worker: number; node: string; status: string; reason?: string }
interface Readyz { status: number; body: { status: string; reason?: string; workers?: WorkerStatus[] } }

t.test('/readyz answers for every worker: 503 from each probe while one worker is hung or draining, 200 once all are ready again', async (t) => {
  const cluster = await withGatewayCluster(t, {
    nodes: 1, ...backing(),
    env: {
      WORKERS: '3',
      // A lease longer than the worker is kept stopped: silent past its lease, it would be counted dead, and
      // once continued end itself and be started again (cluster-lease-lost), a test of its own.
      CLUSTER_NODE_TTL: '60000',
      // A drain held open by a hibernating session until it resumes elsewhere (not the 5 s default running out).
      CLUSTER_DRAIN_TIMEOUT: '60', SHUTDOWN_TIMEOUT: '90',
      // No event-loop check: the stopped worker, continued, would report its stall as event-loop-lag, and a loaded
      // test machine stalls them all now and then (that check has tests of its own: test/integration/readiness.test.ts).
      READY_MAX_EVENT_LOOP_DELAY: '0',
    },
  });
  const [gw] = cluster.nodes;
  await cluster.addUser('alice', 'pw');
  await eventually(() => gw!.events().filter((e) => e.event === 'listening').length === 3, { timeout: 20_000, message: 'the three workers serving' });
  const pidOf = (node: string) => gw!.events().filter((e) => e.event === 'listening' && e.node === node).map((e) => e.pid as number).at(-1)!;
  // Each probe on a connection of its own, as a kubelet's: whichever worker accepts it answers.
  const probe = async (path = '/readyz'): Promise<Readyz> => {
    const res = await fetch(`${gw!.httpUrl}${path}`, { headers: { connection: 'close' } });
    return { status: res.status, body: await res.json() as Readyz['body'] };
  };
  const probes = async (n: number): Promise<Readyz[]> => {
    const out: Readyz[] = [];
    for (let i = 0; i < n; i++) out.push(await probe());
    return out;
  };
  const statuses = (rs: Readyz[]) => rs.map((r) => r.status);
  const bodies = (rs: Readyz[]) => rs.map((r) => JSON.stringify(r.body)).join(' ');
  const workers = (r: Readyz) => (r.body.workers ?? []).map((w) => `${w.worker} ${w.node} ${w.status}${w.reason === undefined ? '' : ` (${w.reason})`}`);
  const allReady = ['0 n0-w0 ready', '1 n0-w1 ready', '2 n0-w2 ready'];

  const before = await probes(5);
  t.same(statuses(before), [200, 200, 200, 200, 200], `every worker ready: every probe 200 (${bodies(before)})`);
  t.same(before.map((r) => r.body.status), ['ready', 'ready', 'ready', 'ready', 'ready']);
  t.same(workers(before[0]!), allReady, 'the body lists each worker');

  // A worker that does not answer (stopped: hung, as in a long synchronous stall) counts as not ready after a bounded wait.
  const w1 = pidOf('n0-w1');
  process.kill(w1, 'SIGSTOP');
  let hung: Readyz[];
  let liveness: number;
  try {
    hung = await probes(5);
    liveness = (await probe('/healthz')).status;
  } finally {
    process.kill(w1, 'SIGCONT');
  }
  t.same(statuses(hung), [503, 503, 503, 503, 503], `worker 1 hung: every probe 503, whichever worker answers it (${bodies(hung)})`);
  for (const r of hung) t.same(workers(r), ['0 n0-w0 ready', '1 n0-w1 not ready (no-answer)', '2 n0-w2 ready'], 'worker 1 named as not answering');
  t.equal(liveness, 200, "/healthz stays the answering worker's own: alive");
  await eventually(async () => (await probe()).status === 200, { timeout: 20_000, message: '/readyz 200 once worker 1 runs again' });
  const continued = await probes(5);
  t.same(statuses(continued), [200, 200, 200, 200, 200], `every probe 200 again (${bodies(continued)})`);

  // A worker draining (SIGTERM to it alone: it leaves as in a rolling restart) answers that it is not ready.
  // It is the worker alice's session sits on, which it holds for her to resume elsewhere: the drain lasts until she does.
  const redis = await connectRedis(cluster.redisUrl, quiet, 'test');
  t.teardown(() => redis.destroy());
  const alice = await SmPeer.login(gw!.wsUrl, 'alice', 'pw', 'phone', { autoAck: false });
  t.teardown(() => alice.c.ws.terminate());
  const entry = async () => JSON.parse((await redis.hGet(`${keyPrefix(cluster.redisUrl)}dir:alice@localhost`, 'phone')) ?? '{}').node as string | undefined;
  const node = await eventually(entry, { message: "alice's directory entry" });
  const index = Number(/-w(\d+)$/.exec(node)![1]);
  process.kill(pidOf(node), 'SIGTERM');
  t.equal((await alice.c.waitClosed(15_000)).code, 1001, `${node} drops alice's connection and drains, holding her session for her to resume`);
  const draining = await probes(5);
  t.same(statuses(draining), [503, 503, 503, 503, 503], `${node} draining: every probe 503 (${bodies(draining)})`);
  const drainingList = allReady.map((w, i) => (i === index ? `${i} ${node} not ready` : w));
  for (const r of draining) t.same(workers(r), drainingList, `${node} named as not ready`);
  const { peer: resumed, answer } = await SmPeer.resume(gw!.wsUrl, 'alice', 'pw', alice.smid!, { autoAck: false });
  // Gone before the cluster stops: a worker stopping with her connected waited its drain for her to resume
  // elsewhere (CLUSTER_DRAIN_TIMEOUT, 60 s here) until the teardown's SIGKILL, 10 s on.
  t.teardown(() => resumed.c.ws.terminate());
  t.equal(answer.local, 'resumed', 'she resumes on another worker, which ends the drain');
  await eventually(() => gw!.events().some((e) => e.event === 'worker-restarted' && e.worker === index), { timeout: 20_000, message: `${node} gone and started again` });
  await eventually(async () => (await probe()).status === 200, { timeout: 30_000, message: `/readyz 200 once the new ${node} is ready` });
  const after = await probes(5);
  t.same(statuses(after), [200, 200, 200, 200, 200], `every probe 200 again (${bodies(after)})`);
  t.same(workers(after[0]!), allReady);
});

/**
 * WORKERS=N and the per-address session limit (MAX_CONNECTIONS_PER_IP): each worker counted only its own
 * sessions, so N workers let one address open N times the limit. The workers now share their per-address
 * counts through the primary (node:cluster IPC), so the limit holds for the machine. Each worker is reached
 * on its own internal listener (the address it advertises for forwarded BOSH requests), so the test picks the
 * worker; the sessions are BOSH sessions, counted with WebSocket connections against the one limit.
 */
import http from 'node:http';
import t, { type Test } from 'tap';
import { fileBacking, withGatewayCluster } from '../helpers/cluster.js';
import { eventually } from '../helpers/eventually.js';
import { RawBoshClient, terminalCondition } from '../helpers/bosh-client.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { NS, x } from '../../src/xml/index.js';

t.setTimeout(180_000);

// One Redis and one PostgreSQL for the file: each test's cluster takes a database of its own in each.
const backing = fileBacking(t);

/** The counts travel over IPC: a moment after each change (not what is tested: the outcome is). */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 500));

t.test('MAX_CONNECTIONS_PER_IP holds across two workers; a closed session, or a dead worker\'s, frees its place', async (t) => {
  const cluster = await withGatewayCluster(t, { nodes: 1, ...backing(), env: { WORKERS: '2', MAX_CONNECTIONS_PER_IP: '2' } });
  const [gw] = cluster.nodes;
  const internal = (node: string, not?: unknown): string | undefined =>
    gw!.events().find((e) => e.event === 'listening' && e.node === node && e.pid !== not)?.internal as string | undefined;
  await eventually(() => internal('n0-w0') && internal('n0-w1'), { timeout: 20_000, message: 'both workers serving' });

  /** A BOSH session created on `base` (a worker's own address): the client, or the refusal's condition. */
  const session = async (base: string): Promise<RawBoshClient | string> => {
    const c = new RawBoshClient(`${base}/http-bind`);
    t.teardown(() => c.destroy());
    const res = await c.create();
    await settle();
    return terminalCondition(res) ?? c;
  };
  const a = internal('n0-w0')!;
  const b = internal('n0-w1')!;
  const a1 = await session(a);
  const b1 = await session(b);
  t.type(a1, RawBoshClient, 'one session on worker 0');
  t.type(b1, RawBoshClient, 'one on worker 1');
  t.equal(await session(a), 'policy-violation', 'a third on worker 0 is refused: two from 127.0.0.1 on the machine');
  t.equal(await session(b), 'policy-violation', 'and on worker 1');
  const ws = await RawWsClient.connect(gw!.wsUrl).then((c) => { c.ws.terminate(); return 'open'; }, (err: Error) => err.message);
  t.equal(ws, 'HTTP 429', 'a WebSocket on the shared port too');

  await (a1 as RawBoshClient).terminate();
  await settle();
  t.type(await session(b), RawBoshClient, "worker 0's closed session freed its place, taken on worker 1");

  // Worker 1, holding both, is killed with -9: its sessions count no more on worker 0; the worker started in
  // its place learns what worker 0 has open.
  const w1 = gw!.events().find((e) => e.event === 'listening' && e.node === 'n0-w1')?.pid as number;
  process.kill(w1, 'SIGKILL');
  await eventually(() => internal('n0-w1', w1), { timeout: 30_000, message: 'worker 1 started again' });
  await settle();
  t.type(await session(a), RawBoshClient, "the dead worker's places are free on worker 0");
  t.type(await session(a), RawBoshClient, 'both of them');
  t.equal(await session(internal('n0-w1', w1)!), 'policy-violation', "the new worker 1 counts worker 0's two");
  // Started while worker 0's count does not change: it asks for it (no count of worker 0 comes by itself).
  const w1b = gw!.events().find((e) => e.event === 'listening' && e.node === 'n0-w1' && e.pid !== w1)?.pid as number;
  process.kill(w1b, 'SIGKILL');
  const fresh = (): string | undefined => gw!.events().find((e) => e.event === 'listening' && e.node === 'n0-w1' && e.pid !== w1 && e.pid !== w1b)?.internal as string | undefined;
  await eventually(fresh, { timeout: 30_000, message: 'worker 1 started a second time' });
  t.equal(await session(fresh()!), 'policy-violation', "a worker started later counts what the others had open before it");
});

/** WORKERS=2 with `env`: each worker's own address, and a BOSH session opener (the client, or the refusal's condition). */
async function twoWorkers(t: Test, env: Record<string, string>) {
  const cluster = await withGatewayCluster(t, { nodes: 1, ...backing(), env: { WORKERS: '2', ...env } });
  const [gw] = cluster.nodes;
  const internal = (node: string): string | undefined =>
    gw!.events().find((e) => e.event === 'listening' && e.node === node)?.internal as string | undefined;
  await eventually(() => internal('n0-w0') && internal('n0-w1'), { timeout: 20_000, message: 'both workers serving' });
  const session = async (base: string, wait = true): Promise<RawBoshClient | string> => {
    const c = new RawBoshClient(`${base}/http-bind`);
    t.teardown(() => c.destroy());
    const res = await c.create();
    if (wait) await settle();
    return terminalCondition(res) ?? c;
  };
  return { cluster, gw: gw!, a: internal('n0-w0')!, b: internal('n0-w1')!, session };
}

t.test('BOSH_MAX_SESSIONS_PER_IP holds across two workers', async (t) => {
  const { gw, a, b, session } = await twoWorkers(t, { MAX_CONNECTIONS_PER_IP: '10', BOSH_MAX_SESSIONS_PER_IP: '2' });
  const a1 = await session(a);
  t.type(a1, RawBoshClient, 'one BOSH session on worker 0');
  t.type(await session(b), RawBoshClient, 'one on worker 1');
  t.equal(await session(a), 'policy-violation', 'a third on worker 0 is refused: two BOSH sessions from 127.0.0.1 on the machine');
  t.equal(await session(b), 'policy-violation', 'and on worker 1');
  const ws = await RawWsClient.connect(gw.wsUrl).then((c) => { c.ws.terminate(); return 'open'; }, (err: Error) => err.message);
  t.equal(ws, 'open', 'a WebSocket is not a BOSH session: MAX_CONNECTIONS_PER_IP (10) admits it');
  await (a1 as RawBoshClient).terminate();
  await settle();
  t.type(await session(b), RawBoshClient, "worker 0's ended session freed its place, taken on worker 1");
});

t.test('MAX_UNAUTHENTICATED_PER_IP holds across two workers; a stream that authenticates no longer counts on the other', async (t) => {
  const { cluster, gw, a, b, session } = await twoWorkers(t, { MAX_CONNECTIONS_PER_IP: '10', MAX_UNAUTHENTICATED_PER_IP: '2' });
  await cluster.addUser('alice', 'secret');
  const a1 = await session(a);
  t.type(a1, RawBoshClient, 'one unauthenticated stream on worker 0');
  t.type(await session(b), RawBoshClient, 'one on worker 1');
  t.equal(await session(a), 'policy-violation', 'a third on worker 0 is refused: two unauthenticated from 127.0.0.1 on the machine');
  t.equal(await session(b), 'policy-violation', 'and on worker 1');
  const ws = async (): Promise<string> => RawWsClient.connect(gw.wsUrl).then((c) => { c.ws.terminate(); return 'open'; }, (err: Error) => err.message);
  t.equal(await ws(), 'HTTP 429', 'a WebSocket on the shared port too');

  // The stream on worker 0 authenticates: worker 1 learns it (no session opens or ends).
  const auth = x('auth', { xmlns: NS.SASL, mechanism: 'PLAIN' }, Buffer.from('\0alice\0secret').toString('base64'));
  const success = await (a1 as RawBoshClient).send({}, auth);
  t.ok(success.body?.getChild('success', NS.SASL), 'the stream on worker 0 authenticated');
  await settle();
  t.type(await session(b), RawBoshClient, 'its place is free on worker 1');
  t.equal(await session(a), 'policy-violation', 'and taken: two unauthenticated again on the machine');
});

t.test('NEW_CONNECTIONS_BURST_PER_IP and the rate hold across two workers; one worker alone still grants the whole burst', async (t) => {
  const burst = 10;
  const { a, b } = await twoWorkers(t, {
    MAX_CONNECTIONS_PER_IP: '100', MAX_UNAUTHENTICATED_PER_IP: '100', BOSH_MAX_SESSIONS_PER_IP: '100',
    NEW_CONNECTIONS_PER_IP_PER_SECOND: '1', NEW_CONNECTIONS_BURST_PER_IP: String(burst),
  });
  /** Creates `n` BOSH sessions one after the other on `base` from `from`; how many were admitted. */
  const create = async (base: string, n: number, from = '127.0.0.1'): Promise<number> => {
    let admitted = 0;
    for (let i = 0; i < n; i++) {
      const c = new RawBoshClient(`${base}/http-bind`, { agent: new http.Agent({ keepAlive: true, localAddress: from }) });
      t.teardown(() => c.destroy());
      if (terminalCondition(await c.create()) === undefined) admitted++;
    }
    return admitted;
  };
  const began = Date.now();
  t.equal(await create(a, burst), burst, 'the whole burst on worker 0');
  await settle();
  const onB = await create(b, burst);
  // At 1 new session a second, the machine's bucket has refilled by the seconds since the burst began, no more.
  const refilled = Math.ceil((Date.now() - began) / 1000);
  t.ok(onB <= refilled, `worker 1 admits only what the rate refilled since worker 0 took the burst (${onB} admitted, ${refilled} refilled)`);
  t.ok(onB < burst, 'not a burst of its own');
  // Each worker keeps the whole bucket (others' takes subtracted), not 1/N of it: a client whose sessions all reach
  // one worker (a kept-alive BOSH connection) gets the configured burst. Another address, its own bucket.
  t.equal(await create(a, burst, '127.0.0.2'), burst, 'another address gets the whole burst on one worker');
});

t.test('a WebSocket stream that authenticates no longer counts as unauthenticated on the other worker', async (t) => {
  const { cluster, gw, a, b, session } = await twoWorkers(t, { MAX_CONNECTIONS_PER_IP: '10', MAX_UNAUTHENTICATED_PER_IP: '1' });
  await cluster.addUser('alice', 'secret');
  // The shared port: the kernel picks the worker; its 'authenticated' line says which.
  const ws = await RawWsClient.connect(gw.wsUrl);
  t.teardown(() => ws.ws.terminate());
  await settle();
  t.equal(await session(a), 'policy-violation', 'an unauthenticated WebSocket fills the one place, on worker 0');
  t.equal(await session(b), 'policy-violation', 'and on worker 1');
  await ws.authenticate('alice', 'secret');
  await settle();
  const pidOf = (node: string): unknown => gw.events().find((e) => e.event === 'listening' && e.node === node)?.pid;
  const on = gw.events().find((e) => e.event === 'authenticated' && e.transport === 'websocket')?.pid;
  t.ok(on === pidOf('n0-w0') || on === pidOf('n0-w1'), 'the WebSocket is on one of the workers');
  t.type(await session(on === pidOf('n0-w0') ? b : a), RawBoshClient, 'authenticated, it frees the place on the other worker');
});

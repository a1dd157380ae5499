/**
 * WORKERS=N and the second SIGTERM: the primary stops its workers one at a time, the first draining as in a
 * rolling restart for up to CLUSTER_DRAIN_TIMEOUT (its clients may resume on the others). A second SIGTERM to the
 * primary ends every worker at once (an IPC message: a worker's own second signal does not force it, since a
 * terminal's Ctrl-C reaches the whole process group), each saying what it left, and then the primary.
 */
import t from 'tap';
import { LONG_LEASE, withGatewayCluster } from '../helpers/cluster.js';
import { eventually, sleep } from '../helpers/eventually.js';
import { SAME_SIGNAL_MS } from '../../src/workers.js';
import { SmPeer } from '../helpers/sm-peer.js';

t.setTimeout(180_000);

t.test('a second SIGTERM to the primary ends every worker at once', async (t) => {
  const cluster = await withGatewayCluster(t, {
    nodes: 1, env: { WORKERS: '2', WORKERS_SCHEDULING: 'round-robin', CLUSTER_DRAIN_TIMEOUT: '300', SHUTDOWN_TIMEOUT: '600', ...LONG_LEASE },
  });
  const [gw] = cluster.nodes;
  await cluster.addUser('alice', 'pw');
  await eventually(() => gw!.events().filter((e) => e.event === 'listening').length === 2, { timeout: 20_000, message: 'both workers serving' });
  // Resumable sessions on both workers (the primary hands connections in turn): the first worker signalled
  // waits for its client to resume elsewhere, which it never does.
  for (const r of ['a', 'b']) {
    const peer = await SmPeer.login(gw!.wsUrl, 'alice', 'pw', r, { autoAck: false });
    t.teardown(() => peer.c.ws.terminate());
  }
  const pid = gw!.pid()!;
  // Signalled here twice, not through kill(): the primary's exit is the test's own doing.
  gw!.expectExit();
  process.kill(pid, 'SIGTERM');
  await eventually(() => gw!.events().some((e) => e.event === 'shutdown'), { timeout: 10_000, message: 'a worker shutting down' });
  // An operator's second signal, not the first one delivered twice (npm start's forwarding, SAME_SIGNAL_MS).
  await sleep(SAME_SIGNAL_MS);
  const guard = setTimeout(() => process.kill(pid, 'SIGKILL'), 30_000);
  t.teardown(() => clearTimeout(guard));
  process.kill(pid, 'SIGTERM');
  const exit = await gw!.exited();
  clearTimeout(guard);
  t.same(exit, { code: 1, signal: null }, 'the primary exited by itself, with 1 (the guard killed it before)');
  const forced = gw!.events().filter((e) => e.event === 'shutdown-forced');
  t.equal(forced.filter((e) => typeof e.node === 'undefined' && e.signal === 'SIGTERM').length, 1, "the primary's line");
  t.equal(forced.filter((e) => typeof e.offlineUnfinished === 'number').length, 2, 'one line from each worker, with what it left');
});

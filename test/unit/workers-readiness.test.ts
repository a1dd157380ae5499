import t from 'tap';
import cluster, { type Worker } from 'node:cluster';
import { join } from 'node:path';
import { ROOT, ensureBuilt } from '../helpers/built.js';
import { serveMachineReadiness, type MachineReadiness } from '../../src/http/workers-readiness.js';

// WORKERS > 1: every /readyz a worker takes has the primary ask every worker
// over IPC. Probes that arrive together (a load balancer's health checks from
// several nodes, or a flood of requests to the public port) must share one
// gathering, as one process's own check is shared: otherwise each probe
// sends a question to every worker, N probes × W workers messages.
ensureBuilt(join(ROOT, 'dist', 'http', 'workers-readiness.js'));

/** The next message of the test's own protocol from `worker` that satisfies `is`. */
function next<T>(worker: Worker, is: (m: any) => boolean): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: any) => { if (is(m)) { worker.off('message', on); resolve(m as T); } };
    worker.on('message', on);
  });
}

cluster.setupPrimary({ exec: join(ROOT, 'test', 'fixtures', 'workers-readiness', 'worker.mjs'), silent: false });
const workers = [cluster.fork(), cluster.fork()];
t.teardown(() => { for (const w of workers) w.process.kill('SIGKILL'); });
await Promise.all(workers.map((w) => next(w, (m) => m?.test === 'up')));
serveMachineReadiness(() => workers.map((worker, index) => ({ index, node: `n${index}`, worker })));

const asked = () => Promise.all(workers.map((w) => {
  const answer = next<{ asked: number }>(w, (m) => m?.test === 'asked');
  w.send({ test: 'asked' });
  return answer.then((m) => m.asked);
}));
const probe = (w: Worker, n: number) => {
  const answer = next<{ answers: MachineReadiness[] }>(w, (m) => m?.test === 'probed');
  w.send({ test: 'probe', n });
  return answer.then((m) => m.answers);
};

t.test('20 probes at once on one worker: each worker is asked once, and every probe gets both workers', async (t) => {
  const answers = await probe(workers[0]!, 20);
  t.equal(answers.length, 20);
  for (const a of answers) {
    t.same(a, { status: 'ready', workers: [{ worker: 0, node: 'n0', status: 'ready' }, { worker: 1, node: 'n1', status: 'ready' }] });
  }
  t.same(await asked(), [1, 1], 'one question to each worker for the 20 probes');
});

t.test('probes at once on both workers share the primary\'s gathering too', async (t) => {
  const [a, b] = await Promise.all([probe(workers[0]!, 10), probe(workers[1]!, 10)]);
  t.equal(a.length + b.length, 20);
  t.ok([...a, ...b].every((m) => m.status === 'ready' && m.workers?.length === 2), 'every probe answered for both workers');
  t.same(await asked(), [2, 2], 'one more question to each worker');
});

t.test('a probe after the last gathering ended asks again (an answer is not kept)', async (t) => {
  await probe(workers[1]!, 1);
  await probe(workers[1]!, 1);
  t.same(await asked(), [4, 4]);
});

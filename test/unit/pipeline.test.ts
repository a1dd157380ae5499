/**
 * The phased pipeline (src/xmpp/pipeline.ts) and the core's work queues
 * (src/xmpp/queues.ts): phase order, priorities, typed vetoes, async
 * handlers awaited in order, the synchronous fast path, resume after a
 * holding filter, and per-key ordering while a job awaits.
 */
import t from 'tap';
import { Pipeline, isPromise, isVeto, veto, type Outcome } from '../../src/xmpp/pipeline.js';
import { SerialQueue } from '../../src/xmpp/queues.js';

interface Events { e: { log: string[] } }
const tick = () => new Promise<void>((r) => setImmediate(r));

t.test('phases run filter, transform, deliver, notify whatever the registration order; higher priority first within one', (t) => {
  const p = new Pipeline<Events>();
  p.notify('e', ({ log }) => { log.push('notify'); }, 0);
  p.deliver('e', ({ log }) => { log.push('deliver-low'); return 'delivered'; }, -10);
  p.deliver('e', ({ log }) => { log.push('deliver-high'); }, 10);
  p.transform('e', ({ log }) => { log.push('transform'); }, 0);
  p.filter('e', ({ log }) => { log.push('filter-low'); }, -5);
  p.filter('e', ({ log }) => { log.push('filter-high'); }, 5);
  const payload = { log: [] as string[] };
  const outcome = p.run('e', payload);
  t.equal(outcome, 'delivered', 'synchronous when no handler is async');
  t.same(payload.log, ['filter-high', 'filter-low', 'transform', 'deliver-high', 'deliver-low', 'notify']);
  t.end();
});

t.test('the first deliver handler that delivers ends the deliver phase; notify still runs', (t) => {
  const p = new Pipeline<Events>();
  p.deliver('e', ({ log }) => { log.push('a'); return 'delivered'; }, 2);
  p.deliver('e', ({ log }) => { log.push('b'); return 'delivered'; }, 1);
  p.notify('e', ({ log }) => { log.push('n'); }, 0);
  const payload = { log: [] as string[] };
  t.equal(p.run('e', payload), 'delivered');
  t.same(payload.log, ['a', 'n']);
  t.end();
});

t.test('nothing delivered is "undelivered", so the caller applies its default; no handlers at all too', (t) => {
  const p = new Pipeline<Events>();
  t.equal(p.run('e', { log: [] }), 'undelivered');
  p.deliver('e', () => undefined, 0);
  t.equal(p.run('e', { log: [] }), 'undelivered');
  t.end();
});

t.test('a filter veto stops the event with its typed condition; a drop stops it silently', (t) => {
  const p = new Pipeline<Events>();
  let mode: 'veto' | 'drop' | 'pass' = 'veto';
  p.filter('e', () => (mode === 'veto' ? veto('not-acceptable', 'blocked') : mode === 'drop' ? 'drop' : undefined), 0);
  p.deliver('e', ({ log }) => { log.push('delivered'); return 'delivered'; }, 0);
  p.notify('e', ({ log }) => { log.push('notified'); }, 0);
  const a = { log: [] as string[] };
  const vetoed = p.run('e', a) as Outcome;
  t.ok(isVeto(vetoed) && vetoed.veto === 'not-acceptable' && vetoed.text === 'blocked');
  t.same(a.log, [], 'neither delivered nor notified');
  mode = 'drop';
  const b = { log: [] as string[] };
  t.equal(p.run('e', b), 'dropped');
  t.same(b.log, []);
  mode = 'pass';
  const c = { log: [] as string[] };
  t.equal(p.run('e', c), 'delivered');
  t.same(c.log, ['delivered', 'notified']);
  t.end();
});

t.test('an async handler is awaited before the next one; run returns a promise only then', async (t) => {
  const p = new Pipeline<Events>();
  p.filter('e', async ({ log }) => { await tick(); log.push('filter'); }, 0);
  p.transform('e', ({ log }) => { log.push('transform'); }, 0);
  p.deliver('e', async ({ log }) => { await tick(); log.push('deliver'); return 'delivered' as const; }, 0);
  p.notify('e', ({ log }) => { log.push('notify'); }, 0);
  const payload = { log: [] as string[] };
  const out = p.run('e', payload);
  t.ok(isPromise(out), 'a promise once a handler returned one');
  t.same(payload.log, [], 'nothing after the awaiting handler ran yet');
  t.equal(await out, 'delivered');
  t.same(payload.log, ['filter', 'transform', 'deliver', 'notify']);
});

t.test('an async veto stops the event like a synchronous one', async (t) => {
  const p = new Pipeline<Events>();
  p.filter('e', async () => { await tick(); return veto('service-unavailable'); }, 0);
  p.deliver('e', ({ log }) => { log.push('delivered'); return 'delivered'; }, 0);
  const payload = { log: [] as string[] };
  const out = await p.run('e', payload);
  t.ok(isVeto(out) && out.veto === 'service-unavailable');
  t.same(payload.log, []);
});

t.test('a failing handler rejects the run (sync: throws), so the caller answers it', async (t) => {
  const p = new Pipeline<Events>();
  p.deliver('e', () => { throw new Error('sync boom'); }, 0);
  t.throws(() => p.run('e', { log: [] }), /sync boom/);
  const q = new Pipeline<Events>();
  q.deliver('e', async () => { throw new Error('async boom'); }, 0);
  await t.rejects(q.run('e', { log: [] }) as Promise<Outcome>, /async boom/);
});

t.test('resume runs only what follows the given handler: a holding filter lets its payload go on later', (t) => {
  const p = new Pipeline<Events>();
  const held: Array<{ log: string[] }> = [];
  const before = (e: { log: string[] }) => { e.log.push('before'); };
  const hold = (e: { log: string[] }) => { held.push(e); return 'drop' as const; };
  p.filter('e', before, 10);
  p.filter('e', hold, 5);
  p.deliver('e', (e) => { e.log.push('written'); return 'delivered'; }, 0);
  const payload = { log: [] as string[] };
  t.equal(p.run('e', payload), 'dropped', 'held back');
  t.same(payload.log, ['before']);
  t.equal(p.resume('e', held[0]!, hold), 'delivered');
  t.same(payload.log, ['before', 'written'], 'neither the earlier filter nor the holder ran again');
  const other = { log: [] as string[] };
  t.equal(p.resume('e', other, () => undefined), 'delivered', 'a holder no longer registered: what it held goes on after every filter');
  t.same(other.log, ['written']);
  t.end();
});

t.test('a run keeps the handlers it started with: one added or removed while a handler awaits is neither repeated nor skips another', async (t) => {
  const p = new Pipeline<Events>();
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => { release = r; });
  p.filter('e', async ({ log }) => { log.push('await'); await gate; }, 0);
  const off = p.deliver('e', ({ log }) => { log.push('deliver'); return 'delivered'; }, 0);
  const payload = { log: [] as string[] };
  const out = p.run('e', payload);
  p.filter('e', ({ log }) => { log.push('late filter'); }, 10);
  off();
  release();
  t.equal(await out, 'delivered');
  t.same(payload.log, ['await', 'deliver'], 'the run went on with its own list');
  const later = { log: [] as string[] };
  release();
  t.equal(await p.run('e', later), 'undelivered', 'a later run sees the change');
  t.same(later.log, ['late filter', 'await']);
});

t.test('a filter result other than a drop or a Veto passes', (t) => {
  const p = new Pipeline<Events>();
  p.filter('e', () => null as unknown as undefined, 2);
  p.filter('e', () => true as unknown as undefined, 1);
  p.deliver('e', () => 'delivered', 0);
  t.equal(p.run('e', { log: [] }), 'delivered');
  t.end();
});

t.test('a removed handler no longer runs', (t) => {
  const p = new Pipeline<Events>();
  const off = p.deliver('e', ({ log }) => { log.push('x'); return 'delivered'; }, 0);
  off();
  const payload = { log: [] as string[] };
  t.equal(p.run('e', payload), 'undelivered');
  t.same(payload.log, []);
  t.notOk(p.has('e'));
  t.end();
});

t.test('SerialQueue: with nothing queued a synchronous job runs at once and returns its value, no promise', (t) => {
  const q = new SerialQueue<string>(() => t.fail('no error expected'));
  const out = q.run('a', () => 42);
  t.equal(out, 42);
  t.notOk(q.busy('a'), 'nothing is left queued');
  t.end();
});

t.test('SerialQueue: jobs of one key run in order even while an earlier one awaits; other keys do not wait', async (t) => {
  const q = new SerialQueue<string>(() => t.fail('no error expected'));
  const seen: string[] = [];
  q.after('a', async () => { await tick(); await tick(); seen.push('a1'); });
  q.after('a', () => { seen.push('a2'); });
  q.after('b', () => { seen.push('b1'); });
  t.ok(q.busy('a'), 'a is busy while its first job awaits');
  t.equal(q.depth('a'), 2);
  t.same(seen, ['b1'], 'b ran at once; a2 waits for a1');
  await q.idle();
  t.same(seen, ['b1', 'a1', 'a2']);
  t.notOk(q.busy('a'), 'an idle key is forgotten');
  t.equal(q.size, 0);
});

t.test('SerialQueue: a failing job is reported and the line goes on', async (t) => {
  const errors: unknown[] = [];
  const q = new SerialQueue<string>((err) => errors.push(err));
  const seen: string[] = [];
  q.after('a', async () => { await tick(); throw new Error('boom'); });
  q.after('a', () => { seen.push('after'); });
  q.after('b', () => { throw new Error('sync boom'); });
  await q.idle();
  t.same(seen, ['after']);
  t.same(errors.map((e) => (e as Error).message).sort(), ['boom', 'sync boom']);
});

t.test('SerialQueue: a job asked for from inside a synchronous job of its key runs after it, not nested in it', async (t) => {
  const q = new SerialQueue<string>(() => t.fail('no error expected'));
  const seen: string[] = [];
  q.run('a', () => {
    q.after('a', () => { seen.push('inner'); });
    seen.push('outer end');
  });
  t.same(seen, ['outer end'], 'the inner job did not run inside the outer one');
  await q.idle();
  t.same(seen, ['outer end', 'inner']);
});

t.test('SerialQueue: idle waits for jobs queued by running jobs', async (t) => {
  const q = new SerialQueue<string>(() => t.fail('no error expected'));
  const seen: string[] = [];
  q.after('a', async () => {
    await tick();
    q.after('b', async () => { await tick(); seen.push('b'); });
    seen.push('a');
  });
  await q.idle();
  t.same(seen, ['a', 'b']);
});

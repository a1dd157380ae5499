import t from 'tap';
import { InputPump, TurnClock, type InputPumpDeps, type PumpBlock } from '../../src/transports/input-pump.js';
import { waitUntil } from '../helpers/eventually.js';

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const UNSHAPED = { bytesPerSecond: 0, burstBytes: 0, stanzasPerSecond: 0 };

function harness(over: Partial<InputPumpDeps> = {}) {
  const ran: number[] = [];
  const events: string[] = [];
  const state = { backlogged: false };
  const pump = new InputPump({
    shaping: UNSHAPED, turns: new TurnClock(),
    backlogged: () => state.backlogged,
    busy: (b) => events.push(b ? 'busy' : 'free'),
    blocked: (r: PumpBlock) => events.push(`blocked:${r}`),
    idle: () => events.push('idle'),
    ...over,
  });
  const push = (i: number, bytes = 10) => pump.push({ bytes, stanzas: 1, run: () => { ran.push(i); } });
  return { pump, ran, events, state, push };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

t.test('eight items run in the turn they arrive; the rest of a batch runs eight per turn, in order', async (t) => {
  const h = harness();
  for (let i = 0; i < 20; i++) h.push(i);
  t.same(h.ran, range(8), 'eight items in the turn they arrived');
  t.equal(h.pump.queuedItems, 12);
  t.equal(h.pump.queuedBytes, 120);
  await turn();
  t.ok(h.ran.length < 20, 'not all in the next turn either');
  for (let i = 0; i < 10 && h.ran.length < 20; i++) await turn();
  t.same(h.ran, range(20));
  t.equal(h.pump.queuedBytes, 0);
  t.equal(h.events.at(-1), 'idle');
});

t.test('a high output backlog stops the input until kick(), and says so once', async (t) => {
  const h = harness();
  h.state.backlogged = true;
  h.push(0);
  h.push(1);
  t.same(h.ran, []);
  t.same(h.events, ['blocked:output', 'busy']);
  t.equal(h.pump.blockedBy, 'output');
  h.state.backlogged = false;
  await turn();
  t.same(h.ran, [], 'nothing runs without the drain');
  h.pump.kick();
  for (let i = 0; i < 10 && h.ran.length < 2; i++) await turn();
  t.same(h.ran, [0, 1]);
  t.same(h.events.slice(-2), ['free', 'idle']);
});

t.test('input over the byte rate waits for the bucket and then runs, nothing dropped', async (t) => {
  let now = 0;
  const h = harness({ shaping: { bytesPerSecond: 1_000_000, burstBytes: 1000, stanzasPerSecond: 0 }, now: () => now });
  h.push(0, 1000);
  t.same(h.ran, [0], 'the burst passes');
  await turn();
  h.push(1, 500);
  t.same(h.ran, [0], 'the bucket is empty');
  t.equal(h.pump.blockedBy, 'rate');
  t.ok(h.events.includes('blocked:rate'));
  now += 1;
  await waitUntil(() => h.ran.length >= 2, { timeout: 2000, interval: 1 }); // the pump's retry timer fires
  t.same(h.ran, [0, 1]);
});

t.test('the stanza rate counts stanzas, not bytes', async (t) => {
  let now = 0;
  const h = harness({ shaping: { bytesPerSecond: 0, burstBytes: 0, stanzasPerSecond: 2 }, now: () => now });
  h.push(0);
  await turn();
  h.push(1);
  await turn();
  h.push(2);
  t.same(h.ran, [0, 1], 'a burst of one second of stanzas');
  t.equal(h.pump.blockedBy, 'rate');
  h.pump.dispose();
});

t.test('a transport is asked to stop reading only when the input blocks or piles up', async (t) => {
  const h = harness();
  for (let i = 0; i < 10; i++) h.push(i, 1000);
  t.notOk(h.events.includes('busy'), 'a few pipelined frames do not pause the socket');
  for (let i = 10; i < 13; i++) h.push(i, 40_000);
  t.ok(h.events.includes('busy'), 'over 64 KiB waiting does');
  for (let i = 0; i < 20 && h.ran.length < 13; i++) await turn();
  t.same(h.ran, range(13));
  t.equal(h.events.filter((e) => e === 'free').length, 1, 'and reading resumes once it caught up');
});

t.test('flush runs what is left at once, in order, telling each item the transport is gone', async (t) => {
  const seen: Array<[number, boolean]> = [];
  const h = harness();
  h.state.backlogged = true;
  for (let i = 0; i < 3; i++) h.pump.push({ bytes: 10, stanzas: 1, run: (ending) => { seen.push([i, ending]); } });
  t.same(seen, [], 'blocked by the backlog');
  h.pump.flush();
  t.same(seen, [[0, true], [1, true], [2, true]]);
  h.pump.push({ bytes: 10, stanzas: 1, run: () => { seen.push([9, false]); } });
  t.equal(seen.length, 3, 'a flushed pump takes no more input');
});

t.test('dispose forgets the input: nothing queued runs afterwards', async (t) => {
  const h = harness();
  for (let i = 0; i < 12; i++) h.push(i);
  h.pump.dispose();
  await turn();
  await turn();
  t.same(h.ran, range(8));
  h.push(99);
  t.same(h.ran, range(8), 'input after dispose is ignored');
  t.equal(h.pump.queuedItems, 0);
});

import t from 'tap';
import { SmQueue } from '../../src/xmpp/features/stream-management/queue.js';
import { PendingQueue } from '../../src/xmpp/features/stream-management/pending.js';
import { add, distance, parseH, MOD } from '../../src/xmpp/features/stream-management/counter.js';
import { createMemorySmRegistry } from '../../src/xmpp/features/stream-management/registry.js';
import { createMemoryStorage } from '../../src/storage/index.js';

t.test('counters wrap at 2^32', async (t) => {
  t.equal(add(MOD - 1, 1), 0);
  t.equal(add(MOD - 2, 5), 3);
  t.equal(distance(MOD - 2, 3), 5);
  t.equal(distance(7, 7), 0);
});

t.test('h attributes parse as unsigned 32-bit integers only', async (t) => {
  t.equal(parseH('0'), 0);
  t.equal(parseH('4294967295'), MOD - 1);
  t.equal(parseH('4294967296'), undefined);
  t.equal(parseH('-1'), undefined);
  t.equal(parseH('1e3'), undefined);
  t.equal(parseH(''), undefined);
  t.equal(parseH(undefined), undefined);
});

t.test('acks remove exactly the handled stanzas, oldest first', async (t) => {
  const q = new SmQueue<string>();
  for (const s of ['a', 'b', 'c', 'd']) q.push(s);
  t.equal(q.buffer_size, 4);
  t.equal(q.sent, 4);
  t.same(q.ack(2), { ok: true, acked: 2 });
  t.same(q.unacked(), ['c', 'd']);
  t.equal(q.counter_out, 2);
  t.same(q.ack(2), { ok: true, acked: 0 }, 'a repeated ack changes nothing');
  t.same(q.ack(1), { ok: true, acked: 0 }, 'a late, smaller ack changes nothing');
  t.same(q.ack(5), { ok: false, sent: 4 }, 'h beyond what was sent is refused');
  t.same(q.unacked(), ['c', 'd'], 'a refused ack leaves the buffer as it was');
  t.same(q.ack(4), { ok: true, acked: 2 });
  t.equal(q.buffer_size, 0);
});

t.test('acks across the 2^32 wrap', async (t) => {
  const q = new SmQueue<number>(MOD - 2);
  for (let i = 0; i < 5; i++) q.push(i);
  t.equal(q.sent, 3, 'sent wraps');
  t.same(q.ack(1), { ok: true, acked: 3 });
  t.same(q.unacked(), [3, 4]);
  t.same(q.ack(4), { ok: false, sent: 3 });
});

t.test('an h behind the last ack is late only as far back as acks went; further back it is ahead, too high', async (t) => {
  const fresh = new SmQueue<string>();
  fresh.push('a');
  t.same(fresh.ack(MOD - 1), { ok: false, sent: 1 }, 'nothing acked yet: 2^32-1 is 2^32-2 beyond what was sent');
  t.same(fresh.ack(3_000_000_000), { ok: false, sent: 1 }, 'however far in the upper half');
  t.same(fresh.unacked(), ['a']);
  const q = new SmQueue<number>(MOD - 2);
  for (let i = 0; i < 5; i++) q.push(i);
  t.same(q.ack(1), { ok: true, acked: 3 }, 'across the wrap');
  t.same(q.ack(MOD - 1), { ok: true, acked: 0 }, 'a late ack from before the wrap changes nothing');
  t.same(q.ack(MOD - 3), { ok: true, acked: 0 }, 'nor one from before the h the queue started at (a takeover: the client may have acked any of them)');
  const z = new SmQueue<string>();
  for (const s of ['a', 'b', 'c']) z.push(s);
  t.same(z.ack(2), { ok: true, acked: 2 });
  t.same(z.ack(0), { ok: true, acked: 0 }, 'as far back as the first h');
  t.same(z.ack(MOD - 1), { ok: false, sent: 3 }, 'an h older than any ack could be is too high');
  t.same(z.unacked(), ['c']);
});

t.test('the buffer compacts without losing order over many acks', async (t) => {
  const q = new SmQueue<number>();
  let next = 0;
  let acked = 0;
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 10; i++) q.push(next++);
    acked += 7;
    t.ok(q.ack(acked).ok);
  }
  t.same(q.unacked(), Array.from({ length: next - acked }, (_, i) => acked + i));
  t.same(q.drain().length, next - acked);
  t.equal(q.buffer_size, 0);
});

t.test('an ack names the stanzas it covers, oldest first, and only those', async (t) => {
  const q = new SmQueue<string>();
  for (const s of ['a', 'b', 'c']) q.push(s);
  const seen: string[] = [];
  q.ack(2, (s) => seen.push(s));
  t.same(seen, ['a', 'b']);
  q.ack(2, (s) => seen.push(s));
  q.ack(9, (s) => seen.push(s));
  t.same(seen, ['a', 'b'], 'a repeated or refused ack covers nothing');
  q.ack(3, (s) => seen.push(s));
  t.same(seen, ['a', 'b', 'c']);
});

t.test('the pending queue is a FIFO that counts bytes and says when it passes its bound', async (t) => {
  const p = new PendingQueue<string>(10);
  t.equal(p.push('a', 4), true);
  t.equal(p.push('b', 6), true, 'exactly the bound is within it');
  t.equal(p.bytes, 10);
  t.equal(p.push('c', 1), false, 'one byte more is an overflow');
  t.equal(p.length, 3, 'the item that overflowed is kept, for the hand-over');
  t.equal(p.shift(), 'a');
  t.equal(p.bytes, 7, 'shifting gives its bytes back');
  t.same(p.drain(), ['b', 'c']);
  t.equal(p.bytes, 0);
  t.equal(p.shift(), undefined);
});

t.test('the pending queue keeps order and its byte count over many pushes and shifts', async (t) => {
  const p = new PendingQueue<number>(1_000_000);
  const out: number[] = [];
  let next = 0;
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < 10; i++) p.push(next++, 3);
    for (let i = 0; i < 7; i++) out.push(p.shift()!);
  }
  t.equal(p.bytes, p.length * 3);
  out.push(...p.drain());
  t.same(out, Array.from({ length: next }, (_, i) => i));
});

const ALICE = { host: 'localhost', username: 'alice', anonymous: false };

t.test('the memory registry keeps stale h until it is geriatric', async (t) => {
  const r = createMemorySmRegistry(createMemoryStorage().smState);
  await r.setStaleH('x', ALICE, 42, 1000);
  t.equal(await r.getStaleH('x', ALICE), 42);
  t.equal(await r.collectStaleH(1000 + 3599_000, 3600), 0);
  t.equal(await r.getStaleH('x', ALICE), 42);
  t.equal(await r.collectStaleH(1000 + 3600_000, 3600), 1);
  t.equal(await r.getStaleH('x', ALICE), undefined);
});

t.test('a stale h is told to its own account only; a guest\'s to any guest of the host', async (t) => {
  const r = createMemorySmRegistry(createMemoryStorage().smState);
  await r.setStaleH('x', ALICE, 42, 1000);
  t.equal(await r.getStaleH('x', { host: 'localhost', username: 'bob', anonymous: false }), undefined, 'not to another account');
  t.equal(await r.getStaleH('x', { host: 'example.org', username: 'alice', anonymous: false }), undefined, 'nor to the same name on another host');
  t.equal(await r.getStaleH('x', { host: 'localhost', username: 'guest-1', anonymous: true }), undefined, 'nor to a guest');
  await r.setStaleH('g', { host: 'localhost', username: 'guest-1', anonymous: true }, 7, 1000);
  t.equal(await r.getStaleH('g', { host: 'localhost', username: 'guest-2', anonymous: true }), 7, 'a guest\'s, to another guest (as its resumption)');
  t.equal(await r.getStaleH('g', { host: 'localhost', username: 'guest-1', anonymous: false }), undefined, 'not to a registered account, whatever its name');
  t.equal(await r.getStaleH('g', { host: 'localhost', username: '', anonymous: false }), undefined, 'nor to one without a name');
});

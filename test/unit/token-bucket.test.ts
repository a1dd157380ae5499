import t from 'tap';
import { TokenBucket } from '../../src/util/token-bucket.js';

/** A clock the test moves by hand. */
function clock(start = 1_000_000): { now: () => number; advance(ms: number): void } {
  let ms = start;
  return { now: () => ms, advance: (d) => { ms += d; } };
}

t.test('a new bucket is full: the whole burst passes at once, then one more token waits', async (t) => {
  const c = clock();
  const b = new TokenBucket(100, 400, c.now);
  t.equal(b.take(400), 0);
  t.equal(b.tokens, 0);
  t.equal(b.take(1), 10, 'one token at 100/s takes 10 ms');
  t.equal(b.tokens, 0, 'a refused take takes nothing');
});

t.test('tokens come back at the rate and never above the burst', async (t) => {
  const c = clock();
  const b = new TokenBucket(1000, 2000, c.now);
  b.take(2000);
  c.advance(500);
  t.equal(b.tokens, 500);
  t.equal(b.take(600), 100, '100 more tokens take 100 ms');
  c.advance(100);
  t.equal(b.take(600), 0);
  c.advance(60_000);
  t.equal(b.tokens, 2000, 'capped at the burst');
});

t.test('an item larger than the burst passes when the bucket is full and leaves it in debt', async (t) => {
  const c = clock();
  const b = new TokenBucket(100, 200, c.now);
  t.equal(b.take(1000), 0, 'a full bucket lets it through');
  t.equal(b.tokens, -800);
  t.equal(b.waitFor(1), 8010, 'the debt is paid before anything else passes');
  t.equal(b.waitFor(1000), 10_000, 'the next big item waits for a full bucket');
  c.advance(10_000);
  t.equal(b.take(1000), 0);
});

t.test('a clock that goes backwards adds no tokens', async (t) => {
  const c = clock();
  const b = new TokenBucket(100, 100, c.now);
  b.take(100);
  c.advance(-5000);
  t.equal(b.tokens, 0);
  c.advance(10);
  t.equal(b.tokens, 1);
});

t.test('rate and burst must be positive', async (t) => {
  const c = clock();
  t.throws(() => new TokenBucket(0, 10, c.now), RangeError);
  t.throws(() => new TokenBucket(10, 0, c.now), RangeError);
});

t.test('debit takes tokens taken elsewhere, into debt if need be, at most a burst deep', async (t) => {
  const c = clock();
  const b = new TokenBucket(1, 4, c.now);
  b.debit(3);
  t.equal(b.tokens, 1, 'taken from a full bucket');
  b.debit(2);
  t.equal(b.tokens, -1, 'more than it holds: in debt');
  t.equal(b.take(1), 2000, 'the debt is paid before anything passes here');
  b.debit(100);
  t.equal(b.tokens, -4, 'never deeper than the burst');
  c.advance(5000);
  t.equal(b.take(1), 0, 'refilled at the rate');
});

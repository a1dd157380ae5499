import t from 'tap';
import { LoginThrottle, type LoginThrottleOptions } from '../../src/sasl/login-throttle.js';

function throttle(more: Partial<LoginThrottleOptions> = {}): { th: LoginThrottle; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const th = new LoginThrottle({
    freePerIp: 6, freePerPair: 3, baseDelayMs: 1000, maxDelayMs: 60_000, forgetAfterMs: 600_000, maxKeys: 1000,
    now: () => clock.now, ...more,
  });
  return { th, clock };
}

t.test('a pair is slowed after its free failures, doubling each time up to the cap', async (t) => {
  const { th, clock } = throttle();
  for (let i = 0; i < 3; i++) th.failed('192.0.2.1', 'alice');
  t.equal(th.retryAfter('192.0.2.1', 'alice'), 0, 'three free failures');
  const waits: number[] = [];
  for (let i = 0; i < 8; i++) {
    th.failed('192.0.2.1', 'alice');
    waits.push(th.retryAfter('192.0.2.1', 'alice'));
    clock.now += waits.at(-1)!;
  }
  // The address also passes its 6 free failures on the 7th: by then its own backoff (1 s, 2 s, …) is shorter than the pair's.
  t.same(waits, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
});

t.test("an account under attack from one address does not lock out its owner's address", async (t) => {
  const { th } = throttle();
  for (let i = 0; i < 20; i++) th.failed('192.0.2.66', 'alice');
  t.ok(th.retryAfter('192.0.2.66', 'alice') > 0, 'the attacker is refused');
  t.ok(th.retryAfter('192.0.2.66') > 0, 'the attacking address is refused for any account');
  t.equal(th.retryAfter('198.51.100.5', 'alice'), 0, 'the owner, elsewhere, is not');
});

t.test('an address spraying many accounts is slowed by its address count', async (t) => {
  const { th } = throttle();
  for (let i = 0; i < 6; i++) th.failed('192.0.2.9', `user${i}`);
  t.equal(th.retryAfter('192.0.2.9'), 0, 'six free failures per address');
  th.failed('192.0.2.9', 'user6');
  t.equal(th.retryAfter('192.0.2.9'), 1000);
  t.equal(th.retryAfter('192.0.2.9', 'someone-else'), 1000, 'whatever account it names next');
});

t.test('quiet keys are forgotten, success clears the pair, and memory is bounded', async (t) => {
  const { th, clock } = throttle({ maxKeys: 10 });
  for (let i = 0; i < 5; i++) th.failed('192.0.2.1', 'alice');
  t.ok(th.retryAfter('192.0.2.1', 'alice') > 0);
  th.succeeded('192.0.2.1', 'alice');
  t.equal(th.retryAfter('192.0.2.1', 'alice'), 0, 'the owner logged in: the pair starts afresh');
  for (let i = 0; i < 5; i++) th.failed('192.0.2.2', 'bob');
  clock.now += 600_001 + 60_000;
  t.equal(th.retryAfter('192.0.2.2', 'bob'), 0, 'forgotten after a quiet period');
  for (let i = 0; i < 100; i++) th.failed(`10.0.0.${i}`, 'x');
  t.ok(th.size <= 10, `at most maxKeys entries (${th.size})`);
});

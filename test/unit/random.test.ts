import t from 'tap';
import { randomId, randomToken48 } from '../../src/util/random.js';

t.test('randomId gives the requested number of random bytes in the requested encoding', async (t) => {
  t.equal(Buffer.from(randomId(16), 'base64url').length, 16, '16 bytes as base64url');
  t.match(randomId(18), /^[A-Za-z0-9_-]{24}$/, 'base64url: 24 characters, nothing to escape in XML or URLs');
  t.match(randomId(18, 'base64'), /^[A-Za-z0-9+/]{24}$/, 'base64');
  t.match(randomId(12, 'hex'), /^[0-9a-f]{24}$/, 'hex');
  t.throws(() => randomId(0), RangeError);
  t.throws(() => randomId(4097), RangeError);
  t.throws(() => randomId(1.5), RangeError);
});

t.test('randomId never hands out the same bytes twice, across many refills of its pool', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 20000; i++) seen.add(randomId(16)); // 320 KB: about 80 refills of the 4 KiB pool
  t.equal(seen.size, 20000, 'all distinct');
  // Not a randomness test, a sanity check that the bytes are spread: every byte value turns up.
  const counts = new Array<number>(256).fill(0);
  for (let i = 0; i < 2000; i++) for (const b of Buffer.from(randomId(16), 'base64url')) counts[b]!++;
  t.ok(counts.every((c) => c > 0), 'every byte value occurs in 32,000 bytes');
});

t.test('randomToken48: 8 base64url characters (48 bits), distinct across many refills of its pool', async (t) => {
  const all = Array.from({ length: 10_000 }, () => randomToken48()); // about 20 refills of 512 tokens
  t.ok(all.every((tok) => /^[A-Za-z0-9_-]{8}$/.test(tok)), 'each 8 characters, nothing to escape');
  t.equal(new Set(all).size, all.length, 'all distinct');
  const counts = new Array<number>(256).fill(0);
  for (const tok of all.slice(0, 2000)) for (const b of Buffer.from(tok, 'base64url')) counts[b]!++;
  t.ok(counts.every((c) => c > 0), 'every byte value occurs in 12,000 bytes');
});

/**
 * The memory of recently timed-out smids (xmpp_sm_resumes_total{outcome="timed-out"})
 * stays within its entry and byte bounds, forgetting the oldest first.
 */
import t from 'tap';
import { createRecentIds } from '../../src/xmpp/features/stream-management/recent.js';

t.test('bounded in entries: the oldest is forgotten first', async (t) => {
  const ids = createRecentIds(3, 1_000_000);
  for (const id of ['a', 'b', 'c', 'd']) ids.add(id);
  t.equal(ids.size, 3);
  t.notOk(ids.has('a'), 'the oldest went');
  t.ok(ids.has('b') && ids.has('d'));
});

t.test('bounded in bytes, whatever the entry count allows', async (t) => {
  const ids = createRecentIds(1000, 100);
  for (let i = 0; i < 50; i++) ids.add(`smid-${String(i).padStart(5, '0')}`);
  t.ok(ids.bytes <= 100, `${ids.bytes} bytes held`);
  t.equal(ids.size, 100 / 20, 'as many 10-character ids as fit in 100 bytes');
  t.ok(ids.has('smid-00049') && !ids.has('smid-00000'));
  ids.add('x'.repeat(51));
  t.notOk(ids.has('x'.repeat(51)), 'an id larger than the whole bound is not kept');
  t.ok(ids.bytes <= 100);
});

t.test('adding an id again counts it once', async (t) => {
  const ids = createRecentIds(10, 1000);
  ids.add('same');
  ids.add('same');
  t.equal(ids.size, 1);
  t.equal(ids.bytes, 8);
});

/** The server's numbering of archived messages (storage/ports/archive-ids.ts, features/mam/archiving.ts archiveSequence). */
import t from 'tap';
import { archiveIdFor, base36, firstSeqAt, KEYS_PER_MS, keyOfArchiveId, lastSeqAt } from '../../src/storage/ports/archive-ids.js';

const LOW = 36 ** 5;
import { archiveSequence } from '../../src/xmpp/features/mam/archiving.js';

t.test('an id gives back its key; other forms give none', async (t) => {
  const key = 1_800_000_000_000 * KEYS_PER_MS + 7;
  const id = archiveIdFor(key);
  t.equal(keyOfArchiveId(id), key);
  t.not(archiveIdFor(key), id, 'two ids of one key differ (48 random bits)');
  for (const other of ['Zm9vYmFyYmF6cXV4', 'm1', '.abc', 'zz.', '0zz.abc', '-1.abc', `${'z'.repeat(12)}.abc`]) {
    t.equal(keyOfArchiveId(other), other === 'zz.' ? 1295 : undefined, other);
  }
});

t.test('the sequence grows with the clock, numbers up to KEYS_PER_MS per millisecond, then moves the stamp on', async (t) => {
  let now = 1000;
  const seq = archiveSequence(() => now);
  t.same(seq.next(), { at: 1000, key: 1000 * KEYS_PER_MS });
  t.same(seq.next(), { at: 1000, key: 1000 * KEYS_PER_MS + 1 });
  now = 990;
  t.same(seq.next(), { at: 1000, key: 1000 * KEYS_PER_MS + 2 }, 'a clock going back does not');
  for (let i = 3; i < KEYS_PER_MS; i++) seq.next();
  t.same(seq.next(), { at: 1001, key: 1001 * KEYS_PER_MS }, 'the 513th in a millisecond takes the next one');
  now = 2000;
  t.same(seq.next(), { at: 2000, key: 2000 * KEYS_PER_MS });
  seq.floor(5000);
  t.same(seq.next(), { at: 5001, key: 5001 * KEYS_PER_MS }, 'after the floor (the store\'s newest), never at it');
  seq.floor(10);
  t.equal(seq.next().at, 5001, 'a lower floor changes nothing');
});

t.test('every seq of a millisecond lies within its time bounds', async (t) => {
  const at = 1_800_000_000_123;
  const seqs = [0, KEYS_PER_MS - 1].flatMap((n) => [0, 1].map((side) => 2 * (at * KEYS_PER_MS + n) + side));
  for (const s of seqs) t.ok(s >= firstSeqAt(at) && s <= lastSeqAt(at), `${s}`);
  t.ok(lastSeqAt(at - 1) < firstSeqAt(at) && lastSeqAt(at) < firstSeqAt(at + 1), 'the ranges of two milliseconds do not meet');
});

t.test('base36 is key.toString(36) for any safe non-negative integer', async (t) => {
  const keys = [0, 1, 35, 36, LOW - 1, LOW, LOW + 1, 1_800_000_000_000 * KEYS_PER_MS, Number.MAX_SAFE_INTEGER];
  for (let i = 0; i < 20_000; i++) keys.push(Math.floor(Math.random() * Number.MAX_SAFE_INTEGER), Math.floor(Math.random() * LOW * 40));
  const wrong = keys.filter((k) => base36(k) !== k.toString(36));
  t.same(wrong, [], `${keys.length} keys, edges and random`);
});

/** Archive records packed as the server queues them (storage/ports/archive-pack.ts): what goes in comes out. */
import t from 'tap';
import { ArchivePack, entriesOf, RECIPIENT, SENDER, unpack, type ArchiveRecord } from '../../src/storage/ports/archive-pack.js';

const record = (i: number, stanza = `<message><body>${i}</body></message>`): ArchiveRecord => ({
  key: 1_800_000_000_000 * 512 + i, id: `id${i}.AbCd`, at: 1_800_000_000_000 + i, sender: `s${i}@example.com`, receiver: 'r@example.com', sides: (i % 3) + 1, stanza,
});

t.test('records come back in order, each field as given, across chunk boundaries', async (t) => {
  const pack = new ArchivePack();
  const all = Array.from({ length: 5000 }, (_, i) => record(i));
  let bytes = 0;
  for (const r of all) bytes += pack.add(r);
  t.equal(pack.count, 5000);
  t.equal(pack.bytes, bytes, 'bytes is the sum of what add returned');
  const views = pack.views();
  t.ok(views.length > 1, `several chunks (${views.length})`);
  t.equal(views.reduce((n, v) => n + v.byteLength, 0), bytes, 'the views hold exactly those bytes');
  t.equal(new Set(views.map((v) => v.buffer)).size, views.length, 'each chunk its own buffer');
  t.ok(views.every((v) => v.buffer instanceof SharedArrayBuffer), 'in shared memory: a thread reads it, nothing is transferred (detached)');
  t.same([...unpack(views)], all);
});

t.test('text beyond ASCII and a stanza larger than a chunk', async (t) => {
  const pack = new ArchivePack();
  const wide = record(1, `<message><body>${'Grüße, 世界 🎉 '.repeat(100_000)}</body></message>`);
  const small = { ...record(2), sender: 'zoë@exämple.com' };
  pack.add(small);
  pack.add(wide);
  pack.add(record(3));
  t.same([...unpack(pack.views())], [small, wide, record(3)]);
});

t.test('an empty pack has no records; entriesOf gives the entries of the archives that keep a record', async (t) => {
  t.same([...unpack(new ArchivePack().views())], []);
  const r = { ...record(0), sides: RECIPIENT | SENDER };
  t.same(entriesOf(r).map((e) => [e.username, e.host, e.seq, e.with]), [
    ['r', 'example.com', 2 * r.key, 's0@example.com'],
    ['s0', 'example.com', 2 * r.key + 1, 'r@example.com'],
  ], "the recipient's copy at 2 × key, the sender's at 2 × key + 1");
  t.same(entriesOf({ ...r, sides: SENDER }).map((e) => e.username), ['s0'], 'only the sides set');
});

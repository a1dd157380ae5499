/** Archive records packed as the server queues them (storage/ports/archive-pack.ts): what goes in comes out. */
import t from 'tap';
import { ArchivePack, entriesOf, RECIPIENT, SENDER, unpack, type ArchiveRecord } from '../../src/storage/ports/archive-pack.js';
import { parseXml, serialize } from '../../src/xml/index.js';

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

t.test('a stanza given as an element is packed as serialize() writes it, its root in the given xmlns', async (t) => {
  const pack = new ArchivePack();
  const stanza = parseXml(`<message xmlns='jabber:server' to='r@example.com' type='chat'><body>é &amp; 🎉 ${'x'.repeat(9000)}</body></message>`);
  const rs = Array.from({ length: 50 }, (_, i) => record(i));
  for (const r of rs) pack.add({ ...r, stanza, xmlns: 'jabber:client' });
  const back = [...unpack(pack.views())];
  t.ok(pack.views().length > 1, 'across chunks, records that did not fit where the last one ended');
  t.same(back, rs.map((r) => ({ ...r, stanza: serialize(stanza.clone().setAttr('xmlns', 'jabber:client')) })));
  t.equal(stanza.attr('xmlns'), 'jabber:server', 'the element is left as it was');
});

t.test('release() gives the chunks to later packs; without it, none is shared', async (t) => {
  const filled = () => {
    const pack = new ArchivePack();
    for (let i = 0; i < 3000; i++) pack.add(record(i));
    return pack;
  };
  const a = filled();
  const b = filled();
  const buffers = (p: ArchivePack) => new Set(p.views().map((v) => v.buffer));
  t.equal([...buffers(a)].filter((sab) => buffers(b).has(sab)).length, 0, 'two live packs share no chunk');
  const released = buffers(a);
  a.release();
  t.equal(a.count, 0);
  t.same(a.views(), [], 'a released pack is empty');
  const c = filled();
  t.ok([...buffers(c)].some((sab) => released.has(sab)), 'a later pack writes into a released chunk');
  t.equal([...buffers(c)].filter((sab) => buffers(b).has(sab)).length, 0, 'never into one still held');
  t.same([...unpack(c.views())], Array.from({ length: 3000 }, (_, i) => record(i)), 'what it holds is its own records');
});

t.test("a part left out: the archive's own <stanza-id/>, as a child of the element or as a range of a transport's text", async (t) => {
  const pack = new ArchivePack();
  const text = `<message xmlns="jabber:client" id="m1"><body>Grüße 🎉 &amp;</body><stanza-id xmlns="urn:xmpp:sid:0" by="r@example.com" id="k.AbCd"/></message>`;
  const el = parseXml(text);
  const own = el.children.at(-1) as ReturnType<typeof parseXml>;
  const without = '<message xmlns="jabber:client" id="m1"><body>Grüße 🎉 &amp;</body></message>';
  const cut = text.lastIndexOf('<stanza-id');
  const end = text.lastIndexOf('</message>');
  pack.add({ ...record(1), stanza: el, xmlns: 'jabber:client', omit: own });
  pack.add({ ...record(2), stanza: text, skipFrom: cut, skipTo: end });
  pack.add({ ...record(3), stanza: text, skipFrom: 0, skipTo: 0 });
  pack.add({ ...record(4), stanza: el, xmlns: 'jabber:client' });
  t.same([...unpack(pack.views())].map((r) => r.stanza), [without, without, text, text], 'left out where asked (UTF-16 offsets into the text), whole otherwise');
  t.equal(serialize(el), text, 'the element itself is not changed');
});

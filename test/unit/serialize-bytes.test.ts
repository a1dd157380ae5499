/** serializeInto (xml/serialize-bytes.ts): the bytes of serialize(), written into a buffer, or -1 where they do not fit. */
import t from 'tap';
import { parseXml, serialize, x, XmlElement } from '../../src/xml/index.js';
import { serializeInto, writeUtf8 } from '../../src/xml/serialize-bytes.js';

const encoded = (el: XmlElement): Buffer => Buffer.from(serialize(el), 'utf8');

/** serializeInto into a buffer of exactly `size` bytes after a 3-byte prefix it must leave alone. */
function into(el: XmlElement, size: number, xmlns?: string): { end: number; bytes: Buffer; prefix: string } {
  const buf = Buffer.alloc(3 + size, 0xff);
  buf.write('abc', 0, 'latin1');
  const end = serializeInto(buf, 3, el, xmlns);
  return { end, bytes: buf.subarray(3, end < 0 ? 3 : end), prefix: buf.toString('latin1', 0, 3) };
}

// Pieces short and long (a loop below 25 code units, Buffer.write above), each with something to escape or beyond ASCII.
const TEXTS = [
  '', 'a', 'plain text', 'x'.repeat(24), 'y'.repeat(25), 'a & b < c > d\r\n\t"quoted" \'single\'',
  `${'long and plain '.repeat(10)}& then < an escape`, 'Grüße', 'ä & ö < ü', '世界 🎉 and more', `${'z'.repeat(30)}🎉<&>`,
  'ends with é', ']]>', '\u{1F600}'.repeat(20), 'a\u0080b', 'lone \uD800 surrogate',
];

t.test('the same bytes as serialize(), escapes and UTF-8 included, in text and in attribute values', async (t) => {
  for (const text of TEXTS) {
    const el = x('message', { xmlns: 'jabber:client', to: `${text}@example.com`, id: text, type: 'chat' },
      x('body', {}, text), x('x', { xmlns: 'urn:test', v: text }), x('empty'), text);
    const r = into(el, 1 << 16);
    t.ok(r.end > 3, `written: ${JSON.stringify(text)}`);
    t.same(r.bytes, encoded(el), `bytes of ${JSON.stringify(text)}`);
    t.equal(r.prefix, 'abc', 'nothing before the offset is touched');
    // What the archive reads back is what serialize() wrote, then parsed: the same tree.
    if (!text.includes('\uD800')) t.equal(parseXml(r.bytes.toString('utf8')).getChildText('body'), text, 'and parses back to the same text');
  }
});

t.test('a parsed stanza, nested, written as serialize() writes it', async (t) => {
  const stanza = parseXml(`<message xmlns='jabber:client' to='bob@example.com/r' type='chat' id='a&amp;b'>
    <body>Hi &lt;there&gt; — 👋</body><thread parent='p'>t1</thread>
    <reply xmlns='urn:xmpp:reply:0' to='alice@example.com/x' id='r"1'/>
    <html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p>a<b>bold</b>c</p></body></html>
  </message>`);
  t.same(into(stanza, 1 << 16).bytes, encoded(stanza));
});

t.test('xmlns in place of the root\'s own, where it stood, or last when it had none (as clone().setAttr)', async (t) => {
  const withNs = x('message', { to: 'a@b', xmlns: 'jabber:server', type: 'chat' }, x('body', {}, 'hi'));
  const without = x('message', { to: 'a@b' }, x('body', { xmlns: 'jabber:server' }, 'hi'));
  for (const el of [withNs, without]) {
    const r = into(el, 4096, 'jabber:client');
    t.same(r.bytes, encoded(el.clone().setAttr('xmlns', 'jabber:client')));
    t.equal(el.attr('xmlns'), el === withNs ? 'jabber:server' : undefined, 'the element itself is left as it was');
  }
  t.match(into(without, 4096, 'jabber:client').bytes.toString(), /<body xmlns="jabber:server">/, 'only the root is changed');
});

t.test('every buffer one byte short or more gives -1; the exact size fits', async (t) => {
  const el = x('message', { xmlns: 'jabber:client', to: 'zoë@example.com', id: 'a"b' },
    x('body', {}, `${'text & more '.repeat(4)}🎉 end`), x('r', { v: 'x'.repeat(40) }));
  const want = encoded(el);
  for (let size = 0; size < want.length; size++) {
    const r = into(el, size);
    if (r.end !== -1) { t.fail(`fits in ${size} of ${want.length} bytes: ${r.end}`); return; }
  }
  t.pass(`-1 for each of ${want.length} sizes short`);
  const exact = into(el, want.length);
  t.equal(exact.end, 3 + want.length);
  t.same(exact.bytes, want);
});

t.test('writeUtf8: as Buffer.write, -1 where it does not fit, and -1 passed on', async (t) => {
  for (const s of TEXTS) {
    const want = Buffer.from(s, 'utf8');
    const buf = Buffer.alloc(want.length);
    t.equal(writeUtf8(buf, 0, s), want.length, JSON.stringify(s));
    t.same(buf, want);
    if (want.length > 0) t.equal(writeUtf8(Buffer.alloc(want.length - 1), 0, s), -1, `one byte short: ${JSON.stringify(s)}`);
  }
  t.equal(writeUtf8(Buffer.alloc(8), -1, 'a'), -1);
});

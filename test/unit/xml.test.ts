import t from 'tap';
import { NS, parseXml, serialize, escapeAttr, escapeText, XmlElement, type XmlNode } from '../../src/xml/index.js';

/** Plain-object view of a tree, so t.same compares names, namespaces, attributes and child order. */
type Shape = string | { name: string; ns: string; attrs: Record<string, string>; children: Shape[] };
const shape = (n: XmlNode): Shape =>
  typeof n === 'string' ? n : { name: n.name, ns: n.ns, attrs: { ...n.attrs }, children: n.children.map(shape) };

const STANZA =
  `<message xmlns='jabber:client' to='juliet@example.com' type='chat' id='a&amp;b'>` +
  `<body>  Wherefore art thou, &lt;Romeo&gt;? &#x1F339; "quoted" 'single'\n</body>` +
  `<html xmlns='http://jabber.org/protocol/xhtml-im'><p>one <b>two</b> three</p></html>` +
  `<x:data xmlns:x='urn:x' x:flag='1' xml:lang='en'><x:item/></x:data>` +
  `</message>`;

t.test('parse then serialize then parse gives the same tree', async (t) => {
  const first = parseXml(STANZA);
  const second = parseXml(serialize(first));
  t.same(shape(second), shape(first));
  t.equal(serialize(second), serialize(first), 'serialization is stable');
});

t.test('a parsed stanza exposes names, attributes and text as written', async (t) => {
  const el = parseXml(STANZA);
  t.equal(el.name, 'message');
  t.equal(el.attr('id'), 'a&b', 'attribute entities are decoded once');
  t.equal(el.getChildText('body'), '  Wherefore art thou, <Romeo>? \u{1F339} "quoted" \'single\'\n', 'text is untrimmed');
  t.equal(el.getChild('data', 'urn:x')?.attr('x:flag'), '1');
});

t.test('text and elements keep their interleaved document order', async (t) => {
  const p = parseXml('<p>one <b>two</b> three<i/>four</p>');
  t.same(shape(p), {
    name: 'p',
    ns: '',
    attrs: {},
    children: ['one ', { name: 'b', ns: '', attrs: {}, children: ['two'] }, ' three', { name: 'i', ns: '', attrs: {}, children: [] }, 'four'],
  });
});

t.test('whitespace-only and surrounding whitespace text is preserved inside the root', async (t) => {
  t.same(parseXml('<body>   </body>').children, ['   ']);
  t.same(parseXml('<body>\n  hi\n</body>').children, ['\n  hi\n']);
  t.same(parseXml('<a>\r\nx\ry</a>').children, ['\nx\ny'], 'XML 1.0 §2.11 line ends become \\n');
});

t.test('whitespace around the root element is accepted', async (t) => {
  t.equal(parseXml('  \n<a/>\n\t ').name, 'a');
  t.equal(parseXml(' <a></a> ').name, 'a');
});

t.test('CDATA sections become literal text merged with neighbouring text', async (t) => {
  const el = parseXml('<a>x<![CDATA[<b>&amp;</b> <?pi?> <!-- c -->]]>y<![CDATA[]]></a>');
  t.same(el.children, ['x<b>&amp;</b> <?pi?> <!-- c -->y']);
  t.equal(serialize(el), '<a>x&lt;b&gt;&amp;amp;&lt;/b&gt; &lt;?pi?&gt; &lt;!-- c --&gt;y</a>');
});

t.test('character and predefined entity references are decoded', async (t) => {
  const el = parseXml(`<a v='&lt;&gt;&amp;&quot;&apos;&#65;&#x42;'>&lt;&gt;&amp;&quot;&apos;&#65;&#x42;&#x10FFFF;</a>`);
  t.equal(el.attr('v'), `<>&"'AB`);
  t.equal(el.text(), `<>&"'AB\u{10FFFF}`);
});

t.test('literal tabs and newlines in attribute values are normalized to spaces', async (t) => {
  const el = parseXml('<a v="x\ty\nz\r\nw" r="&#9;&#10;&#13;"/>');
  t.equal(el.attr('v'), 'x y z w', 'XML 1.0 §3.3.3');
  t.equal(el.attr('r'), '\t\n\r', 'character references survive normalization');
});

t.test('an XML declaration and a byte order mark are accepted', async (t) => {
  t.equal(parseXml(`<?xml version='1.0' encoding='UTF-8'?>\n<a/>`).name, 'a');
  t.equal(parseXml('<?xml version="1.0" standalone="yes"?><a/>').name, 'a');
  t.equal(parseXml('\uFEFF<a/>').name, 'a');
  t.equal(parseXml(Buffer.from('\uFEFF<?xml version="1.0"?><a/>')).name, 'a');
});

t.test('a Buffer is decoded as UTF-8', async (t) => {
  t.equal(parseXml(Buffer.from('<a>héllo 😀</a>')).text(), 'héllo 😀');
});

t.test('escapeText escapes markup characters once and CR for round trips', async (t) => {
  t.equal(escapeText('a & b < c > d ]]> e'), 'a &amp; b &lt; c &gt; d ]]&gt; e');
  t.equal(escapeText('&amp;'), '&amp;amp;', 'an already-escaped string is escaped again, not left alone');
  t.equal(escapeText('"quotes" \'stay\'\ttab\nnl'), '"quotes" \'stay\'\ttab\nnl');
  t.equal(escapeText('cr\r'), 'cr&#xD;');
  const plain = 'nothing to escape';
  t.equal(escapeText(plain), plain);
});

t.test('escapeAttr escapes quotes and whitespace as character references', async (t) => {
  t.equal(escapeAttr(`a&b<c>d"e'f`), `a&amp;b&lt;c&gt;d&quot;e'f`);
  t.equal(escapeAttr('\t\n\r'), '&#x9;&#xA;&#xD;');
});

t.test('serialize writes attributes in double quotes and empty elements as <a/>', async (t) => {
  const el = new XmlElement('iq', { type: 'get', id: `x"y'z&` }, [new XmlElement('ping', { xmlns: NS.PING })]);
  t.equal(serialize(el), `<iq type="get" id="x&quot;y'z&amp;"><ping xmlns="urn:xmpp:ping"/></iq>`);
  t.equal(el.toString(), serialize(el));
});

t.test('text and attribute values with every special character survive a round trip', async (t) => {
  const nasty = `]]> & &amp; < > " ' \t \n \r end`;
  const el = new XmlElement('a', { v: nasty }, [nasty]);
  const back = parseXml(serialize(el));
  t.equal(back.attr('v'), nasty);
  t.equal(back.text(), nasty);
});

t.test('serialize does not invent namespace declarations', async (t) => {
  const el = new XmlElement('query', { xmlns: NS.ROSTER });
  el.append(new XmlElement('item', { jid: 'a@b' }));
  t.equal(el.getChild('item')?.ns, NS.ROSTER);
  t.equal(serialize(el), '<query xmlns="jabber:iq:roster"><item jid="a@b"/></query>');
});

t.test('an unprefixed root without xmlns gets the caller default namespace', async (t) => {
  t.equal(parseXml('<message/>', undefined, NS.CLIENT).ns, NS.CLIENT);
  t.equal(parseXml('<message/>').ns, '', 'no default means no namespace');
  t.equal(parseXml(`<open xmlns='${NS.FRAMING}'/>`, undefined, NS.CLIENT).ns, NS.FRAMING);
});

t.test('unprefixed children inherit the default namespace in scope', async (t) => {
  const el = parseXml(`<iq><query xmlns='${NS.ROSTER}'><item/></query><other/></iq>`, undefined, NS.CLIENT);
  t.equal(el.getChild('query')?.ns, NS.ROSTER);
  t.equal(el.getChild('query')?.getChild('item')?.ns, NS.ROSTER);
  t.equal(el.getChild('other')?.ns, NS.CLIENT);
  t.equal(parseXml(`<a xmlns='urn:a'><b xmlns=''/></a>`).getChild('b')?.ns, '', 'xmlns="" undeclares');
});

t.test('prefixed names resolve through declarations on the element and its ancestors', async (t) => {
  const err = parseXml(
    `<stream:error xmlns:stream='${NS.STREAM}'><conflict xmlns='${NS.STREAMS}'/><stream:text/></stream:error>`,
    undefined,
    NS.CLIENT,
  );
  t.equal(err.ns, NS.STREAM);
  t.equal(err.local, 'error');
  t.ok(err.is('error', NS.STREAM));
  t.equal(err.getChild('conflict')?.ns, NS.STREAMS);
  t.equal(err.getChild('text')?.ns, NS.STREAM, 'prefix inherited from the parent');
  t.equal(err.attr('xmlns:stream'), NS.STREAM, 'declarations stay in attrs');
});

t.test('an inner declaration shadows an outer one for the same prefix', async (t) => {
  const el = parseXml(`<p:a xmlns:p='urn:1'><p:b xmlns:p='urn:2'><p:c/></p:b><p:d/></p:a>`);
  t.equal(el.ns, 'urn:1');
  t.equal(el.getChild('b')?.ns, 'urn:2');
  t.equal(el.getChild('b')?.getChild('c')?.ns, 'urn:2');
  t.equal(el.getChild('d')?.ns, 'urn:1');
});

t.test('the xml prefix is always bound', async (t) => {
  t.equal(parseXml(`<body xml:lang='en'>hi</body>`).attr('xml:lang'), 'en');
  t.equal(parseXml(`<xml:a/>`).ns, NS.XML);
});

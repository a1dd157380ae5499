import t from 'tap';
import { NS, parseXml, serialize, x, XmlElement } from '../../src/xml/index.js';

t.test('the constructor drops null and undefined attributes and stringifies the rest', async (t) => {
  const el = new XmlElement('a', { s: 's', n: 5, b: false, u: undefined, z: null });
  t.same(el.attrs, { s: 's', n: '5', b: 'false' });
  t.equal(el.ns, '');
  t.same(el.children, []);
});

t.test('ns comes from xmlns when building', async (t) => {
  t.equal(new XmlElement('query', { xmlns: NS.ROSTER }).ns, NS.ROSTER);
  t.equal(x('ping', { xmlns: NS.PING }).ns, NS.PING);
});

t.test('x builds nested trees and skips falsy children', async (t) => {
  const hasBody = false;
  const el = x(
    'message',
    { xmlns: NS.CLIENT, to: 'a@b', id: undefined },
    hasBody && x('body', {}, 'never'),
    null,
    undefined,
    '',
    x('body', {}, 'hi'),
    'tail',
  );
  t.equal(serialize(el), '<message xmlns="jabber:client" to="a@b"><body>hi</body>tail</message>');
  t.same(el.attrs, { xmlns: NS.CLIENT, to: 'a@b' });
});

t.test('appended elements without xmlns inherit the parent namespace, deeply', async (t) => {
  const body = x('body', {}, x('span'));
  const msg = x('message', { xmlns: NS.CLIENT }, body);
  t.equal(body.ns, NS.CLIENT);
  t.equal(body.getChild('span')?.ns, NS.CLIENT, 'built before the append, still inherits');
  const own = x('query', { xmlns: NS.ROSTER }, x('item'));
  msg.append(own);
  t.equal(own.ns, NS.ROSTER, 'an explicit xmlns wins');
  t.equal(own.getChild('item')?.ns, NS.ROSTER);
  t.equal(x('a').append(x('b')).getChild('b')?.ns, '', 'nothing to inherit from a parent without ns');
});

t.test('constructor children are appended like append()', async (t) => {
  const el = new XmlElement('iq', { xmlns: NS.CLIENT }, [x('bind'), 'text']);
  t.equal(el.getChild('bind')?.ns, NS.CLIENT);
  t.equal(el.text(), 'text');
});

t.test('local, is and prefix-aware lookups', async (t) => {
  const el = parseXml(`<stream:features xmlns:stream='${NS.STREAM}'><bind xmlns='${NS.BIND}'/><sm xmlns='${NS.SM}'/></stream:features>`);
  t.equal(el.local, 'features');
  t.ok(el.is('features'));
  t.ok(el.is('features', NS.STREAM));
  t.notOk(el.is('features', NS.CLIENT));
  t.notOk(el.is('atures'), 'a suffix that is not the local name does not match');
  t.notOk(el.is('stream:features'), 'is() takes a local name, never a prefixed one');
  t.equal(el.getChild('bind')?.ns, NS.BIND);
  t.equal(el.getChild('bind', NS.SM), undefined);
  t.equal(el.getChild('missing'), undefined);
  t.equal(x('a').local, 'a');
});

t.test('getChildren filters by local name and namespace', async (t) => {
  const el = parseXml(`<q xmlns='urn:q'>t<item n='1'/><other/><item n='2' xmlns='urn:x'/><item n='3'/></q>`);
  t.same(el.getChildren().map((c) => c.name), ['item', 'other', 'item', 'item']);
  t.same(el.getChildren('item').map((c) => c.attr('n')), ['1', '2', '3']);
  t.same(el.getChildren('item', 'urn:q').map((c) => c.attr('n')), ['1', '3']);
  t.same(el.getChildren(undefined, 'urn:x').map((c) => c.attr('n')), ['2']);
});

t.test('firstElement skips text', async (t) => {
  t.equal(parseXml('<a>  text <b/><c/></a>').firstElement?.name, 'b');
  t.equal(parseXml('<a>only text</a>').firstElement, undefined);
});

t.test('text concatenates direct text children only', async (t) => {
  const el = parseXml('<a>one<b>not me</b>two</a>');
  t.equal(el.text(), 'onetwo');
  t.equal(parseXml('<a><b/></a>').text(), '');
  t.equal(parseXml('<a/>').text(), '');
  t.equal(el.getChildText('b'), 'not me');
  t.equal(el.getChildText('missing'), undefined);
});

t.test('setAttr sets, removes and keeps ns in step with xmlns', async (t) => {
  const el = x('a', { id: '1' });
  t.equal(el.setAttr('to', 'b@c'), el, 'chainable');
  t.equal(el.attr('to'), 'b@c');
  el.setAttr('id', undefined);
  t.equal(el.attr('id'), undefined);
  t.notOk('id' in el.attrs);
  el.setAttr('xmlns', NS.PING);
  t.equal(el.ns, NS.PING);
});

t.test('clone is deep and independent', async (t) => {
  const orig = parseXml(`<m xmlns='jabber:client' id='1'><body>hi</body></m>`);
  const copy = orig.clone();
  t.equal(serialize(copy), serialize(orig));
  t.equal(copy.getChild('body')?.ns, NS.CLIENT);
  copy.setAttr('id', '2');
  copy.getChild('body')?.append(' there');
  copy.append(x('extra'));
  t.equal(orig.attr('id'), '1');
  t.equal(orig.getChildText('body'), 'hi');
  t.equal(orig.children.length, 1);
  t.ok(copy instanceof XmlElement);
});

t.test('parsed elements are XmlElement instances with working methods', async (t) => {
  const el = parseXml('<a><b/></a>');
  t.ok(el instanceof XmlElement);
  t.ok(el.firstElement instanceof XmlElement);
  t.equal(el.toString(), '<a><b/></a>');
});

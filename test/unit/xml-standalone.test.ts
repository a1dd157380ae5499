/** standalone(): a subtree cut out of its document declares the namespaces it took from its ancestors. */
import t from 'tap';
import { parseXml, standalone, type XmlElement } from '../../src/xml/index.js';

const first = (xml: string, ...path: number[]): XmlElement => {
  let el = parseXml(xml);
  for (const i of path) el = el.getChildren()[i]!;
  return el;
};
const roundTrip = (el: XmlElement): XmlElement => parseXml(standalone(el)!.toString());

t.test('a prefix bound on an ancestor is declared on the copy; names and namespaces read back the same', async (t) => {
  const el = first("<iq xmlns='jabber:client'><item xmlns:p='urn:p'><p:thing><p:part a='1'/>text</p:thing></item></iq>", 0, 0);
  t.throws(() => parseXml(el.toString()), 'alone, as it was, it does not parse');
  const back = roundTrip(el);
  t.equal(back.name, 'p:thing');
  t.equal(back.ns, 'urn:p');
  t.equal(back.getChild('part', 'urn:p')?.attr('a'), '1');
  t.equal(back.text(), 'text');
});

t.test('the inherited default namespace of a prefixed root\'s unprefixed children is kept, not replaced by the root\'s', async (t) => {
  const el = first("<a xmlns='urn:outer' xmlns:p='urn:p'><p:root><child/></p:root></a>", 0);
  const back = roundTrip(el);
  t.equal(back.ns, 'urn:p', 'the root in its namespace');
  t.equal(back.getChildren()[0]!.ns, 'urn:outer', 'the child in the default it inherited');
});

t.test('an unprefixed root that inherits its default namespace declares it; one that declares it is unchanged', async (t) => {
  t.equal(roundTrip(first("<a xmlns='urn:x'><b><c/></b></a>", 0)).getChildren()[0]!.ns, 'urn:x');
  const own = first("<a xmlns='urn:x'><b xmlns='urn:y'/></a>", 0);
  t.equal(standalone(own)!.toString(), own.toString());
});

t.test('prefixes declared inside the subtree are left alone; an attribute prefix with no known namespace is refused', async (t) => {
  const inner = first("<a xmlns='urn:x'><q:b xmlns:q='urn:q'><q:c/></q:b></a>", 0);
  t.equal(standalone(inner)!.toString(), inner.toString());
  t.equal(standalone(first("<a xmlns='urn:x' xmlns:z='urn:z'><b z:attr='1'/></a>", 0)), undefined);
  t.equal(roundTrip(first("<a xmlns='urn:x' xmlns:z='urn:z'><z:b z:attr='1'/></a>", 0)).attr('z:attr'), '1', 'unless an element of the subtree resolves it');
});

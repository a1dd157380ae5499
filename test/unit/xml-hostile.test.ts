import t from 'tap';
import { DEFAULT_LIMITS, parseXml, XmlError, type XmlErrorCondition, type XmlLimits } from '../../src/xml/index.js';
import { XMLValidator } from 'fast-xml-parser';

/** The condition parseXml fails with, or a description of what happened instead (so t.equal can fail). */
function conditionOf(input: string | Buffer, limits: XmlLimits = DEFAULT_LIMITS): XmlErrorCondition | string {
  try {
    parseXml(input, limits, 'jabber:client');
  } catch (err) {
    return err instanceof XmlError ? err.condition : `non-XmlError: ${String(err)}`;
  }
  return 'parsed without error';
}

const BILLION_LAUGHS = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<lolz>&lol9;</lolz>`;

const nest = (depth: number): string => '<a>'.repeat(depth) + '</a>'.repeat(depth);
const withAttrs = (n: number): string => `<a ${Array.from({ length: n }, (_, i) => `a${i}='${i}'`).join(' ')}/>`;

t.test('an XML declaration of an encoding other than UTF-8 is unsupported-encoding (RFC 6120 §11.6)', async (t) => {
  t.equal(conditionOf(`<?xml version='1.0' encoding='utf-8'?><a/>`), 'parsed without error', 'the name is case-insensitive');
  for (const enc of ['ISO-8859-1', 'UTF-16', 'us-ascii']) t.equal(conditionOf(`<?xml version='1.0' encoding='${enc}'?><a/>`), 'unsupported-encoding', enc);
});

t.test('DTDs, entity declarations, comments and processing instructions are restricted-xml', async (t) => {
  t.equal(conditionOf(BILLION_LAUGHS), 'restricted-xml');
  t.equal(conditionOf(`<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>`), 'restricted-xml');
  t.equal(conditionOf(`<!DOCTYPE x SYSTEM "http://example.com/x.dtd"><x/>`), 'restricted-xml');
  t.equal(conditionOf('<!DOCTYPE message><message/>'), 'restricted-xml');
  t.equal(conditionOf('<a><!ENTITY e "x"></a>'), 'restricted-xml');
  t.equal(conditionOf('<a><!-- comment --></a>'), 'restricted-xml');
  t.equal(conditionOf('<!-- before --><a/>'), 'restricted-xml');
  t.equal(conditionOf('<a/><!-- after -->'), 'restricted-xml');
  t.equal(conditionOf('<a><?php echo 1; ?></a>'), 'restricted-xml');
  t.equal(conditionOf('<?xml-stylesheet href="x"?><a/>'), 'restricted-xml');
  t.equal(conditionOf(' <?xml version="1.0"?><a/>'), 'restricted-xml'); // a declaration not at the start is a PI
});

t.test('references to entities other than the predefined five are not-well-formed', async (t) => {
  t.equal(conditionOf('<a>&foo;</a>'), 'not-well-formed');
  t.equal(conditionOf('<lolz>&lol9;</lolz>'), 'not-well-formed');
  t.equal(conditionOf('<a>&nbsp;</a>'), 'not-well-formed');
  t.equal(conditionOf('<a v="&foo;"/>'), 'not-well-formed');
  t.equal(conditionOf('<a>a & b</a>'), 'not-well-formed');
  t.equal(conditionOf('<a v="a & b"/>'), 'not-well-formed');
  t.equal(conditionOf('<a>&#x;</a>'), 'not-well-formed');
  t.equal(conditionOf('<a>&#65</a>'), 'not-well-formed');
});

t.test('characters outside XML 1.0 Char are not-well-formed, raw or referenced', async (t) => {
  t.equal(conditionOf('<a>\u0000</a>'), 'not-well-formed');
  t.equal(conditionOf('<a>&#0;</a>'), 'not-well-formed');
  t.equal(conditionOf('<a>&#x0;</a>'), 'not-well-formed');
  t.equal(conditionOf('<a v="\u0000"/>'), 'not-well-formed');
  t.equal(conditionOf('<a v="&#0;"/>'), 'not-well-formed');
  t.equal(conditionOf(Buffer.from('<a>\u0000</a>')), 'not-well-formed');
  t.equal(conditionOf('<a>\u0007</a>'), 'not-well-formed');
  t.equal(conditionOf('<a>&#x1B;</a>'), 'not-well-formed');
  t.equal(conditionOf('<a>\uFFFE</a>'), 'not-well-formed');
  t.equal(conditionOf('<a>&#xFFFF;</a>'), 'not-well-formed');
  t.equal(conditionOf('<a>\uD800</a>'), 'not-well-formed');
  t.equal(conditionOf('<a>\uDC00x</a>'), 'not-well-formed');
  t.equal(conditionOf('<a>&#xD800;</a>'), 'not-well-formed');
  t.equal(conditionOf('<a>&#x110000;</a>'), 'not-well-formed');
  t.equal(conditionOf('<a><![CDATA[\u0001]]></a>'), 'not-well-formed');
});

t.test('invalid UTF-8 in a Buffer is not-well-formed', async (t) => {
  t.equal(conditionOf(Buffer.from([0x3c, 0x61, 0x3e, 0xff, 0x3c, 0x2f, 0x61, 0x3e])), 'not-well-formed');
  t.equal(conditionOf(Buffer.from([0x3c, 0x61, 0x3e, 0xc3, 0x3c, 0x2f, 0x61, 0x3e])), 'not-well-formed'); // truncated sequence
  t.equal(conditionOf(Buffer.from([0x3c, 0x61, 0x3e, 0xed, 0xa0, 0x80, 0x3c, 0x2f, 0x61, 0x3e])), 'not-well-formed'); // CESU surrogate
});

t.test('undeclared or malformed namespace prefixes are not-well-formed', async (t) => {
  t.equal(conditionOf('<foo:bar/>'), 'not-well-formed');
  t.equal(conditionOf('<a><foo:bar/></a>'), 'not-well-formed');
  t.equal(conditionOf('<a foo:bar="1"/>'), 'not-well-formed');
  t.equal(conditionOf(`<a xmlns:foo='urn:x'/><foo:b/>`), 'not-well-formed');
  t.equal(conditionOf(`<a><b xmlns:p='urn:p'/><p:c/></a>`), 'not-well-formed'); // declaration out of scope
  t.equal(conditionOf('<:a/>'), 'not-well-formed');
  t.equal(conditionOf('<a:/>'), 'not-well-formed');
  t.equal(conditionOf(`<a:b:c xmlns:a='urn:a'/>`), 'not-well-formed');
  t.equal(conditionOf(`<a xmlns:p=''/>`), 'not-well-formed');
  t.equal(conditionOf(`<xmlns:a/>`), 'not-well-formed');
});

t.test('broken structure is not-well-formed', async (t) => {
  t.equal(conditionOf(''), 'not-well-formed');
  t.equal(conditionOf('   \n'), 'not-well-formed');
  t.equal(conditionOf('just text'), 'not-well-formed');
  t.equal(conditionOf('<a><b></a></b>'), 'not-well-formed');
  t.equal(conditionOf('<a><b></b>'), 'not-well-formed');
  t.equal(conditionOf('<a>'), 'not-well-formed');
  t.equal(conditionOf('</a>'), 'not-well-formed');
  t.equal(conditionOf('<a></a></a>'), 'not-well-formed');
  t.equal(conditionOf('<a/><b/>'), 'not-well-formed');
  t.equal(conditionOf('<a></a><b></b>'), 'not-well-formed');
  t.equal(conditionOf('<a/><b></b>'), 'not-well-formed');
  t.equal(conditionOf('<a/>garbage'), 'not-well-formed');
  t.equal(conditionOf('<a/>x/>'), 'not-well-formed');
  t.equal(conditionOf('<a></a>garbage'), 'not-well-formed');
  t.equal(conditionOf('garbage<a/>'), 'not-well-formed');
  t.equal(conditionOf('<a>x]]>y</a>'), 'not-well-formed');
  t.equal(conditionOf('<a><![CDATA[x</a>'), 'not-well-formed');
  t.equal(conditionOf('<a><!foo></a>'), 'not-well-formed');
  t.equal(conditionOf('<?xml version="9"?><a/>'), 'not-well-formed');
});

t.test('bad attribute syntax is not-well-formed', async (t) => {
  t.equal(conditionOf(`<a b='1' b='2'/>`), 'not-well-formed');
  t.equal(conditionOf('<a b=1/>'), 'not-well-formed');
  t.equal(conditionOf('<a b/>'), 'not-well-formed');
  t.equal(conditionOf(`<a b='1'c='2'/>`), 'not-well-formed');
  t.equal(conditionOf(`<a b='1/>`), 'not-well-formed');
  t.equal(conditionOf(`<a b="x<y"/>`), 'not-well-formed');
  t.equal(conditionOf(`<a b="<x/>"/>`), 'not-well-formed');
  t.equal(conditionOf(`<a xmlns:p='urn:u' xmlns:q='urn:u' p:x='1' q:x='2'/>`), 'not-well-formed'); // same expanded name
  t.equal(conditionOf(`<a xmlns:p='urn:u' xmlns:q='urn:v' q:y='0' p:x='1' q:x='2'/>`), 'parsed without error');
});

t.test('size, depth and attribute limits are policy-violation', async (t) => {
  const limits: XmlLimits = { maxBytes: 100, maxDepth: 3, maxAttrs: 2, maxAttrValueLength: 5 };
  t.equal(conditionOf(`<a>${'x'.repeat(100)}</a>`, limits), 'policy-violation');
  t.equal(conditionOf(Buffer.from(`<a>${'x'.repeat(100)}</a>`), limits), 'policy-violation');
  t.equal(conditionOf(`<a>${'é'.repeat(60)}</a>`, limits), 'policy-violation'); // 67 chars but 127 bytes
  t.equal(parseXml(`<a>${'é'.repeat(60)}</a>`, { ...limits, maxBytes: 127 }).text().length, 60, 'limit is inclusive');
  t.equal(conditionOf(nest(4), limits), 'policy-violation');
  t.equal(parseXml(nest(3), limits).name, 'a', 'depth 3 is allowed');
  t.equal(conditionOf(withAttrs(3), limits), 'policy-violation');
  t.equal(parseXml(withAttrs(2), limits).name, 'a', '2 attributes are allowed');
  t.equal(conditionOf(`<a v='123456'/>`, limits), 'policy-violation');
  t.equal(parseXml(`<a v='12345'/>`, limits).attr('v'), '12345');
});

t.test('the default limits reject deep nesting, huge values and many attributes', async (t) => {
  t.equal(conditionOf(nest(10_000)), 'policy-violation');
  t.equal(conditionOf(`<a v='${'x'.repeat(DEFAULT_LIMITS.maxAttrValueLength + 1)}'/>`), 'policy-violation');
  t.equal(conditionOf(withAttrs(DEFAULT_LIMITS.maxAttrs + 1)), 'policy-violation');
  t.equal(conditionOf(`<a>${'x'.repeat(DEFAULT_LIMITS.maxBytes)}</a>`), 'policy-violation');
  t.equal(parseXml(nest(DEFAULT_LIMITS.maxDepth)).name, 'a');
});

t.test('namespace declarations in scope are capped so prefix lookups stay cheap', async (t) => {
  const decls = (from: number, n: number): string =>
    Array.from({ length: n }, (_, i) => `xmlns:p${from + i}='urn:${from + i}'`).join(' ');
  t.equal(conditionOf(`<a ${decls(0, 60)}><b ${decls(60, 10)}/></a>`), 'policy-violation');
  t.equal(parseXml(`<a ${decls(0, 60)}><b ${decls(60, 2)}><p61:c/></b></a>`).firstElement?.firstElement?.ns, 'urn:61');
});

t.test('the size limit applies before anything is parsed', async (t) => {
  t.equal(conditionOf(BILLION_LAUGHS, { ...DEFAULT_LIMITS, maxBytes: 64 }), 'policy-violation');
});

t.test('very deep nesting with a huge maxDepth is rejected without a stack overflow', async (t) => {
  const depth = 200_000;
  t.equal(conditionOf(nest(depth), { ...DEFAULT_LIMITS, maxDepth: Infinity, maxBytes: depth * 8 }), 'policy-violation');
});

t.test('structure, names and attribute syntax (the one-pass scan in wellformed.ts)', async (t) => {
  const ok = 'parsed without error';
  const cases: Array<[string, string]> = [
    ['<a-b.c_d9/>', ok],
    ['<é/>', ok],
    ['<\u{10000}x/>', ok], // an astral NameStartChar
    ['<a\u00b7\u0301/>', ok], // NameChars that cannot start a name
    ['\n <a b = "1"\tc=\'2\' ></a >\r\n', ok], // white space where XML allows it
    [`<a b='x>y' c="it's"/>`, ok],
    ['<a><![CDATA[<not-a-tag>]]></a>', ok],
    [`<p:a xmlns:p='urn:p'><p:b/></p:a>`, ok],
    ['<1a/>', 'not-well-formed'],
    ['<-a/>', 'not-well-formed'],
    ['<\u00b7a/>', 'not-well-formed'],
    ['<a\u00d7/>', 'not-well-formed'], // × is not a NameChar
    ['<\u{f0000}/>', 'not-well-formed'], // beyond #xEFFFF
    ['< a/>', 'not-well-formed'],
    ['<a / >', 'not-well-formed'],
    ['<a/ >', 'not-well-formed'],
    ['<ab></ba>', 'not-well-formed'],
    ['<a></a b>', 'not-well-formed'],
    ['<a></ a>', 'not-well-formed'],
    ['<a>text', 'not-well-formed'],
    ['<a', 'not-well-formed'],
    ['<a b', 'not-well-formed'],
    ['<a b=', 'not-well-formed'],
    ['<a b="1"', 'not-well-formed'],
    ['<', 'not-well-formed'],
    [`<a b="1" b='1'/>`, 'not-well-formed'],
    ['<a b=""c=""/>', 'not-well-formed'],
    ['<![CDATA[x]]><a/>', 'not-well-formed'],
    ['<a/><![CDATA[x]]>', 'not-well-formed'],
    ['<a></a>\n<b/>', 'not-well-formed'],
  ];
  for (const [doc, want] of cases) t.equal(conditionOf(doc), want, JSON.stringify(doc));
});

t.test('mutated stanzas: whatever parses, fast-xml-parser\'s own validator also accepts', async (t) => {
  // A differential check of the hand-written scan against the library's validator, over a bounded,
  // seeded set of random edits (delete, duplicate or insert one character) of real stanzas.
  const seeds = [
    `<message xmlns='jabber:client' to='bob@localhost/r' type='chat' id='m1'><body>hi &amp; bye</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>`,
    `<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>`,
    `<presence><show>away</show><status>out &lt;b&gt;</status><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/></presence>`,
    `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' sid='s'><r xmlns='urn:xmpp:sm:3'/><message to='a@b'><body><![CDATA[x<y]]></body></message></body>`,
  ];
  const alphabet = `<>/='" \tab:!?&;[]-.x\u00e9`;
  let state = 0x2545f491;
  const rnd = (n: number): number => { state ^= state << 13; state ^= state >>> 17; state ^= state << 5; return (state >>> 0) % n; };
  let accepted = 0;
  let disagreements = 0;
  for (let k = 0; k < 20000; k++) {
    const seed = seeds[k % seeds.length]!;
    const at = rnd(seed.length);
    const op = rnd(3);
    const doc = op === 0 ? seed.slice(0, at) + seed.slice(at + 1)
      : op === 1 ? seed.slice(0, at) + seed[at] + seed.slice(at)
      : seed.slice(0, at) + alphabet[rnd(alphabet.length)] + seed.slice(at);
    if (conditionOf(doc) !== 'parsed without error') continue;
    accepted++;
    if (XMLValidator.validate(doc, { allowBooleanAttributes: false }) !== true) {
      disagreements++;
      if (disagreements <= 5) t.fail(`accepted, but fast-xml-parser's validator rejects: ${JSON.stringify(doc)}`);
    }
  }
  t.equal(disagreements, 0, 'no document that parses is refused by the library validator');
  t.ok(accepted > 1000, `enough mutants still parse to make the comparison mean something (${accepted})`);
});

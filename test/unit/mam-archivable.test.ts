/**
 * Which routed messages the archive keeps (features/mam/archiving.ts archivable, XEP-0313 §5.1.1),
 * and the forged <stanza-id/>s taken out of what clients send (XEP-0359 §5), on parsed stanzas
 * as the router sees them.
 */
import t from 'tap';
import { parseXml } from '../../src/xml/index.js';
import { archivable, stanzaIdElement, stripForgedStanzaIds } from '../../src/xmpp/features/mam/archiving.js';
import { serialize } from '../../src/xml/index.js';

const msg = (attrs: string, inner: string) => parseXml(`<message xmlns='jabber:client' to='bob@localhost' ${attrs}>${inner}</message>`);

t.test('kept: chat and normal (or no type, or an unknown one) with a body', async (t) => {
  for (const type of ["type='chat'", "type='normal'", '', "type='bogus'"]) {
    t.equal(archivable(msg(type, '<body>hi</body>')), true, `${type || 'no type'} with a body`);
  }
  t.equal(archivable(msg("type='chat'", "<active xmlns='http://jabber.org/protocol/chatstates'/><body>hi</body><request xmlns='urn:xmpp:receipts'/>")), true,
    'a body among other payloads');
  t.equal(archivable(msg("type='chat'", "text<body>hi</body>")), true, 'text beside the body');
});

t.test('not kept', async (t) => {
  const cases: Array<[string, string, string]> = [
    ["type='groupchat'", '<body>hi</body>', 'groupchat'],
    ["type='headline'", '<body>hi</body>', 'headline'],
    ["type='error'", '<body>hi</body>', 'error'],
    ["type='chat'", "<active xmlns='http://jabber.org/protocol/chatstates'/>", 'a chat state alone'],
    ["type='chat'", "<received xmlns='urn:xmpp:receipts' id='x'/>", 'a receipt alone'],
    ["type='chat'", "<body xmlns='urn:example'>hi</body>", 'a body in another namespace'],
    ["type='chat'", "<body>hi</body><no-store xmlns='urn:xmpp:hints'/>", 'XEP-0334 no-store'],
    ["type='chat'", "<no-permanent-store xmlns='urn:xmpp:hints'/><body>hi</body>", 'XEP-0334 no-permanent-store, before the body'],
    ["type='chat'", "<body>hi</body><sent xmlns='urn:xmpp:carbons:2'/>", 'a carbons sent wrapper'],
    ["type='chat'", "<received xmlns='urn:xmpp:carbons:2'/><body>hi</body>", 'a carbons received wrapper'],
  ];
  for (const [type, inner, what] of cases) t.equal(archivable(msg(type, inner)), false, what);
  t.equal(archivable(msg("type='chat'", "<body>hi</body><store xmlns='urn:xmpp:hints'/><sent xmlns='urn:example'/>")), true,
    'other hints and a sent in another namespace do not opt out');
});

t.test('forged stanza ids go, foreign ones and the rest stay, in order', async (t) => {
  const hosts = new Set(['localhost']);
  const m = msg("type='chat'", "<body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='bob@localhost' id='f1'/>"
    + "<stanza-id xmlns='urn:xmpp:sid:0' by='room@muc.example' id='keep'/><stanza-id xmlns='urn:xmpp:sid:0' by='LOCALHOST' id='f2'/>"
    + "<origin-id xmlns='urn:xmpp:sid:0' id='o'/>");
  stripForgedStanzaIds(m, hosts);
  t.same(m.children.map((c) => typeof c === 'string' ? c : `${c.name}:${c.attr('id') ?? ''}`), ['body:', 'stanza-id:keep', 'origin-id:o']);
  const clean = msg("type='chat'", '<body>hi</body>');
  const before = clean.children;
  stripForgedStanzaIds(clean, hosts);
  t.equal(clean.children, before, 'a message without one keeps its children as they are');
});

t.test("the server's stanza-id element", async (t) => {
  const el = stanzaIdElement('bob@localhost', 'abc.def');
  t.equal(serialize(el), '<stanza-id xmlns="urn:xmpp:sid:0" by="bob@localhost" id="abc.def"/>');
  t.equal(el.is('stanza-id', 'urn:xmpp:sid:0'), true, 'in its namespace');
  const again = parseXml(serialize(msg("type='chat'", '<body>hi</body>').append(el))).getChild('stanza-id', 'urn:xmpp:sid:0');
  t.equal(again?.attr('by'), 'bob@localhost', 'parsed back');
});

import t from 'tap';
import { DEFAULT_LIMITS, NS, parseXml, serialize, x } from '../../src/xml/index.js';
import {
  BoshError, negotiateVer, qualified, readRequest, responseBody, startTag, terminateForStreamError,
} from '../../src/transports/bosh/body.js';
import { streamErrorElement } from '../../src/xmpp/errors.js';

const parse = (s: string) => readRequest(parseXml(s));

t.test('a request is read: rid, sid, type, pause, ack, key, and xmpp:* under any prefix', async (t) => {
  const r = parse(`<body xmlns='${NS.HTTPBIND}' xmlns:x='${NS.XBOSH}' rid='42' sid='s' type='terminate' pause='30' ack='41' key='k' x:restart='true' x:version='1.0'/>`);
  t.equal(r.rid, 42);
  t.equal(r.sid, 's');
  t.equal(r.terminate, true);
  t.equal(r.pause, 30);
  t.equal(r.ack, 41);
  t.equal(r.key, 'k');
  t.equal(r.restart, true);
  t.equal(r.xbosh('version'), '1.0');
  t.equal(parse(`<body xmlns='${NS.HTTPBIND}' rid='1' xmpp:restart='true' xmlns:xmpp='urn:example'/>`).restart, false, 'the prefix must be bound to urn:xmpp:xbosh');
});

t.test('payloads left in the httpbind namespace move to jabber:client (XEP-0206 §3)', async (t) => {
  const r = parse(`<body xmlns='${NS.HTTPBIND}' rid='1'><message to='a@b'><body>hi</body></message><iq xmlns='jabber:client' type='get' id='1'/></body>`);
  t.equal(r.payloads.length, 2);
  t.equal(r.payloads[0]!.ns, NS.CLIENT);
  t.equal(r.payloads[0]!.getChild('body')!.ns, NS.CLIENT, 'descendants too');
  t.equal(r.payloads[1]!.ns, NS.CLIENT);
});

t.test('malformed wrappers are bad-request', async (t) => {
  for (const bad of [
    `<body rid='1'/>`,
    `<body xmlns='${NS.HTTPBIND}'/>`,
    `<body xmlns='${NS.HTTPBIND}' rid='x'/>`,
    `<body xmlns='${NS.HTTPBIND}' rid='1' type='bogus'/>`,
    `<body xmlns='${NS.HTTPBIND}' rid='1' pause='-5'/>`,
    `<body xmlns='${NS.HTTPBIND}' rid='1'>text</body>`,
  ]) {
    let caught: unknown;
    try { parse(bad); } catch (err) { caught = err; }
    t.ok(caught instanceof BoshError && caught.condition === 'bad-request', bad);
  }
  t.doesNotThrow(() => parse(`<body xmlns='${NS.HTTPBIND}' rid='1'>\n  <presence xmlns='jabber:client'/>\n</body>`), 'whitespace between payloads is fine');
});

t.test("a client's recoverable binding error (type='error', XEP-0124 §17: the client MAY report binding errors) is an ordinary request", async (t) => {
  const r = parse(`<body xmlns='${NS.HTTPBIND}' rid='1' type='error'><presence xmlns='jabber:client'/></body>`);
  t.equal(r.terminate, false);
  t.equal(r.payloads.length, 1, 'its payloads are taken');
});

t.test("'ver' is the lower of the client's and ours, compared as integers", async (t) => {
  t.equal(negotiateVer(undefined), '1.11');
  t.equal(negotiateVer('1.6'), '1.6');
  t.equal(negotiateVer('1.10'), '1.10', '1.10 < 1.11 although "1.10" > "1.1"');
  t.equal(negotiateVer('1.12'), '1.11');
  t.equal(negotiateVer('2.0'), '1.11');
  t.equal(negotiateVer('0.9'), '0.9');
  t.equal(negotiateVer('junk'), '1.11');
});

t.test('outgoing stanzas get an explicit xmlns without touching the shared original', async (t) => {
  const inherited = parseXml(`<message to='a@b'><body>x</body></message>`, undefined, NS.CLIENT);
  const q = qualified(inherited);
  t.equal(q.attr('xmlns'), NS.CLIENT);
  t.equal(inherited.attr('xmlns'), undefined, 'the original is unchanged');
  const own = x('success', { xmlns: NS.SASL });
  t.equal(qualified(own), own, 'an element with its own xmlns is sent as is');
  const body = responseBody({}, [inherited, x('stream:features', { 'xmlns:stream': NS.STREAM })]);
  const reparsed = parseXml(serialize(body));
  t.equal(reparsed.getChildren()[0]!.ns, NS.CLIENT, 'the stanza is jabber:client on the wire');
  t.equal(reparsed.getChildren()[1]!.ns, NS.STREAM);
  t.equal(body.attr('xmlns:stream'), NS.STREAM, 'the body declares the stream prefix when a payload uses it');
});

t.test('stream errors map to terminal conditions (XEP-0124 §17.2, XEP-0206 §7)', async (t) => {
  const own = terminateForStreamError({ condition: 'host-unknown', text: 'not served here' }, []);
  t.equal(own.attr('condition'), 'host-unknown');
  t.equal(own.getChildren().length, 0);
  t.equal(terminateForStreamError({ condition: 'system-shutdown' }, []).attr('condition'), 'system-shutdown');
  const msg = x('message', { xmlns: NS.CLIENT }, x('body', {}, 'last'));
  const wrapped = terminateForStreamError({ condition: 'conflict', text: 'replaced' }, [msg]);
  t.equal(wrapped.attr('condition'), 'remote-stream-error');
  t.same(wrapped.getChildren().map((c) => c.name), ['message', 'stream:error'], 'stanzas first, then the stream error');
  t.same(wrapped.getChildren()[1], streamErrorElement({ condition: 'conflict', text: 'replaced' }), 'the stream error as RFC 6120 §4.9.2 shapes it');
  const shared = terminateForStreamError({ condition: 'policy-violation' }, []);
  t.equal(shared.attr('condition'), 'remote-stream-error', 'a condition both specs name is still a stream error (XEP-0206 §7)');
  const clean = terminateForStreamError(undefined, [msg]);
  t.equal(clean.attr('type'), 'terminate');
  t.equal(clean.attr('condition'), undefined);
});

t.test("the root's start tag alone is read, for a body too large to parse before authentication", async (t) => {
  const sidOf = (s: string) => startTag(Buffer.from(s), DEFAULT_LIMITS)?.attr('sid');
  t.equal(sidOf(`<body xmlns='${NS.HTTPBIND}' rid='1' sid='abc'><message><body>hi</body></message></body>`), 'abc');
  t.equal(sidOf(`<body xmlns='${NS.HTTPBIND}' rid='1' sid='abc'/>`), 'abc', 'an empty body');
  t.equal(sidOf(`\ufeff<?xml version='1.0' encoding='UTF-8'?>\n<body xmlns='${NS.HTTPBIND}' a='x>y' b="'>" sid="abc">`), 'abc', "a BOM, the XML declaration, '>' in quoted values");
  t.equal(sidOf(`<body xmlns='${NS.HTTPBIND}' rid='1'><x sid='victim'/></body>`), undefined, "a payload's attribute is not the body's");
  t.equal(sidOf(`<b:body xmlns:b='${NS.HTTPBIND}' sid='abc'>`), 'abc', 'a prefixed root');
  for (const bad of ['', '   ', 'sid=\'abc\'', `<body sid='abc`, `<body sid='abc' sid='def'>`, '<!-- x --><body sid="abc">']) {
    t.equal(startTag(Buffer.from(bad), DEFAULT_LIMITS), undefined, `nothing from ${JSON.stringify(bad)}`);
  }
});

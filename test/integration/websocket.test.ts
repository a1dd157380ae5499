import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { NS } from '../../src/xml/index.js';
import { withServer, withUsers } from '../helpers/server.js';
import { RawWsClient, stanzaErrorCondition, streamErrorCondition } from '../helpers/ws-client.js';

const server = await withUsers(t, { alice: 'alice-secret', bob: 'bob-secret' }, { ALLOW_INSECURE_PLAIN: 'true' });

async function expectStreamError(t: Test, c: RawWsClient, condition: string): Promise<void> {
  const err = await c.until((el) => el.local === 'error' && el.ns === NS.STREAM);
  t.equal(streamErrorCondition(err), condition, `stream error is ${condition}`);
  const close = await c.next();
  t.ok(close.is('close', NS.FRAMING), 'the stream error is followed by <close/>');
  c.send(`<close xmlns='${NS.FRAMING}'/>`);
  await c.waitClosed();
}

t.test('a handshake without the xmpp subprotocol is not upgraded', async (t) => {
  await t.rejects(RawWsClient.connect(server.wsUrl, 'chat'), /HTTP 400/);
  await t.rejects(RawWsClient.connect(server.wsUrl, []), /HTTP 400/);
});

t.test('the server selects the xmpp subprotocol', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl, ['foo', 'xmpp']);
  t.equal(c.ws.protocol, 'xmpp');
  c.close();
});

t.test('opening the stream gets <open/> with id, version and xml:lang, then the features', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  c.open();
  const open = await c.next();
  t.ok(open.is('open', NS.FRAMING));
  t.equal(open.attr('version'), '1.0');
  t.equal(open.attr('from'), 'localhost');
  t.equal(open.attr('xml:lang'), 'en');
  t.ok((open.attr('id') ?? '').length >= 16, 'stream id is long and random');
  t.ok((await c.next()).is('features', NS.STREAM), 'the features follow (their content: transport-contract.test.ts)');
  c.close();
});

t.test("the response header's to is the bare JID of the initial header's from, and absent without one (RFC 6120 §4.7.2)", async (t) => {
  const withFrom = await RawWsClient.connect(server.wsUrl);
  withFrom.send(`<open xmlns='${NS.FRAMING}' to='localhost' from='alice@localhost/desk' version='1.0'/>`);
  t.equal((await withFrom.next()).attr('to'), 'alice@localhost');
  withFrom.close();
  const without = await RawWsClient.connect(server.wsUrl);
  without.open();
  t.equal((await without.next()).attr('to'), undefined);
  without.close();
});

t.test("a client's stanza without xml:lang gets the stream's, one with its own keeps it (RFC 6120 §4.7.4)", async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  c.lang = 'fr';
  const jid = await c.login('alice', 'alice-secret', 'lang');
  c.send(`<message xmlns='jabber:client' to='${jid}' id='plain'><body>x</body></message>`);
  t.equal((await c.until((el) => el.attr('id') === 'plain')).attr('xml:lang'), 'fr', 'the stream language is added');
  c.send(`<message xmlns='jabber:client' to='${jid}' id='own' xml:lang='de'><body>x</body></message>`);
  t.equal((await c.until((el) => el.attr('id') === 'own')).attr('xml:lang'), 'de', 'its own is kept');
  c.close();
});

t.test('an xml:lang that is no language tag is not echoed; the default stands (RFC 6120 §4.7.4)', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  c.lang = 'not a tag!';
  c.open();
  t.equal((await c.next()).attr('xml:lang'), 'en');
  c.close();
});

t.test('PLAIN is not offered on an insecure connection by default', async (t) => {
  const strict = await withServer(t);
  const c = await RawWsClient.connect(strict.wsUrl);
  c.open();
  await c.next();
  const features = await c.next();
  const mechs = features.getChild('mechanisms', NS.SASL)!.getChildren('mechanism').map((m) => m.text());
  t.notOk(mechs.includes('PLAIN'));
  c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${Buffer.from('\0alice\0x').toString('base64')}</auth>`);
  const failure = await c.next();
  t.ok(failure.is('failure', NS.SASL));
  t.ok(failure.getChild('encryption-required'), 'PLAIN without TLS is encryption-required');
  c.close();
});

t.test('a forged from gets invalid-from', async (t) => {
  const a = await RawWsClient.connect(server.wsUrl);
  await a.login('alice', 'alice-secret');
  a.send(`<message xmlns='jabber:client' to='alice@localhost' from='bob@localhost/x'><body>x</body></message>`);
  await expectStreamError(t, a, 'invalid-from');
});

t.test('hostile XML gets its stream error and other sessions keep working', async (t) => {
  const bystander = await RawWsClient.connect(server.wsUrl);
  await bystander.login('bob', 'bob-secret', 'bystander');
  const cases: Array<[string, string | Buffer, string, boolean?]> = [
    ['billion laughs', `<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><message xmlns='jabber:client'>&lol2;</message>`, 'restricted-xml'],
    ['external entity', `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><message xmlns='jabber:client'>&e;</message>`, 'restricted-xml'],
    ['comment', `<message xmlns='jabber:client'><!-- hi --></message>`, 'restricted-xml'],
    ['processing instruction', `<message xmlns='jabber:client'><?pi x?></message>`, 'restricted-xml'],
    ['undeclared prefix', `<message xmlns='jabber:client'><x:y/></message>`, 'not-well-formed'],
    ['NUL character', `<message xmlns='jabber:client'><body>a\u0000b</body></message>`, 'not-well-formed'],
    ['invalid UTF-8', Buffer.concat([Buffer.from(`<message xmlns='jabber:client'><body>`), Buffer.from([0xc3, 0x28]), Buffer.from('</body></message>')]), 'not-well-formed'],
    ['deep nesting', `${'<a>'.repeat(5000)}${'</a>'.repeat(5000)}`, 'policy-violation'],
    ['binary frame', Buffer.from(`<message xmlns='jabber:client'/>`), 'unsupported-encoding', true],
    ['XML declaration of another encoding', `<?xml version='1.0' encoding='ISO-8859-1'?><message xmlns='jabber:client'/>`, 'unsupported-encoding'],
    ['unknown first-level element', `<foo xmlns='urn:example'/>`, 'unsupported-stanza-type'],
    ['old-style stream root', `<stream:stream xmlns:stream='${NS.STREAM}' to='localhost' version='1.0'/>`, 'invalid-namespace'],
  ];
  for (const [name, frame, condition, binary] of cases) {
    await t.test(name, async (t) => {
      const c = await RawWsClient.connect(server.wsUrl);
      await c.login('alice', 'alice-secret');
      c.send(frame, binary === true);
      const err = await c.until((el) => el.local === 'error' && el.ns === NS.STREAM);
      t.equal(streamErrorCondition(err), condition);
      c.send(`<close xmlns='${NS.FRAMING}'/>`);
      await c.waitClosed();
    });
  }
  bystander.send(`<iq xmlns='jabber:client' type='get' id='still'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const pong = await bystander.until((el) => el.attr('id') === 'still');
  t.equal(pong.attr('type'), 'result', 'the bystander session still works');
  bystander.close();
});

t.test("the client's stream error ends the stream with our <close/>, not a stream error of ours (RFC 6120 §4.9, RFC 7395 §3.6)", async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  await c.login('alice', 'alice-secret', 'erring');
  c.send(`<stream:error xmlns:stream='${NS.STREAM}'><undefined-condition xmlns='${NS.STREAMS}'/></stream:error>`);
  t.ok((await c.next()).is('close', NS.FRAMING), 'the answer is <close/>');
  await c.waitClosed();
  t.equal(server.app.sessions.get('localhost', 'alice', 'erring'), undefined, 'and the session is gone');
});

t.test('an unknown host: the <open/> header comes before the host-unknown error (RFC 6120 §4.9.1.2)', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  c.open('example.org');
  const open = await c.next();
  t.ok(open.is('open', NS.FRAMING), 'the header precedes the error');
  await expectStreamError(t, c, 'host-unknown');
});

t.test('a missing version gets unsupported-version', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  c.send(`<open xmlns='${NS.FRAMING}' to='localhost'/>`);
  await expectStreamError(t, c, 'unsupported-version');
});

t.test('an unknown IQ to the server gets service-unavailable', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  await c.login('alice', 'alice-secret');
  c.send(`<iq xmlns='jabber:client' type='get' id='u1' to='localhost'><query xmlns='urn:example:nothing'/></iq>`);
  const reply = await c.next();
  t.equal(reply.attr('type'), 'error');
  t.equal(stanzaErrorCondition(reply), 'service-unavailable');
  c.close();
});

t.test('disco#info of the server lists its features', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  await c.login('alice', 'alice-secret');
  c.send(`<iq xmlns='jabber:client' type='get' id='d1' to='localhost'><query xmlns='${NS.DISCO_INFO}'/></iq>`);
  const reply = await c.next();
  const q = reply.getChild('query', NS.DISCO_INFO)!;
  t.equal(q.getChild('identity')?.attr('category'), 'server');
  const features = q.getChildren('feature').map((f) => f.attr('var'));
  t.ok(features.includes(NS.PING));
  t.ok(features.includes(NS.DISCO_INFO));
  c.close();
});

t.test('binding a resource that is already bound gives the old session conflict', async (t) => {
  const first = await RawWsClient.connect(server.wsUrl);
  await first.login('alice', 'alice-secret', 'same');
  const second = await RawWsClient.connect(server.wsUrl);
  const jid = await second.login('alice', 'alice-secret', 'same');
  t.equal(jid, 'alice@localhost/same');
  const err = await first.until((el) => el.local === 'error' && el.ns === NS.STREAM);
  t.equal(streamErrorCondition(err), 'conflict');
  second.close();
});

t.test('the server pings idle clients and drops dead ones', async (t) => {
  const s = await withServer(t, { WS_PING_INTERVAL: '1' });
  const ws = new WebSocket(s.wsUrl, 'xmpp', { autoPong: false } as WebSocket.ClientOptions);
  let pings = 0;
  ws.on('ping', () => { pings++; });
  const closed = new Promise<void>((resolve) => ws.on('close', () => resolve()));
  await closed;
  t.ok(pings >= 1, 'the server pinged');
});

t.test('a peer that never answers our <close/> is dropped after WS_CLOSE_TIMEOUT', async (t) => {
  const s = await withServer(t, { WS_CLOSE_TIMEOUT: '1' });
  const c = await RawWsClient.connect(s.wsUrl);
  c.open('example.org');
  await c.until((el) => el.is('close', NS.FRAMING));
  // We do not answer; the server must end the connection by itself.
  const closed = await c.waitClosed(4000);
  t.ok(closed.code > 0, `the server ended the connection (code ${closed.code})`);
  t.equal(s.app.sessions.size, 0, 'and the session is gone');
});

t.test('the legacy session request of RFC 3921 is accepted for old clients', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  const features = await c.authenticate('alice', 'alice-secret');
  t.ok(features.getChild('session', NS.SESSION)?.getChild('optional'), 'advertised as optional');
  c.send(`<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='${NS.BIND}'/></iq>`);
  await c.next();
  c.send(`<iq xmlns='jabber:client' type='set' id='s'><session xmlns='${NS.SESSION}'/></iq>`);
  const reply = await c.until((el) => el.attr('id') === 's');
  t.equal(reply.attr('type'), 'result');
  c.close();
});

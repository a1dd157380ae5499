/**
 * Client state indication (XEP-0352) through the fake transport: the stream
 * feature, presence held and folded while inactive, flushing before anything
 * else goes out, and that stream management only counts what was written.
 */
import t from 'tap';
import { enableSm, FakeConn, saslAnswered, settled, withFakeUsers, type FakeClient } from '../helpers/fake-conn.js';
import { streamErrorCondition } from '../helpers/ws-client.js';
import { NS, parseXml, type XmlElement } from '../../src/xml/index.js';
import { eventually } from '../helpers/eventually.js';

const server = await withFakeUsers(t, ['alice', 'bob']);

const INACTIVE = `<inactive xmlns='${NS.CSI}'/>`;
const ACTIVE = `<active xmlns='${NS.CSI}'/>`;

/** What the server would route to bob's session: a presence from `from`. */
function presence(from: string, type?: string, status?: string): XmlElement {
  const attrs = `from='${from}' to='bob@localhost/b'${type ? ` type='${type}'` : ''}`;
  return parseXml(`<presence xmlns='jabber:client' ${attrs}>${status ? `<status>${status}</status>` : ''}</presence>`, undefined, NS.CLIENT);
}

const summary = (els: XmlElement[]): string[] =>
  els.map((el) => `${el.local}:${el.attr('from') ?? ''}:${el.attr('type') ?? ''}:${el.getChildText('status') ?? el.getChildText('body') ?? ''}`);

const stanzas = (c: FakeClient): XmlElement[] => c.conn.take().filter((el) => ['message', 'presence', 'iq'].includes(el.local));

t.test('csi is offered in the stream features once authenticated, not before', async (t) => {
  const conn = new FakeConn();
  const session = server.app.core.connect(conn);
  conn.attach(session);
  const send = (xml: string) => conn.events!.element(parseXml(xml, undefined, NS.CLIENT));
  session.streamOpened({ to: 'localhost', version: '1.0' });
  const before = conn.take().find((el) => el.local === 'features')!;
  t.equal(before.getChild('csi', NS.CSI), undefined, 'not before SASL');
  send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${Buffer.from('\0bob\0pw').toString('base64')}</auth>`);
  await eventually(() => saslAnswered(conn), { interval: 1, message: 'the SASL answer' });
  session.streamOpened({ to: 'localhost', version: '1.0' });
  const after = conn.take().find((el) => el.local === 'features')!;
  t.ok(after.getChild('csi', NS.CSI), 'offered with bind after authentication');
  session.close();
});

t.test('CSI before authentication ends the stream with not-authorized', async (t) => {
  const conn = new FakeConn();
  const session = server.app.core.connect(conn);
  conn.attach(session);
  session.streamOpened({ to: 'localhost', version: '1.0' });
  conn.take();
  conn.events!.element(parseXml(INACTIVE));
  const [error] = conn.take();
  t.equal(streamErrorCondition(error!), 'not-authorized');
  t.ok(session.destroyed);
});

t.test('while inactive, presence is held and folded per sender; a message flushes it first', async (t) => {
  const bob = await server.login('bob', 'b');
  bob.send(INACTIVE);
  bob.session.send(presence('alice@localhost/a1', undefined, 'one'));
  bob.session.send(presence('alice@localhost/a2', undefined, 'two'));
  bob.session.send(presence('alice@localhost/a1', 'unavailable'));
  bob.session.send(presence('alice@localhost/a1', undefined, 'three'));
  t.same(stanzas(bob), [], 'nothing written while inactive');
  bob.session.send(parseXml(`<message xmlns='jabber:client' from='alice@localhost/a1' to='bob@localhost/b' type='chat'><body>hi</body></message>`, undefined, NS.CLIENT));
  t.same(summary(stanzas(bob)), [
    'presence:alice@localhost/a2::two',
    'presence:alice@localhost/a1::three',
    'message:alice@localhost/a1:chat:hi',
  ], 'the latest presence of each sender, then the message');
  bob.session.send(presence('alice@localhost/a2', 'unavailable'));
  t.same(stanzas(bob), [], 'still inactive: held again');
  bob.send(ACTIVE);
  t.same(summary(stanzas(bob)), ['presence:alice@localhost/a2:unavailable:'], '<active/> flushes');
  bob.session.send(presence('alice@localhost/a1', undefined, 'live'));
  t.same(summary(stanzas(bob)), ['presence:alice@localhost/a1::live'], 'active again: nothing held');
  bob.session.close();
});

t.test('<active/> flushes before the next stanza from the client is answered (§5.1)', async (t) => {
  const bob = await server.login('bob', 'b');
  bob.send(INACTIVE);
  bob.session.send(presence('alice@localhost/a1'));
  bob.send(ACTIVE);
  bob.send(`<iq xmlns='jabber:client' to='localhost' type='get' id='ping'><ping xmlns='${NS.PING}'/></iq>`);
  await settled();
  t.same(stanzas(bob).map((el) => el.local), ['presence', 'iq']);
  bob.session.close();
});

t.test('subscription requests, presence errors and the echo of one\'s own presence are not held', async (t) => {
  const bob = await server.login('bob', 'b');
  bob.send(INACTIVE);
  bob.session.send(presence('alice@localhost', 'subscribe'));
  bob.session.send(presence('alice@localhost/a1', 'error'));
  bob.session.send(presence('bob@localhost/b', undefined, 'me'));
  t.same(summary(stanzas(bob)), ['presence:alice@localhost:subscribe:', 'presence:alice@localhost/a1:error:', 'presence:bob@localhost/b::me']);
  bob.session.close();
});

t.test('presence routed by the server is held too (directed presence from another account)', async (t) => {
  const bob = await server.login('bob', 'b');
  const alice = await server.login('alice', 'a');
  bob.send(INACTIVE);
  alice.send(`<presence xmlns='jabber:client' to='bob@localhost/b'><status>x</status></presence>`);
  await settled();
  t.same(stanzas(bob), [], 'held');
  alice.send(`<message xmlns='jabber:client' to='bob@localhost/b' type='chat'><body>m</body></message>`);
  await settled();
  t.same(summary(stanzas(bob)), ['presence:alice@localhost/a::x', 'message:alice@localhost/a:chat:m']);
  for (const c of [alice, bob]) c.session.close();
});

t.test('held presence is bounded: past 1000 senders the held ones go out', async (t) => {
  const bob = await server.login('bob', 'b');
  bob.send(INACTIVE);
  for (let i = 0; i < 1001; i++) bob.session.send(presence(`u${i}@localhost/r`));
  const out = stanzas(bob);
  t.equal(out.length, 1000, 'the first 1000 flushed, none dropped');
  t.equal(out[0]!.attr('from'), 'u0@localhost/r');
  bob.send(ACTIVE);
  t.same(stanzas(bob).map((el) => el.attr('from')), ['u1000@localhost/r']);
  bob.session.close();
});

t.test('stream management counts only what was written: held presence is not in its count, and a resume resends nothing', async (t) => {
  const bob = await server.login('bob', 'b');
  const smid = await enableSm(bob);
  bob.send(INACTIVE);
  bob.session.send(presence('alice@localhost/a1', undefined, 'one'));
  bob.session.send(presence('alice@localhost/a1', undefined, 'two'));
  bob.session.send(presence('alice@localhost/a2', undefined, 'three'));
  t.same(bob.conn.take(), [], 'no stanza and no <r/> while held');
  bob.send(ACTIVE);
  await settled(1);
  const out = bob.conn.take();
  t.same(summary(out.filter((el) => el.local === 'presence')), ['presence:alice@localhost/a1::two', 'presence:alice@localhost/a2::three']);
  t.equal(out.filter((el) => el.local === 'r').length, 1, 'SM asked for an ack once for the burst written');
  t.equal(out.at(-1)?.local, 'r', 'after the stanzas it covers');
  bob.send(`<r xmlns='${NS.SM}'/>`);
  bob.send(`<a xmlns='${NS.SM}' h='2'/>`);
  await settled();
  bob.conn.take();
  bob.conn.events!.transportLost('cut');

  const { conn, send } = await server.authenticate('bob');
  conn.take();
  send(`<resume xmlns='${NS.SM}' previd='${smid}' h='2'/>`);
  await settled();
  const resumed = conn.take();
  t.equal(resumed[0]?.local, 'resumed', 'resumed');
  t.same(resumed.slice(1).filter((el) => el.local !== 'r'), [], 'h=2 acknowledged everything: nothing to resend');
  bob.session.close();
});

t.test('a resumed session is active again and gets the presence held before the cut (§5.2)', async (t) => {
  const bob = await server.login('bob', 'b');
  const smid = await enableSm(bob);
  bob.send(INACTIVE);
  bob.session.send(presence('alice@localhost/a1', undefined, 'held'));
  bob.conn.events!.transportLost('cut');

  const { conn, send } = await server.authenticate('bob');
  conn.take();
  send(`<resume xmlns='${NS.SM}' previd='${smid}' h='0'/>`);
  await settled();
  const out = conn.take();
  t.equal(out[0]?.local, 'resumed');
  t.same(summary(out.filter((el) => el.local === 'presence')), ['presence:alice@localhost/a1::held']);
  bob.session.send(presence('alice@localhost/a1', undefined, 'after'));
  t.same(summary(conn.take().filter((el) => el.local === 'presence')), ['presence:alice@localhost/a1::after'], 'active after the resume');
  bob.session.close();
});

t.test('held presence is bounded in bytes too (MAX_HELD_BYTES): past it the held ones go out, in order, none dropped', async (t) => {
  const bob = await server.login('bob', 'b-bytes');
  bob.send(INACTIVE);
  const big = 'x'.repeat(60_000);
  // Five senders of 60 KB each: the fifth would pass 256 KiB held.
  for (let i = 1; i <= 5; i++) bob.session.send(presence(`alice@localhost/r${i}`, undefined, `${i}${big}`));
  const out = stanzas(bob).map((el) => el.attr('from'));
  t.same(out, ['alice@localhost/r1', 'alice@localhost/r2', 'alice@localhost/r3', 'alice@localhost/r4'], 'the four held went out before the fifth was held');
  bob.send(ACTIVE);
  t.same(stanzas(bob).map((el) => el.attr('from')), ['alice@localhost/r5'], 'the fifth at the next flush: each once');
  bob.session.close();
});

/**
 * What the archive keeps of a message (XEP-0313 §5.1.1), whichever way it
 * went out: the message as routed (the sender's stanza with its `from`), in
 * jabber:client, without the recipient's own <stanza-id/> (the archive gives
 * its id in the <result/>, XEP-0313 §4.2). The archive packs the text the
 * recipient's transport wrote when there is one (WebSocket, BOSH), and
 * serialises the message itself otherwise (offline storage): each path is
 * checked against the stored text, byte for byte, with text beyond ASCII
 * and escapes in it.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { loggedInWs, wsIq } from '../helpers/ws-client.js';
import { RawBoshClient } from '../helpers/bosh-client.js';
import { eventually } from '../helpers/eventually.js';
import { NS, parseXml, serialize, type XmlElement } from '../../src/xml/index.js';
import type { Storage } from '../../src/storage/index.js';

const SID = 'urn:xmpp:sid:0';
const ENV = { ALLOW_INSECURE_PLAIN: 'true' };
// Beyond ASCII (two, three and four UTF-8 bytes), escapes in text and in an attribute, and a
// <stanza-id/> of another entity (a MUC's), which the archive keeps.
const BODY = 'héllo ☃ 😀 &amp; &lt;tag&gt; "quoted"';
const message = (id: string, to: string): string =>
  `<message xmlns='jabber:client' to='${to}' type='chat' id='${id}'><body>${BODY}</body>`
  + `<thread parent='a&amp;b'>t1</thread><stanza-id xmlns='${SID}' by='room@conference.example.org' id='muc-1'/></message>`;

/** The stored text of the message `id` in `user`'s archive, once committed. */
function stored(storage: Storage, user: string, id: string): Promise<string> {
  return eventually(async () => {
    const page = await storage.archive.query('localhost', user, { limit: 100, direction: 'forward' });
    if (page === 'item-not-found') return undefined;
    return page.messages.find((m) => parseXml(m.stanza).attr('id') === id)?.stanza;
  }, { message: `message ${id} in ${user}'s archive` });
}

/** The message as delivered, without the server's <stanza-id/> for `by`: what the archive should hold. */
function withoutOwnId(got: XmlElement, by: string): string {
  const copy = got.clone();
  copy.children = copy.children.filter((c) => typeof c === 'string' || !(c.is('stanza-id', SID) && c.attr('by') === by));
  return serialize(copy);
}

t.test('a message delivered over WebSocket: the archive keeps the delivered text, less the recipient\'s stanza-id', async (t) => {
  const server = await withUsers(t, ['alice', 'bob'], ENV);
  const alice = await loggedInWs(t, server.wsUrl, 'alice', 'a');
  const bob = await loggedInWs(t, server.wsUrl, 'bob', 'b');
  alice.send(message('w1', 'bob@localhost/b'));
  const got = await bob.until((el) => el.name === 'message' && el.attr('id') === 'w1');
  t.equal(got.getChildText('body'), BODY.replace('&amp;', '&').replace('&lt;', '<').replace('&gt;', '>'), 'the body arrives as sent');
  const own = got.getChildren('stanza-id', SID).find((s) => s.attr('by') === 'bob@localhost');
  t.ok(own, 'bob got his archive id');
  const bobs = await stored(server.storage, 'bob', 'w1');
  t.equal(bobs, withoutOwnId(got, 'bob@localhost'), "bob's archive holds the message as delivered, without his stanza-id");
  t.notMatch(bobs, /by="bob@localhost"/, 'no trace of it');
  t.match(bobs, /by="room@conference\.example\.org"/, "another entity's stanza-id is kept");
  t.equal(parseXml(bobs).attr('from'), 'alice@localhost/a', 'with the from the server stamped');
  t.equal(await stored(server.storage, 'alice', 'w1'), bobs, "alice's archive holds the same");
});

t.test('a message delivered over BOSH: the same', async (t) => {
  const server = await withUsers(t, ['alice', 'bob'], ENV);
  const alice = await loggedInWs(t, server.wsUrl, 'alice', 'a');
  const bob = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => bob.terminate().catch(() => undefined));
  await bob.login('bob', 'bob-pw', 'b');
  alice.send(message('b1', 'bob@localhost/b'));
  const got = await bob.until((el) => el.name === 'message' && el.attr('id') === 'b1');
  t.ok(got.getChildren('stanza-id', SID).some((s) => s.attr('by') === 'bob@localhost'), 'bob got his archive id');
  // Read from a BOSH <body/>: the message's xmlns is on it, as serialised inside the body.
  const delivered = got.clone().setAttr('xmlns', NS.CLIENT);
  const bobs = await stored(server.storage, 'bob', 'b1');
  t.same(parseXml(bobs), parseXml(withoutOwnId(delivered, 'bob@localhost')), "bob's archive holds the message as delivered, without his stanza-id");
  t.notMatch(bobs, /by="bob@localhost"/, 'no trace of it');
  t.equal(await stored(server.storage, 'alice', 'b1'), bobs, "alice's archive holds the same");
});

t.test('a message stored offline (no transport writes it in its route): serialised by the archive, the same form', async (t) => {
  const server = await withUsers(t, ['alice', 'bob'], ENV);
  const alice = await loggedInWs(t, server.wsUrl, 'alice', 'a');
  alice.send(message('o1', 'bob@localhost'));
  const bobs = await stored(server.storage, 'bob', 'o1');
  t.notMatch(bobs, /by="bob@localhost"/, "no stanza-id of bob's in his archive");
  const bob = await loggedInWs(t, server.wsUrl, 'bob', 'b');
  // Not availableWs: its wait for the own presence would read past an offline message that came first.
  bob.send("<presence xmlns='jabber:client'/>");
  const got = await bob.until((el) => el.name === 'message' && el.attr('id') === 'o1');
  // Delivered later with a <delay/> (XEP-0203) the archive's copy does not have.
  const delivered = got.clone();
  delivered.children = delivered.children.filter((c) => typeof c === 'string' || !c.is('delay', NS.DELAY));
  t.equal(bobs, withoutOwnId(delivered, 'bob@localhost'), 'the archived text is the message as routed');
  t.equal(await stored(server.storage, 'alice', 'o1'), bobs, "alice's archive holds the same");
});

t.test('messages sent faster than they are delivered one by one keep their own text each', async (t) => {
  const server = await withUsers(t, ['alice', 'bob', 'carol'], ENV);
  const alice = await loggedInWs(t, server.wsUrl, 'alice', 'a');
  const bob = await loggedInWs(t, server.wsUrl, 'bob', 'b');
  // To bob (delivered at once), to carol (offline), to bob again: the second is archived without
  // a transport writing it, between two that are.
  alice.send(message('m1', 'bob@localhost/b'));
  alice.send(message('m2', 'carol@localhost'));
  alice.send(message('m3', 'bob@localhost/b'));
  await bob.until((el) => el.attr('id') === 'm3');
  const texts = await Promise.all(['m1', 'm2', 'm3'].map((id) => stored(server.storage, 'alice', id)));
  t.same(texts.map((s) => parseXml(s).attr('id')), ['m1', 'm2', 'm3'], 'each entry is its own message');
  t.same(texts.map((s) => parseXml(s).attr('to')), ['bob@localhost/b', 'carol@localhost', 'bob@localhost/b'], 'to its own recipient');
  for (const s of texts) t.notMatch(s, /by="(bob|carol)@localhost"/, 'none carries a recipient stanza-id');
  t.equal(await stored(server.storage, 'carol', 'm2'), texts[1], "carol's copy is the same text");
});

t.test("a recipient whose archive keeps nothing: no stanza-id to leave out, the sender's archive keeps the delivered text whole", async (t) => {
  const server = await withUsers(t, ['alice', 'bob'], ENV);
  const alice = await loggedInWs(t, server.wsUrl, 'alice', 'a');
  const bob = await loggedInWs(t, server.wsUrl, 'bob', 'b');
  t.equal((await wsIq(bob, 'p1', 'set', "<prefs xmlns='urn:xmpp:mam:2' default='never'/>")).attr('type'), 'result', "bob's prefs: never");
  alice.send(message('s1', 'bob@localhost/b'));
  const got = await bob.until((el) => el.name === 'message' && el.attr('id') === 's1');
  t.notOk(got.getChildren('stanza-id', SID).some((s) => s.attr('by') === 'bob@localhost'), 'bob gets no archive id');
  t.equal(await stored(server.storage, 'alice', 's1'), serialize(got), "alice's archive holds the message exactly as delivered");
  const page = await server.storage.archive.query('localhost', 'bob', { limit: 100, direction: 'forward' });
  t.same(page === 'item-not-found' ? 'item-not-found' : page.messages.length, 0, "bob's archive holds nothing");
});

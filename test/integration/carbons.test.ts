/**
 * Message carbons (XEP-0280) through the fake transport: enabling, received
 * and sent copies, the copy's shape, <private/> and <no-copy/>, the types
 * never copied, and copies that die unacked with a session.
 */
import t, { type Test } from 'tap';
import { settled, withFakeUsers, type FakeClient } from '../helpers/fake-conn.js';
import { stanzaErrorCondition } from '../helpers/ws-client.js';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { waitUntil } from '../helpers/eventually.js';

const server = await withFakeUsers(t, ['alice', 'bob']);

/** Logs in, sends presence with `priority`, optionally enables carbons; drains what that produced. */
async function tab(user: string, resource: string, opts: { priority?: number; carbons?: boolean } = {}): Promise<FakeClient> {
  const c = await server.login(user, resource);
  c.send(`<presence xmlns='jabber:client'><priority>${opts.priority ?? 0}</priority></presence>`);
  if (opts.carbons ?? true) c.send(`<iq xmlns='jabber:client' type='set' id='on'><enable xmlns='${NS.CARBONS}'/></iq>`);
  await settled();
  return c;
}

function drain(...clients: FakeClient[]): void {
  for (const c of clients) c.conn.take();
}

/** The forwarded message inside a carbon of `kind`, after checking the wrapper's shape. */
function forwarded(t: Test, carbon: XmlElement | undefined, kind: 'sent' | 'received', to: string): XmlElement | undefined {
  if (!carbon) {
    t.fail(`expected a ${kind} carbon for ${to}`);
    return undefined;
  }
  t.equal(carbon.attr('from'), to.split('/')[0], 'from the account bare JID (§7, §8)');
  t.equal(carbon.attr('to'), to, 'to the receiving resource');
  const wrapper = carbon.getChild(kind, NS.CARBONS);
  t.ok(wrapper, `a <${kind}/> in urn:xmpp:carbons:2`);
  const inner = wrapper?.getChild('forwarded', NS.FORWARD)?.getChild('message', NS.CLIENT);
  t.ok(inner, 'a forwarded jabber:client message (XEP-0297)');
  return inner;
}

const msg = (to: string, body: string, extra = '', type = 'chat'): string =>
  `<message xmlns='jabber:client' to='${to}' type='${type}' id='${body}'><body>${body}</body>${extra}</message>`;

t.test('enable and disable answer with an empty result, repeatedly; carbons:2 is in disco#info', async (t) => {
  const a = await server.login('alice', 'x');
  for (const what of ['enable', 'enable', 'disable', 'disable']) {
    a.send(`<iq xmlns='jabber:client' type='set' id='${what}'><${what} xmlns='${NS.CARBONS}'/></iq>`);
  }
  a.send(`<iq xmlns='jabber:client' type='set' id='bad'><bogus xmlns='${NS.CARBONS}'/></iq>`);
  a.send(`<iq xmlns='jabber:client' to='localhost' type='get' id='d'><query xmlns='${NS.DISCO_INFO}'/></iq>`);
  await settled();
  const iqs = a.conn.takeStanzas('iq');
  const byId = (id: string) => iqs.filter((iq) => iq.attr('id') === id);
  t.same([...byId('enable'), ...byId('disable')].map((iq) => [iq.attr('type'), iq.firstElement]), Array(4).fill(['result', undefined]), '§10.1: no error for repeats');
  t.equal(stanzaErrorCondition(byId('bad')[0]!), 'bad-request');
  const features = byId('d')[0]!.getChild('query', NS.DISCO_INFO)!.getChildren('feature').map((f) => f.attr('var'));
  t.ok(features.includes(NS.CARBONS));
  a.session.close();
});

t.test('a chat message to a bare JID is copied as received to the enabled resources that did not get it', async (t) => {
  const top = await tab('bob', 'top', { priority: 5 });
  const low = await tab('bob', 'low', { priority: 1 });
  const plain = await tab('bob', 'plain', { priority: 1, carbons: false });
  const alice = await tab('alice', 'a', { carbons: false });
  drain(top, low, plain, alice);
  alice.send(msg('bob@localhost', 'hi'));
  await settled();
  const [original] = top.conn.takeStanzas('message');
  t.equal(original?.getChild('received', NS.CARBONS), undefined, 'the top resource gets the message itself');
  t.equal(original?.getChildText('body'), 'hi');
  const carbons = low.conn.takeStanzas('message');
  t.equal(carbons.length, 1);
  const inner = forwarded(t, carbons[0], 'received', 'bob@localhost/low');
  t.equal(inner?.attr('from'), 'alice@localhost/a');
  t.equal(inner?.getChildText('body'), 'hi');
  t.equal(carbons[0]!.attr('type'), 'chat', 'same type as the original');
  t.same(plain.conn.takeStanzas('message'), [], 'not enabled, no copy');
  for (const c of [top, low, plain, alice]) c.session.close();
});

t.test('sent carbons go to the other enabled resources of the sender, whether or not the sender enabled them', async (t) => {
  const a1 = await tab('alice', 'a1', { carbons: false });
  const a2 = await tab('alice', 'a2');
  const a3 = await tab('alice', 'a3', { carbons: false });
  const bob = await tab('bob', 'b', { carbons: false });
  drain(a1, a2, a3, bob);
  a1.send(msg('bob@localhost', 'out'));
  await settled();
  t.equal(bob.conn.takeStanzas('message').length, 1);
  const inner = forwarded(t, a2.conn.takeStanzas('message')[0], 'sent', 'alice@localhost/a2');
  t.equal(inner?.attr('from'), 'alice@localhost/a1');
  t.equal(inner?.attr('to'), 'bob@localhost');
  t.same(a1.conn.takeStanzas('message'), [], 'never to the sending resource');
  t.same(a3.conn.takeStanzas('message'), []);
  for (const c of [a1, a2, a3, bob]) c.session.close();
});

t.test('a message to a full JID is copied to the other enabled resources of the recipient', async (t) => {
  const b1 = await tab('bob', 'b1');
  const b2 = await tab('bob', 'b2', { priority: 10 });
  const alice = await tab('alice', 'a');
  drain(b1, b2, alice);
  alice.send(msg('bob@localhost/b1', 'direct'));
  await settled();
  t.equal(b1.conn.takeStanzas('message')[0]?.getChildText('body'), 'direct');
  forwarded(t, b2.conn.takeStanzas('message')[0], 'received', 'bob@localhost/b2');
  t.same(alice.conn.takeStanzas('message'), [], 'the sender has no other resource');
  for (const c of [b1, b2, alice]) c.session.close();
});

t.test('<private/> with <no-copy/>, or <no-copy/> alone, is not copied', async (t) => {
  const a1 = await tab('alice', 'a1');
  const a2 = await tab('alice', 'a2');
  const b1 = await tab('bob', 'b1', { priority: 5 });
  const b2 = await tab('bob', 'b2');
  drain(a1, a2, b1, b2);
  a1.send(msg('bob@localhost', 'p1', `<private xmlns='${NS.CARBONS}'/><no-copy xmlns='${NS.HINTS}'/>`));
  a1.send(msg('bob@localhost', 'p2', `<no-copy xmlns='${NS.HINTS}'/>`));
  await settled();
  t.equal(b1.conn.takeStanzas('message').length, 2, 'delivered normally');
  t.same(a2.conn.takeStanzas('message'), [], 'no sent copy');
  t.same(b2.conn.takeStanzas('message'), [], 'no received copy');
  for (const c of [a1, a2, b1, b2]) c.session.close();
});

t.test('errors, groupchat and headline are never copied; normal only with a body or an IM payload', async (t) => {
  const a1 = await tab('alice', 'a1');
  const a2 = await tab('alice', 'a2');
  const b1 = await tab('bob', 'b1', { priority: 5 });
  const b2 = await tab('bob', 'b2');
  drain(a1, a2, b1, b2);
  a1.send(msg('bob@localhost', 'err', '', 'error'));
  a1.send(msg('bob@localhost', 'head', '', 'headline'));
  a1.send(`<message xmlns='jabber:client' to='bob@localhost/b1' type='groupchat' id='gc'><body>gc</body></message>`);
  a1.send(`<message xmlns='jabber:client' to='bob@localhost' id='empty'><subject>no body</subject></message>`);
  await settled();
  t.same(a2.conn.takeStanzas('message'), [], 'no sent copies');
  t.same(b2.conn.takeStanzas('message').filter((m) => m.attr('type') !== 'headline'), [], 'no received copies (b2 gets the headline itself)');
  drain(a1, b1);
  a1.send(`<message xmlns='jabber:client' to='bob@localhost' id='n'><body>normal</body></message>`);
  a1.send(`<message xmlns='jabber:client' to='bob@localhost' id='r'><received xmlns='${NS.RECEIPTS}' id='n0'/></message>`);
  await settled();
  t.same(a2.conn.takeStanzas('message').map((m) => m.getChild('sent', NS.CARBONS) !== undefined), [true, true], 'normal with a body, and a receipt');
  t.equal(b2.conn.takeStanzas('message').length, 2);
  for (const c of [a1, a2, b1, b2]) c.session.close();
});

t.test('a message to another resource of one\'s own account gives the third resource one received copy', async (t) => {
  const a1 = await tab('alice', 'a1');
  const a2 = await tab('alice', 'a2');
  const a3 = await tab('alice', 'a3');
  drain(a1, a2, a3);
  a1.send(msg('alice@localhost/a2', 'self'));
  await settled();
  t.equal(a2.conn.takeStanzas('message')[0]?.getChildText('body'), 'self');
  const copies = a3.conn.takeStanzas('message');
  t.equal(copies.length, 1);
  forwarded(t, copies[0], 'received', 'alice@localhost/a3');
  t.same(a1.conn.takeStanzas('message'), []);
  for (const c of [a1, a2, a3]) c.session.close();
});

t.test('after disable a resource gets no more copies', async (t) => {
  const b1 = await tab('bob', 'b1', { priority: 5 });
  const b2 = await tab('bob', 'b2');
  const alice = await tab('alice', 'a');
  b2.send(`<iq xmlns='jabber:client' type='set' id='off'><disable xmlns='${NS.CARBONS}'/></iq>`);
  await settled();
  drain(b1, b2, alice);
  alice.send(msg('bob@localhost', 'x'));
  await settled();
  t.equal(b1.conn.takeStanzas('message').length, 1);
  t.same(b2.conn.takeStanzas('message'), []);
  for (const c of [b1, b2, alice]) c.session.close();
});

t.test('a received copy for an account with no available resource goes to a connected enabled resource, and the message is stored offline', async (t) => {
  const quiet = await server.login('bob', 'quiet');
  quiet.send(`<iq xmlns='jabber:client' type='set' id='on'><enable xmlns='${NS.CARBONS}'/></iq>`);
  const alice = await tab('alice', 'a');
  await settled();
  drain(quiet, alice);
  alice.send(msg('bob@localhost', 'stored'));
  await settled();
  forwarded(t, quiet.conn.takeStanzas('message')[0], 'received', 'bob@localhost/quiet');
  t.equal(await server.storage.offline.count('localhost', 'bob'), 1);
  const stored = await server.storage.offline.list('localhost', 'bob');
  await server.storage.offline.remove('localhost', 'bob', stored.map((m) => m.id));
  for (const c of [quiet, alice]) c.session.close();
});

t.test('a carbon that dies unacked with its session is dropped: not stored offline, not delivered again, no error', async (t) => {
  const sm = await withFakeUsers(t, ['alice', 'bob'], { SM_RESUME_TIMEOUT: '1' });
  const top = await sm.login('bob', 'top');
  top.send(`<presence xmlns='jabber:client'><priority>5</priority></presence>`);
  const tab2 = await sm.login('bob', 'other');
  tab2.send(`<enable xmlns='${NS.SM}' resume='true'/>`);
  tab2.send(`<presence xmlns='jabber:client'/>`);
  tab2.send(`<iq xmlns='jabber:client' type='set' id='on'><enable xmlns='${NS.CARBONS}'/></iq>`);
  const alice = await sm.login('alice', 'a');
  await settled();
  drain(top, tab2, alice);
  tab2.conn.events!.transportLost('cut');
  alice.send(msg('bob@localhost', 'once'));
  await settled();
  t.equal(top.conn.takeStanzas('message').length, 1, 'the top resource got the message');
  await waitUntil(() => tab2.session.destroyed, { timeout: 3000 });
  t.ok(tab2.session.destroyed, 'the resume timeout ended the session');
  await settled();
  t.same(top.conn.takeStanzas('message'), [], 'the copy was not handed to the other resource');
  t.equal(await sm.storage.offline.count('localhost', 'bob'), 0, 'nor stored offline');
  t.same(alice.conn.takeStanzas('message'), [], 'nor bounced to the sender');
});

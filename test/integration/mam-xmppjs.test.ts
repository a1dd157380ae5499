/**
 * XEP-0313 with @xmpp/client on a real port: paging forward and backward
 * across three pages, the filters (with, start/end, ids), flip-page,
 * metadata, prefs, and the stanza ids a recipient and a carbons-enabled
 * sender see (XEP-0359).
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { login, nextReceived, xml, type XmlEl, type XmppJsClient } from '../helpers/xmppjs.js';
import { eventually } from '../helpers/eventually.js';

const MAM = 'urn:xmpp:mam:2';
const RSM = 'http://jabber.org/protocol/rsm';
const SID = 'urn:xmpp:sid:0';
const FORWARD = 'urn:xmpp:forward:0';

interface Page { ids: string[]; bodies: string[]; stamps: string[]; fin: XmlEl }
let queries = 0;

/** One archive query: the form's fields, RSM (max, after, before: '' for the last page), flip-page. */
async function query(c: XmppJsClient, opts: { fields?: Record<string, string | string[]>; max?: number; after?: string; before?: string; flip?: boolean } = {}): Promise<Page> {
  const queryid = `q${++queries}`;
  const fields = Object.entries({ FORM_TYPE: MAM, ...opts.fields }).map(([name, v]) =>
    xml('field', { var: name }, ...[v].flat().map((value) => xml('value', {}, value))));
  const present = <T>(...items: Array<T | undefined>): T[] => items.filter((i): i is T => i !== undefined);
  const set = xml('set', { xmlns: RSM }, ...present(
    opts.max !== undefined ? xml('max', {}, String(opts.max)) : undefined,
    opts.after !== undefined ? xml('after', {}, opts.after) : undefined,
    opts.before !== undefined ? xml('before', {}, opts.before) : undefined));
  const from = c.received.length;
  const reply = await c.xmpp.iqCaller.request(xml('iq', { type: 'set' },
    xml('query', { xmlns: MAM, queryid }, xml('x', { xmlns: 'jabber:x:data', type: 'submit' }, ...fields), set, ...present(opts.flip ? xml('flip-page') : undefined))));
  const results = c.received.slice(from).map((el) => el.getChild('result', MAM)).filter((r): r is XmlEl => r?.attrs.queryid === queryid);
  const forwarded = results.map((r) => r.getChild('forwarded', FORWARD)!);
  return {
    ids: results.map((r) => r.attrs.id!),
    bodies: forwarded.map((f) => f.getChild('message')!.getChildText('body')!),
    stamps: forwarded.map((f) => f.getChild('delay', 'urn:xmpp:delay')!.attrs.stamp!),
    fin: reply.getChild('fin', MAM)!,
  };
}

const rsm = (p: Page, name: string) => p.fin.getChild('set', RSM)?.getChildText(name) ?? undefined;
const range = (from: number, to: number, prefix = 'to bob ') => Array.from({ length: to - from }, (_, i) => `${prefix}${from + i}`);

const server = await withUsers(t, ['alice', 'bob', 'carol']);
const alice = await login(t, server, { username: 'alice', password: 'alice-pw', resource: 'x' });
const bob = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'b' });
const carol = await login(t, server, { username: 'carol', password: 'carol-pw', resource: 'c' });
await bob.xmpp.send(xml('presence'));
await alice.xmpp.send(xml('presence'));
for (let i = 0; i < 25; i++) await alice.xmpp.send(xml('message', { to: 'bob@localhost', type: 'chat', id: `b${i}` }, xml('body', {}, `to bob ${i}`)));
for (let i = 0; i < 5; i++) await carol.xmpp.send(xml('message', { to: 'alice@localhost', type: 'chat', id: `c${i}` }, xml('body', {}, `to alice ${i}`)));
// A chat state alone is not archived.
await alice.xmpp.send(xml('message', { to: 'bob@localhost', type: 'chat' }, xml('active', { xmlns: 'http://jabber.org/protocol/chatstates' })));
await eventually(() => bob.inbox.items.length >= 26 && alice.inbox.items.length >= 5 ? true : undefined, { message: 'the messages to arrive' });

t.test('paging forward across three pages, with a count and complete only on the last', async (t) => {
  const p1 = await query(alice, { fields: { with: 'bob@localhost' }, max: 10 });
  const p2 = await query(alice, { fields: { with: 'bob@localhost' }, max: 10, after: rsm(p1, 'last') });
  const p3 = await query(alice, { fields: { with: 'bob@localhost' }, max: 10, after: rsm(p2, 'last') });
  t.same([p1.bodies, p2.bodies, p3.bodies], [range(0, 10), range(10, 20), range(20, 25)]);
  t.same([p1, p2, p3].map((p) => p.fin.attrs.complete), [undefined, undefined, 'true']);
  t.same([p1, p2, p3].map((p) => rsm(p, 'count')), ['25', '25', '25']);
  t.same([rsm(p1, 'first'), rsm(p1, 'last')], [p1.ids[0], p1.ids[9]]);
});

t.test('paging backward from the last page (empty <before/>) across three pages', async (t) => {
  const p1 = await query(alice, { fields: { with: 'bob@localhost' }, max: 10, before: '' });
  const p2 = await query(alice, { fields: { with: 'bob@localhost' }, max: 10, before: rsm(p1, 'first') });
  const p3 = await query(alice, { fields: { with: 'bob@localhost' }, max: 10, before: rsm(p2, 'first') });
  t.same([p1.bodies, p2.bodies, p3.bodies], [range(15, 25), range(5, 15), range(0, 5)], 'each page oldest first');
  t.same([p1, p2, p3].map((p) => p.fin.attrs.complete), [undefined, undefined, 'true']);
});

t.test('flip-page sends the same page newest first', async (t) => {
  const plain = await query(alice, { fields: { with: 'bob@localhost' }, max: 10, before: '' });
  const flipped = await query(alice, { fields: { with: 'bob@localhost' }, max: 10, before: '', flip: true });
  t.same(flipped.ids, [...plain.ids].reverse());
});

t.test('filters: with, ids, start and end', async (t) => {
  const all = await query(alice, { max: 100 });
  t.equal(all.ids.length, 30, "25 to bob and 5 from carol, not the chat state");
  t.same((await query(alice, { fields: { with: 'carol@localhost/c' } })).bodies, range(0, 5, 'to alice '), 'a full JID matches its account');
  t.same((await query(alice, { fields: { ids: [all.ids[3]!, all.ids[7]!] } })).ids, [all.ids[3], all.ids[7]]);
  const [start, end] = [all.stamps[10]!, all.stamps[14]!];
  const window = await query(alice, { fields: { start, end }, max: 100 });
  t.ok(window.ids.length >= 5, 'at least the five stamped in the window');
  t.ok(all.ids.slice(10, 15).every((id) => window.ids.includes(id)));
  t.ok(window.stamps.every((s) => s >= start && s <= end), 'none outside it');
});

t.test("the recipient's stanza-id is its archive id; metadata gives the first and last", async (t) => {
  const got = bob.inbox.items.filter((m) => m.getChild('body'));
  const sids = got.map((m) => m.getChild('stanza-id', SID));
  t.ok(sids.every((s) => s?.attrs.by === 'bob@localhost'), 'every body message carries a stanza-id by bob');
  const archived = await query(bob, { fields: { with: 'alice@localhost' }, max: 100 });
  t.same(archived.ids, sids.map((s) => s!.attrs.id));
  const meta = await bob.xmpp.iqCaller.request(xml('iq', { type: 'get' }, xml('metadata', { xmlns: MAM })));
  const md = meta.getChild('metadata', MAM)!;
  t.same([md.getChild('start')?.attrs.id, md.getChild('end')?.attrs.id], [archived.ids[0], archived.ids[24]]);
});

t.test('prefs: default never with carol always; each side decides for its own archive', async (t) => {
  const initial = await alice.xmpp.iqCaller.request(xml('iq', { type: 'get' }, xml('prefs', { xmlns: MAM })));
  t.equal(initial.getChild('prefs', MAM)?.attrs.default, 'always');
  const set = await alice.xmpp.iqCaller.request(xml('iq', { type: 'set' },
    xml('prefs', { xmlns: MAM, default: 'never' }, xml('always', {}, xml('jid', {}, 'carol@localhost')), xml('never'))));
  t.same(set.getChild('prefs', MAM)?.getChild('always')?.getChildren('jid').map((j) => j.text()), ['carol@localhost']);
  await bob.xmpp.send(xml('message', { to: 'alice@localhost', type: 'chat' }, xml('body', {}, 'not kept by alice')));
  await carol.xmpp.send(xml('message', { to: 'alice@localhost', type: 'chat' }, xml('body', {}, 'kept by alice')));
  const last = await nextReceived(alice, (el) => el.getChildText('body') === 'kept by alice', 'carol\'s message');
  t.equal(last.getChild('stanza-id', SID)?.attrs.by, 'alice@localhost');
  const fromBob = alice.inbox.items.find((m) => m.getChildText('body') === 'not kept by alice');
  t.equal(fromBob?.getChild('stanza-id', SID), undefined, 'no stanza-id: not in her archive');
  const bodies = (await query(alice, { max: 100 })).bodies;
  t.ok(bodies.includes('kept by alice') && !bodies.includes('not kept by alice'));
  t.ok((await query(bob, { max: 100 })).bodies.includes('not kept by alice'), "in bob's archive");
});

t.test("a sent carbon carries the sender's own stanza-id, which is in the sender's archive", async (t) => {
  const other = await login(t, server, { username: 'carol', password: 'carol-pw', resource: 'other' });
  await other.xmpp.iqCaller.request(xml('iq', { type: 'set' }, xml('enable', { xmlns: 'urn:xmpp:carbons:2' })));
  const carbon = nextReceived(other, (el) => el.getChild('sent', 'urn:xmpp:carbons:2') !== undefined, 'the sent carbon');
  await carol.xmpp.send(xml('message', { to: 'bob@localhost', type: 'chat' }, xml('body', {}, 'carbon me')));
  const inner = (await carbon).getChild('sent', 'urn:xmpp:carbons:2')!.getChild('forwarded', FORWARD)!.getChild('message')!;
  const sids = inner.getChildren('stanza-id', SID);
  t.same(sids.map((s) => s.attrs.by), ['carol@localhost'], "only carol's, not bob's");
  const archived = await query(other, { fields: { with: 'bob@localhost' } });
  t.same(archived.ids, [sids[0]!.attrs.id]);
});

/**
 * XEP-0313 / XEP-0359 on the raw wire: the errors a hostile or broken client
 * gets (malformed forms, bad RSM, someone else's archive), forged stanza ids
 * stripped, what is and is not archived, and the archive commit coming
 * before the XEP-0198 <a/> that acknowledges the message.
 */
import t, { type Test } from 'tap';
import { withUsers } from '../helpers/server.js';
import { RawWsClient, stanzaErrorCondition } from '../helpers/ws-client.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import type { ArchiveEntry } from '../../src/storage/index.js';
import { NS, type XmlElement } from '../../src/xml/index.js';

const MAM = 'urn:xmpp:mam:2';
const SID = 'urn:xmpp:sid:0';
const ENV = { ALLOW_INSECURE_PLAIN: 'true' };

async function connect(t: Test, server: { wsUrl: string }, user: string, resource: string): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.close());
  await c.login(user, `${user}-pw`, resource);
  return c;
}

const isIq = (id: string) => (el: XmlElement): boolean => el.name === 'iq' && el.attr('id') === id;
const form = (fields: string): string =>
  `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>${MAM}</value></field>${fields}</x>`;
const field = (name: string, ...values: string[]): string => `<field var='${name}'>${values.map((v) => `<value>${v}</value>`).join('')}</field>`;
const query = (id: string, inner = '', to = ''): string => `<iq xmlns='jabber:client' type='set' id='${id}'${to ? ` to='${to}'` : ''}><query xmlns='${MAM}' queryid='${id}'>${inner}</query></iq>`;

/** Sends a query and collects its results until the IQ answer. */
async function ask(c: RawWsClient, id: string, inner = '', to = ''): Promise<{ iq: XmlElement; results: XmlElement[] }> {
  c.send(query(id, inner, to));
  const results: XmlElement[] = [];
  const iq = await c.until((el) => {
    const r = el.getChild('result', MAM);
    if (r?.attr('queryid') === id) results.push(r);
    return isIq(id)(el);
  });
  return { iq, results };
}

t.test('archiving, stanza ids and forged ones', async (t) => {
  const server = await withUsers(t, ['alice', 'bob'], ENV);
  const alice = await connect(t, server, 'alice', 'a');
  const bob = await connect(t, server, 'bob', 'b');
  bob.send("<presence xmlns='jabber:client'/>");
  await bob.until((el) => el.name === 'presence');

  t.test('a forged stanza-id by one of our accounts is stripped; a foreign one is kept; the server adds its own', async (t) => {
    alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='m1'><body>hi</body><stanza-id xmlns='${SID}' by='bob@localhost' id='forged'/><stanza-id xmlns='${SID}' by='LOCALHOST' id='forged2'/><stanza-id xmlns='${SID}' by='bob@localhost.' id='forged3'/><stanza-id xmlns='${SID}' by='bob@ＬＯＣＡＬＨＯＳＴ' id='forged4'/><stanza-id xmlns='${SID}' by='bob@localhost/phone' id='forged5'/><stanza-id xmlns='${SID}' by='room@conference.example.org' id='muc'/></message>`);
    const got = await bob.until((el) => el.name === 'message' && el.attr('id') === 'm1');
    const sids = got.getChildren('stanza-id', SID);
    t.same(sids.map((s) => s.attr('by')).sort(), ['bob@localhost', 'room@conference.example.org']);
    const ours = sids.find((s) => s.attr('by') === 'bob@localhost')!;
    t.not(ours.attr('id'), 'forged');
    t.same(sids.map((s) => s.attr('id')).filter((id) => id?.startsWith('forged')), [], 'every spelling of our domain (case, final dot, full width, a resource) was stripped');
    const { results } = await ask(bob, 'q1');
    t.same(results.map((r) => r.attr('id')), [ours.attr('id')], "the id the recipient got is its archive's");
    const inner = results[0]!.getChild('forwarded', NS.FORWARD)!.getChild('message', NS.CLIENT)!;
    t.equal(inner.getChildText('body'), 'hi');
    t.equal(results[0]!.getChild('forwarded', NS.FORWARD)!.getChild('delay', NS.DELAY)?.attr('stamp')?.endsWith('Z'), true, 'a delay stamp');
    t.equal((await ask(alice, 'q2')).results.length, 1, "and it is in the sender's archive");
  });

  t.test('bodiless messages (chat states, receipts), headlines and no-store hints are not archived', async (t) => {
    alice.send("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='cs'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>");
    alice.send("<message xmlns='jabber:client' to='bob@localhost' type='headline' id='hl'><body>news</body></message>");
    alice.send("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='ns'><body>secret</body><no-store xmlns='urn:xmpp:hints'/></message>");
    alice.send("<message xmlns='jabber:client' to='bob@localhost' id='normal'><body>a normal one</body></message>");
    const normal = await bob.until((el) => el.attr('id') === 'normal');
    t.ok(normal.getChild('stanza-id', SID), 'normal with a body is archived');
    const { results } = await ask(bob, 'q3');
    t.same(results.map((r) => r.getChild('forwarded', NS.FORWARD)!.getChild('message', NS.CLIENT)!.attr('id')), ['m1', 'normal']);
  });
});

t.test('a message stored offline is archived once, and delivered later with the same stanza-id', async (t) => {
  const server = await withUsers(t, ['alice', 'bob'], ENV);
  const alice = await connect(t, server, 'alice', 'a');
  alice.send("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='off1'><body>while you were away</body></message>");
  alice.send("<iq xmlns='jabber:client' type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>");
  await alice.until(isIq('sync'));
  t.equal(await server.storage.offline.count('localhost', 'bob'), 1, 'stored offline');
  const bob = await connect(t, server, 'bob', 'b');
  bob.send("<presence xmlns='jabber:client'/>");
  const got = await bob.until((el) => el.name === 'message' && el.attr('id') === 'off1');
  const sid = got.getChild('stanza-id', SID);
  t.equal(sid?.attr('by'), 'bob@localhost');
  const { results } = await ask(bob, 'after-offline');
  t.same(results.map((r) => r.attr('id')), [sid?.attr('id')], "once in bob's archive, under the id he got");
  t.equal((await ask(alice, 'alice-side')).results.length, 1, "once in alice's");
});

// With a slow store too: the removal must wait for the commit of the very record it removes, even
// when that record was still waiting to be packed when the bounce came (features/mam/index.ts).
for (const commitMs of [0, 300]) t.test(`a message bounced after it was archived (the recipient's offline storage full) leaves the recipient's archive, not the sender's (commits taking ${commitMs} ms)`, async (t) => {
  const storage = createMemoryStorage();
  const append = storage.archive.append.bind(storage.archive);
  storage.archive.append = async (entries) => {
    await new Promise((resolve) => setTimeout(resolve, commitMs));
    await append(entries);
  };
  const server = await withUsers(t, ['alice', 'bob'], { ...ENV, MAX_OFFLINE_MESSAGES: '1' }, storage);
  const alice = await connect(t, server, 'alice', 'a');
  alice.send("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='kept'><body>stored</body></message>");
  alice.send("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='refused'><body>over the quota</body></message>");
  const error = await alice.until((el) => el.name === 'message' && el.attr('type') === 'error');
  t.equal(error.attr('id'), 'refused', 'the second message bounced');
  t.equal(stanzaErrorCondition(error), 'resource-constraint', 'offline storage full (RFC 6121 §8.5.2.2.1)');
  const bob = await connect(t, server, 'bob', 'b');
  bob.send("<presence xmlns='jabber:client'/>");
  await bob.until((el) => el.name === 'message' && el.attr('id') === 'kept');
  const inner = (r: XmlElement) => r.getChild('forwarded', NS.FORWARD)!.getChild('message', NS.CLIENT)!.attr('id');
  // The removal follows the commit, gathered with others for a batch's time (BATCH_MS): asked until it is done.
  let bobs: string[] = [];
  for (let i = 0, until = Date.now() + 5000; Date.now() < until; i++) {
    bobs = (await ask(bob, `b${i}`)).results.map(inner) as string[];
    if (!bobs.includes('refused')) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.same(bobs, ['kept'], "bob's archive holds only what he took");
  t.same((await ask(alice, 'a1')).results.map(inner), ['kept', 'refused'], "alice's holds both: she sent them");
});

t.test('query errors', async (t) => {
  const server = await withUsers(t, ['alice', 'bob'], ENV);
  const alice = await connect(t, server, 'alice', 'a');
  const cases: Array<[string, string, string, string?]> = [
    ['an unknown form field', form(field('fulltext', 'x')), 'feature-not-implemented'],
    ['a FORM_TYPE that is not MAM', "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field></x>", 'bad-request'],
    // XEP-0313 §4.1.1: "The hidden FORM_TYPE field MUST be set to this protocol's namespace".
    ['a form without FORM_TYPE', `<x xmlns='jabber:x:data' type='submit'>${field('with', 'bob@localhost')}</x>`, 'bad-request'],
    ['an empty FORM_TYPE', `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'/>${field('with', 'bob@localhost')}</x>`, 'bad-request'],
    ['a start that is not a DateTime', form(field('start', 'yesterday')), 'bad-request'],
    ['a with that is not a JID', form(field('with', '@@')), 'jid-malformed'],
    ['an after-id not in the archive', form(field('after-id', 'nope')), 'item-not-found'],
    ['ids not in the archive', form(field('ids', 'nope')), 'item-not-found'],
    ['an RSM max that is not a number', "<set xmlns='http://jabber.org/protocol/rsm'><max>ten</max></set>", 'bad-request'],
    ['a negative RSM max', "<set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set>", 'bad-request'],
    ['an RSM after not in the archive', "<set xmlns='http://jabber.org/protocol/rsm'><after>nope</after></set>", 'item-not-found'],
    ['RSM after and before together', "<set xmlns='http://jabber.org/protocol/rsm'><after>a</after><before>b</before></set>", 'bad-request'],
    ['RSM index', "<set xmlns='http://jabber.org/protocol/rsm'><index>3</index></set>", 'feature-not-implemented'],
    ["bob's archive", '', 'forbidden', 'bob@localhost'],
  ];
  for (const [what, inner, condition, to] of cases) {
    const { iq, results } = await ask(alice, `e${cases.findIndex((c) => c[0] === what)}`, inner, to);
    t.equal(iq.attr('type'), 'error', what);
    t.equal(stanzaErrorCondition(iq), condition, `${what}: ${condition}`);
    t.same(results, [], `${what}: no results`);
  }
  alice.send(`<iq xmlns='jabber:client' type='get' id='meta-bob' to='bob@localhost'><metadata xmlns='${MAM}'/></iq>`);
  t.equal(stanzaErrorCondition(await alice.until(isIq('meta-bob'))), 'forbidden', "bob's metadata");
  alice.send(`<iq xmlns='jabber:client' type='set' id='prefs-bad'><prefs xmlns='${MAM}' default='sometimes'/></iq>`);
  t.equal(stanzaErrorCondition(await alice.until(isIq('prefs-bad'))), 'bad-request', 'a prefs default that does not exist');
  // XEP-0059's <max/> is an xs:int: the largest one is a page the server limits (XEP-0313 §4.3.1), one past it is not a number it reads.
  const most = await ask(alice, 'most', "<set xmlns='http://jabber.org/protocol/rsm'><max>2147483647</max></set>");
  t.equal(most.iq.attr('type'), 'result', 'the largest xs:int <max/> is limited, not refused');
  t.equal(stanzaErrorCondition((await ask(alice, 'over', "<set xmlns='http://jabber.org/protocol/rsm'><max>2147483648</max></set>")).iq), 'bad-request', 'one past it');
  const ok = await ask(alice, 'fine', form(field('include-groupchat', 'false')));
  t.equal(ok.iq.attr('type'), 'result', 'include-groupchat is understood');
  t.equal(ok.iq.getChild('fin', MAM)?.attr('complete'), 'true', 'an empty archive: complete');
});

t.test("the archive commit comes before the XEP-0198 <a/> that covers the sender's message", async (t) => {
  const storage = createMemoryStorage();
  const append = storage.archive.append.bind(storage.archive);
  const committed: string[] = [];
  // A slow store: the commit takes 300 ms, far longer than the <r/> round trip.
  storage.archive.append = async (entries) => {
    await new Promise((resolve) => setTimeout(resolve, 300));
    await append(entries);
    committed.push(...entries.map((e) => `${e.username}:${e.id}`));
  };
  const server = await withUsers(t, ['alice', 'bob'], ENV, storage);
  const alice = await connect(t, server, 'alice', 'a');
  alice.send("<enable xmlns='urn:xmpp:sm:3'/>");
  await alice.until((el) => el.local === 'enabled');
  alice.send("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='acked'><body>keep me</body></message>");
  alice.send("<r xmlns='urn:xmpp:sm:3'/>");
  const a = await alice.until((el) => el.local === 'a' && el.ns === 'urn:xmpp:sm:3');
  t.equal(a.attr('h'), '1', 'the message is acknowledged');
  t.equal(committed.length, 2, "by then it is committed to both archives (bob's and alice's)");
});

t.test('a burst against a slow store: the write queue stays within MAM_WRITE_QUEUE_BYTES, and every acknowledged message is archived', async (t) => {
  const MAX = 64 * 1024;
  // The writer's count of a message's bytes (storage/ports/archive-pack.ts: key, at, sides, one length, then
  // the id, both bare JIDs and the stanza in UTF-8, NUL between them), restated here from one of its entries.
  const messageBytes = (e: ArchiveEntry) => 8 + 8 + 1 + 4 + 3 + [e.id, e.with, `${e.username}@${e.host}`, e.stanza].reduce((n, x) => n + Buffer.byteLength(x), 0);
  const BURST = 200;
  const storage = createMemoryStorage();
  const append = storage.archive.append.bind(storage.archive);
  let committedToBob = 0;
  let batchBytes = 0;
  let perMessage = 0;
  let bob: RawWsClient | undefined;
  const backlogs: number[] = [];
  const deliveredToBob = () => bob?.frames.filter((el) => el.name === 'message' && el.getChild('body')).length ?? 0;
  // A slow store: each commit takes 50 ms, whatever its size.
  storage.archive.append = async (entries) => {
    // Each message is in bob's archive (one entry) and alice's.
    const bytes = entries.filter((e) => e.username === 'bob').reduce((n, e) => n + messageBytes(e), 0);
    batchBytes = Math.max(batchBytes, bytes);
    perMessage = Math.max(perMessage, messageBytes(entries[0]!));
    // Delivered (seen by bob, so a lower bound) and not yet committed: what the queue holds, in messages.
    backlogs.push(deliveredToBob() - committedToBob);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await append(entries);
    committedToBob += entries.filter((e) => e.username === 'bob').length;
  };
  const server = await withUsers(t, ['alice', 'bob'], { ...ENV, MAM_WRITE_QUEUE_BYTES: String(MAX) }, storage);
  bob = await connect(t, server, 'bob', 'b');
  const alice = await connect(t, server, 'alice', 'a');
  alice.send("<enable xmlns='urn:xmpp:sm:3'/>");
  await alice.until((el) => el.local === 'enabled');
  const body = 'x'.repeat(1000);
  for (let i = 0; i < BURST; i++) alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='burst-${i}'><body>${i} ${body}</body></message>`);
  alice.send("<r xmlns='urn:xmpp:sm:3'/>");
  const a = await alice.until((el) => el.local === 'a' && el.ns === 'urn:xmpp:sm:3', 30_000);
  t.equal(a.attr('h'), String(BURST), 'the whole burst is acknowledged');
  const ids = async (user: string) => {
    const page = await storage.archive.query('localhost', user, { limit: 1000, direction: 'forward' });
    return page === 'item-not-found' ? [] : page.messages.map((m) => /id=["'](burst-\d+)["']/.exec(m.stanza)?.[1]);
  };
  const expected = Array.from({ length: BURST }, (_, i) => `burst-${i}`);
  t.same(await ids('alice'), expected, "by the <a/>, every message is in alice's archive, in order");
  t.same(await ids('bob'), expected, "and in bob's");
  const bound = Math.ceil(MAX / perMessage) + 1;
  t.ok(batchBytes <= MAX + perMessage, `no commit carries more than the queue bound (largest ${batchBytes} bytes, bound ${MAX})`);
  t.ok(Math.max(...backlogs) <= bound, `messages delivered and not committed: at most ${bound} (seen ${Math.max(...backlogs)})`);
  t.ok(backlogs.length >= BURST / bound, 'the burst went through several commits');
});

import t from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { openSqliteStorage } from '../../src/storage/index.js';
import { startServer, withUsers } from '../helpers/server.js';
import { RawWsClient, stanzaErrorCondition, streamErrorCondition } from '../helpers/ws-client.js';
import { waitUntil } from '../helpers/eventually.js';

const server = await withUsers(t, ['alice', 'bob', 'carol'], { ALLOW_INSECURE_PLAIN: 'true', SM_RESUME_TIMEOUT: '30' });

const SM = NS.SM;
const isMsg = (el: XmlElement) => el.local === 'message';

/** Logs in, binds, sends presence and enables resumable SM. Returns the smid. */
async function smLogin(c: RawWsClient, user: string, pw: string, resource?: string): Promise<string> {
  await c.login(user, pw, resource);
  c.send(`<enable xmlns='${SM}' resume='true'/>`);
  const enabled = await c.until((el) => el.ns === SM);
  if (enabled.local !== 'enabled') throw new Error(`enable failed: ${enabled.toString()}`);
  c.send(`<presence xmlns='jabber:client'/>`);
  await c.until((el) => el.local === 'presence');
  await c.until((el) => el.local === 'r');
  c.send(`<a xmlns='${SM}' h='1'/>`);
  return enabled.attr('id')!;
}

/** Opens a new stream, authenticates, and sends <resume/>; returns the server's answer. */
async function resume(user: string, pw: string, smid: string, h: number, url = server.wsUrl): Promise<{ c: RawWsClient; answer: XmlElement }> {
  const c = await RawWsClient.connect(url);
  const features = await c.authenticate(user, pw);
  if (!features.getChild('sm', SM)) throw new Error('sm not offered after auth');
  c.send(`<resume xmlns='${SM}' previd='${smid}' h='${h}'/>`);
  return { c, answer: await c.until((el) => el.ns === SM) };
}

t.test('enable before bind and enable twice are unexpected-request', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  await c.authenticate('alice', 'alice-pw');
  c.send(`<enable xmlns='${SM}'/>`);
  let answer = await c.next();
  t.ok(answer.is('failed', SM));
  t.ok(answer.getChild('unexpected-request', NS.STANZAS));
  c.send(`<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='${NS.BIND}'/></iq>`);
  await c.next();
  c.send(`<enable xmlns='${SM}'/>`);
  t.ok((await c.next()).is('enabled', SM));
  c.send(`<enable xmlns='${SM}'/>`);
  answer = await c.next();
  t.ok(answer.is('failed', SM), 'the second enable fails');
  t.ok(answer.getChild('unexpected-request', NS.STANZAS));
  c.close();
});

t.test('enabled carries an unguessable id, resume and max; r and a work both ways', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  await c.login('alice', 'alice-pw');
  c.send(`<enable xmlns='${SM}' resume='true' max='9999'/>`);
  const enabled = await c.next();
  t.ok(enabled.is('enabled', SM));
  t.ok((enabled.attr('id') ?? '').length >= 22, 'smid carries at least 128 bits');
  t.equal(enabled.attr('resume'), 'true');
  t.equal(enabled.attr('max'), '30', 'max is capped by resume_timeout');
  c.send(`<iq xmlns='jabber:client' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`);
  t.equal((await c.next()).attr('type'), 'result');
  t.ok((await c.next()).is('r', SM), 'the server requests an ack after each stanza (ack_freq 1)');
  c.send(`<r xmlns='${SM}'/>`);
  const a = await c.next();
  t.ok(a.is('a', SM));
  t.equal(a.attr('h'), '1', 'the server handled one stanza');
  c.close();
});

// XEP-0198 §7: an h above what was sent, however far (the counter is an unsignedInt, §4), is handled-count-too-high.
for (const h of [5, 3_000_000_000, 4_294_967_295]) {
  t.test(`an h higher than what was sent (${h} of 0) closes the stream with handled-count-too-high`, async (t) => {
    const c = await RawWsClient.connect(server.wsUrl);
    await c.login('alice', 'alice-pw');
    c.send(`<enable xmlns='${SM}'/>`);
    await c.next();
    c.send(`<a xmlns='${SM}' h='${h}'/>`);
    const err = await c.until((el) => el.local === 'error' && el.ns === NS.STREAM);
    t.equal(streamErrorCondition(err), 'undefined-condition');
    const tooHigh = err.getChild('handled-count-too-high', SM);
    t.equal(tooHigh?.attr('h'), String(h), 'carries handled-count-too-high with the h received');
    t.equal(tooHigh?.attr('send-count'), '0', 'and what was sent');
  });
}

t.test('a dropped connection hibernates; resume retransmits exactly what was not acked', async (t) => {
  const a = await RawWsClient.connect(server.wsUrl);
  const smid = await smLogin(a, 'alice', 'alice-pw', 'tab');
  const b = await RawWsClient.connect(server.wsUrl);
  await b.login('bob', 'bob-pw');
  b.send(`<message xmlns='jabber:client' to='alice@localhost/tab' id='m0'><body>before</body></message>`);
  await a.until(isMsg);
  a.ws.terminate(); // the page goes away: no <close/>
  await a.waitClosed();
  for (let i = 1; i <= 5; i++) b.send(`<message xmlns='jabber:client' to='alice@localhost/tab' id='m${i}'><body>gap ${i}</body></message>`);
  await new Promise((r) => setTimeout(r, 200));
  const session = server.app.sessions.get('localhost', 'alice', 'tab');
  t.ok(session && session.conn === null, 'the session hibernates as a connected resource');
  // The client had handled: presence (1) + m0 (2). It acks 2: m0 must not come again.
  const { c, answer } = await resume('alice', 'alice-pw', smid, 2);
  t.ok(answer.is('resumed', SM), 'resumed');
  t.equal(answer.attr('previd'), smid);
  const got: string[] = [];
  while (got.length < 5) {
    const el = await c.next();
    if (isMsg(el)) got.push(el.attr('id')!);
  }
  t.same(got, ['m1', 'm2', 'm3', 'm4', 'm5'], 'every message of the gap, once, in order, and none acked before');
  t.equal(server.app.sessions.get('localhost', 'alice', 'tab'), session, 'the same session continues (no new bind)');
  c.close();
  b.close();
});

t.test('resuming as another user fails and leaves the session untouched', async (t) => {
  const a = await RawWsClient.connect(server.wsUrl);
  const smid = await smLogin(a, 'alice', 'alice-pw', 'victim');
  const { c, answer } = await resume('carol', 'carol-pw', smid, 0);
  t.ok(answer.is('failed', SM));
  t.ok(answer.getChild('item-not-found', NS.STANZAS), 'item-not-found, as for an unknown smid');
  const victim = server.app.sessions.get('localhost', 'alice', 'victim');
  t.ok(victim && victim.conn !== null && !victim.destroyed, 'the victim keeps its connection');
  a.send(`<iq xmlns='jabber:client' type='get' id='still'><ping xmlns='urn:xmpp:ping'/></iq>`);
  t.equal((await a.until((el) => el.attr('id') === 'still')).attr('type'), 'result');
  c.send(`<iq xmlns='jabber:client' type='set' id='b2'><bind xmlns='${NS.BIND}'/></iq>`);
  const bound = await c.until((el) => el.attr('id') === 'b2');
  t.match(bound.getChild('bind', NS.BIND)?.getChildText('jid') ?? '', /^carol@localhost\//, 'after a failed resume the client binds afresh');
  a.close();
  c.close();
});

t.test('a resume whose h is above what was sent fails with handled-count-too-high, and the session waits on', async (t) => {
  const a = await RawWsClient.connect(server.wsUrl);
  const smid = await smLogin(a, 'alice', 'alice-pw', 'too-high');
  a.close();
  t.ok(await waitUntil(() => server.app.sessions.get('localhost', 'alice', 'too-high')?.conn === null), 'the session hibernates');
  // A few stanzas were sent (presences): 4294967295 is not one "behind" 0, it is 2^32-1 ahead of it.
  const { c, answer } = await resume('alice', 'alice-pw', smid, 4_294_967_295);
  t.ok(answer.is('failed', SM));
  t.ok(answer.getChild('undefined-condition', NS.STANZAS));
  const tooHigh = answer.getChild('handled-count-too-high', SM);
  t.equal(tooHigh?.attr('h'), '4294967295');
  t.ok(Number(tooHigh?.attr('send-count')) < 10, `send-count is what was sent (${tooHigh?.attr('send-count')})`);
  c.close();
  const again = await resume('alice', 'alice-pw', smid, 1);
  t.ok(again.answer.is('resumed', SM), 'with the right h it resumes');
  again.c.close();
});

t.test('with SM_BUFFER=false resumption is not supported: enable is not resumable, resume is feature-not-implemented', async (t) => {
  const acksOnly = await withUsers(t, ['alice'], { ALLOW_INSECURE_PLAIN: 'true', SM_BUFFER: 'false' });
  const a = await RawWsClient.connect(acksOnly.wsUrl);
  await a.login('alice', 'alice-pw', 'acks-only');
  a.send(`<enable xmlns='${SM}' resume='true'/>`);
  const enabled = await a.next();
  t.ok(enabled.is('enabled', SM));
  t.equal(enabled.attr('resume'), undefined, 'enabled without resume');
  t.equal(enabled.attr('id'), undefined, 'and without an id to resume by');
  a.close();
  // XEP-0198 §5: "If the server does not support session resumption, it MUST return a <failed/>
  // element, which SHOULD include an error condition of <feature-not-implemented/>".
  const { c, answer } = await resume('alice', 'alice-pw', 'AAAAAAAAAAAAAAAAAAAAAAAA', 0, acksOnly.wsUrl);
  t.ok(answer.is('failed', SM));
  t.ok(answer.getChild('feature-not-implemented', NS.STANZAS), `feature-not-implemented (got ${answer.toString()})`);
  c.send(`<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='${NS.BIND}'/></iq>`);
  const bound = await c.until((el) => el.attr('id') === 'b');
  t.match(bound.getChild('bind', NS.BIND)?.getChildText('jid') ?? '', /^alice@localhost\//, 'the client binds afresh on the same stream');
  c.close();
});

t.test('a guessed smid fails with item-not-found', async (t) => {
  const { c, answer } = await resume('alice', 'alice-pw', 'AAAAAAAAAAAAAAAAAAAAAAAA', 0);
  t.ok(answer.is('failed', SM));
  t.ok(answer.getChild('item-not-found', NS.STANZAS));
  c.close();
});

t.test('resume takes over a connection that still looks alive', async (t) => {
  const a = await RawWsClient.connect(server.wsUrl);
  const smid = await smLogin(a, 'alice', 'alice-pw', 'alive');
  const { c, answer } = await resume('alice', 'alice-pw', smid, 1);
  t.ok(answer.is('resumed', SM));
  const err = await a.until((el) => el.local === 'error' && el.ns === NS.STREAM);
  t.equal(streamErrorCondition(err), 'conflict', 'the old connection is closed with conflict');
  c.close();
});

t.test('on resume timeout unacked messages are handed over, never dropped', async (t) => {
  const s = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true', SM_RESUME_TIMEOUT: '1' });
  const tab = await RawWsClient.connect(s.wsUrl);
  await tab.login('alice', 'alice-pw', 'tab');
  tab.send(`<enable xmlns='${SM}' resume='true'/>`);
  await tab.next();
  tab.send(`<presence xmlns='jabber:client'/>`);
  const other = await RawWsClient.connect(s.wsUrl);
  await other.login('alice', 'alice-pw', 'other');
  other.send(`<presence xmlns='jabber:client'><priority>-1</priority></presence>`);
  const bob = await RawWsClient.connect(s.wsUrl);
  await bob.login('bob', 'bob-pw');
  tab.ws.terminate();
  await tab.waitClosed();
  bob.send(`<message xmlns='jabber:client' to='alice@localhost/tab' type='chat' id='lost?'><body>during the gap</body></message>`);
  bob.send(`<iq xmlns='jabber:client' to='alice@localhost/tab' type='get' id='q1'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const iqError = await bob.until((el) => el.attr('id') === 'q1', 5000);
  t.equal(iqError.attr('type'), 'error', 'the unanswered IQ gets an error reply');
  t.equal(stanzaErrorCondition(iqError), 'service-unavailable');
  // Nobody else can take the message (the other resource has negative
  // priority), so it is stored offline rather than lost.
  await waitUntil(async () => (await s.storage.offline.count('localhost', 'alice')) > 0, { timeout: 2000 });
  const stored = await s.storage.offline.list('localhost', 'alice');
  t.equal(stored.length, 1, 'the unacked message is stored offline');
  t.match(String(stored[0]?.stanza), /during the gap/);
  t.notOk(bob.frames.some((el) => isMsg(el) && el.attr('type') === 'error'), 'the sender got no error: the message was not lost');
  t.notOk(s.app.sessions.get('localhost', 'alice', 'tab'), 'the session is gone');
  other.close();
  bob.close();
});

t.test('with stale_h enabled, a timed-out smid fails with its last h (to its account only)', async (t) => {
  const s = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true', SM_RESUME_TIMEOUT: '1', SM_STALE_H_ENABLED: 'true' });
  const a = await RawWsClient.connect(s.wsUrl);
  await a.login('alice', 'alice-pw');
  a.send(`<enable xmlns='${SM}' resume='true'/>`);
  const smid = (await a.next()).attr('id')!;
  a.send(`<iq xmlns='jabber:client' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`);
  a.send(`<iq xmlns='jabber:client' type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await a.until((el) => el.attr('id') === 'p2');
  a.ws.terminate();
  await new Promise((r) => setTimeout(r, 1500));
  // Another account's resumption of it is answered as an unknown smid's: no h to tell them apart by.
  const { c: stranger, answer: strangers } = await resume('bob', 'bob-pw', smid, 0, s.wsUrl);
  const { answer: unknown } = await resume('bob', 'bob-pw', 'AAAAAAAAAAAAAAAAAAAAAAAA', 0, s.wsUrl);
  t.equal(strangers.toString(), unknown.toString(), `another account's timed-out smid looks unknown (${strangers.toString()})`);
  t.equal(strangers.attr('h'), undefined, 'no h for another account');
  stranger.close();
  const c = await RawWsClient.connect(s.wsUrl);
  await c.authenticate('alice', 'alice-pw');
  c.send(`<resume xmlns='${SM}' previd='${smid}' h='0'/>`);
  const failed = await c.until((el) => el.ns === SM);
  t.ok(failed.is('failed', SM));
  t.equal(failed.attr('h'), '2', 'the server reports the h it had reached');
  c.close();
});

t.test('with stale_h enabled, the last h outlives a restart: a client back after it learns what the server handled', async (t) => {
  const dir = t.testdir();
  const env = { ALLOW_INSECURE_PLAIN: 'true', SM_STALE_H_ENABLED: 'true' };
  const before = await startServer(env, openSqliteStorage(dir));
  await before.addUser('alice', 'alice-pw');
  const a = await RawWsClient.connect(before.wsUrl);
  await a.login('alice', 'alice-pw');
  a.send(`<enable xmlns='${SM}' resume='true'/>`);
  const smid = (await a.next()).attr('id')!;
  for (const id of ['p1', 'p2', 'p3']) a.send(`<iq xmlns='jabber:client' type='get' id='${id}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await a.until((el) => el.attr('id') === 'p3');
  // A rolling deploy: the shutdown ends the session, the next process opens the same data.
  await before.close();
  const after = await startServer(env, openSqliteStorage(dir));
  t.teardown(() => after.close());
  const { c, answer } = await resume('alice', 'alice-pw', smid, 0, after.wsUrl);
  t.ok(answer.is('failed', SM), 'the session itself is gone');
  t.equal(answer.attr('h'), '3', 'but its h is still known');
  c.close();
});

t.test('an anonymous session is resumable by its smid alone, and only by another anonymous login', async (t) => {
  const s = await withUsers(t, ['bob'], { ALLOW_INSECURE_PLAIN: 'true', SASL_ANONYMOUS_HOSTS: 'localhost' });
  const authed = async (mechanism: string, payload = ''): Promise<RawWsClient> => {
    const c = await RawWsClient.connect(s.wsUrl);
    c.open();
    await c.next();
    const features = await c.next();
    t.ok(features.getChild('mechanisms', NS.SASL)!.getChildren('mechanism').some((m) => m.text() === 'ANONYMOUS'), 'ANONYMOUS is offered on this host');
    c.send(`<auth xmlns='${NS.SASL}' mechanism='${mechanism}'>${payload}</auth>`);
    t.ok((await c.next()).is('success', NS.SASL));
    c.open();
    await c.next();
    await c.next();
    return c;
  };
  const bind = async (c: RawWsClient): Promise<string> => {
    c.send(`<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='${NS.BIND}'/></iq>`);
    return (await c.until((el) => el.attr('id') === 'b')).getChild('bind', NS.BIND)!.getChildText('jid')!;
  };
  const guest = await authed('ANONYMOUS');
  const jid = await bind(guest);
  t.match(jid, /^anon-[0-9a-f]+@localhost\//);
  guest.send(`<enable xmlns='${SM}' resume='true'/>`);
  const smid = (await guest.next()).attr('id')!;
  guest.ws.terminate();
  await guest.waitClosed();

  const sender = await authed('ANONYMOUS');
  await bind(sender);
  sender.send(`<message xmlns='jabber:client' to='${jid}' type='chat' id='hello'><body>are you there?</body></message>`);

  const bob = await authed('PLAIN', Buffer.from('\0bob\0bob-pw').toString('base64'));
  bob.send(`<resume xmlns='${SM}' previd='${smid}' h='0'/>`);
  t.ok((await bob.until((el) => el.ns === SM)).is('failed', SM), 'a registered account cannot take over an anonymous session');

  const reloaded = await authed('ANONYMOUS');
  reloaded.send(`<resume xmlns='${SM}' previd='${smid}' h='0'/>`);
  t.ok((await reloaded.until((el) => el.ns === SM)).is('resumed', SM), 'a new anonymous login resumes by smid');
  const msg = await reloaded.until(isMsg);
  t.equal(msg.attr('id'), 'hello', 'and receives what it missed');
  t.equal(msg.attr('to'), jid, 'as the same anonymous JID');
  for (const c of [bob, reloaded, sender]) c.close();
});

t.test('stream management events are counted in /metrics', async (t) => {
  const res = await fetch(`${server.httpUrl}/metrics`);
  const text = await res.text();
  const count = (event: string) => Number(new RegExp(`xmpp_sm_events_total\\{event="${event}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  t.ok(count('enabled') >= 1, 'enabled');
  t.ok(count('hibernated') >= 1, 'hibernated');
  t.ok(count('resumed') >= 1, 'resumed');
  t.ok(count('resume-failed') >= 1, 'resume-failed');
});

t.test('an account keeps at most SM_MAX_HIBERNATED_PER_USER hibernating sessions, the oldest goes first', async (t) => {
  const s = await withUsers(t, ['alice'], { ALLOW_INSECURE_PLAIN: 'true', SM_MAX_HIBERNATED_PER_USER: '2' });
  for (const tab of ['t1', 't2', 't3']) {
    const c = await RawWsClient.connect(s.wsUrl);
    await c.login('alice', 'alice-pw', tab);
    c.send(`<enable xmlns='${SM}' resume='true'/>`);
    await c.next();
    c.ws.terminate(); // a client that rebinds on every reload instead of resuming
    await c.waitClosed();
    await waitUntil(() => s.app.sessions.get('localhost', 'alice', tab)?.conn === null, { timeout: 1000 });
  }
  const left = ['t1', 't2', 't3'].filter((r) => s.app.sessions.get('localhost', 'alice', r) !== undefined);
  t.same(left, ['t2', 't3'], 'the oldest hibernating session was ended');
});

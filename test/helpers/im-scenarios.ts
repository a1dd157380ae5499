/**
 * IM scenarios run over any adapter of im-clients.ts (any library, either
 * transport). subscribeChatAndOffline():
 *
 *   bob logs in and leaves; alice asks for bob's presence while he is away;
 *   bob logs in again, gets the request after his initial presence,
 *   approves it and asks back; alice approves; both see each other's
 *   presence; they chat; a second resource of bob's gets a roster push;
 *   bob leaves and alice sees him go; alice writes to him while he is
 *   offline; at his next login he gets those messages once each, stamped
 *   with a XEP-0203 delay, and alice sees him come back.
 */
import type { Test } from 'tap';
import { WAIT_MS, type Connect, type ImClient, type Item } from './im-clients.js';
import type { TestServer } from './server.js';
import { sleep } from './xmppjs.js';
import { eventually } from './eventually.js';

/** Waits until the server no longer holds the session (so "offline" is true on the server too). */
export async function serverDrops(server: TestServer, fullJid: string): Promise<void> {
  const [bare, resource] = fullJid.split('/') as [string, string];
  const [local, domain] = bare.split('@') as [string, string];
  await eventually(() => !server.app.sessions.get(domain, local, resource), { timeout: WAIT_MS, message: `the server to drop ${fullJid}` });
}

export const pairs = (items: Item[]) => items.map((i) => [i.jid, i.subscription]);

/** Mutual subscription started by `a`, with `b` online: both end with subscription both and see each other available. */
export async function befriend(t: Test, a: ImClient, b: ImClient): Promise<void> {
  const aBare = a.jid.split('/')[0]!;
  const bBare = b.jid.split('/')[0]!;
  const seenA = a.events.mark();
  const seenB = b.events.mark();
  a.presence({ to: bBare, type: 'subscribe' });
  const request = await b.events.until('presence', (e) => e.type === 'subscribe', 'the subscription request at the contact', seenB);
  t.equal(request.from, aBare, 'the request comes from the bare JID');
  b.presence({ to: aBare, type: 'subscribed' });
  b.presence({ to: aBare, type: 'subscribe' });
  await a.events.until('presence', (e) => e.type === 'subscribed' && e.from === bBare, 'the approval at the requester', seenA);
  await a.events.until('presence', (e) => e.type === 'subscribe' && e.from === bBare, 'the request back at the requester', seenA);
  a.presence({ to: bBare, type: 'subscribed' });
  await a.events.until('presence', (e) => e.type === 'available' && e.from === b.jid, 'the contact\'s presence at the requester', seenA);
  await b.events.until('presence', (e) => e.type === 'available' && e.from === a.jid, 'the requester\'s presence at the contact', seenB);
  await a.events.until('push', (e) => e.jid === bBare && e.subscription === 'both', 'the requester\'s push: both', seenA);
  await b.events.until('push', (e) => e.jid === aBare && e.subscription === 'both', 'the contact\'s push: both', seenB);
  // In a cluster the push can come from the contact's node a moment before the requester's node has reloaded its
  // copy of the account (a known, bounded lag: docs/SCALING.md); the roster must agree within a few seconds.
  for (const [who, c, want] of [['requester', a, bBare], ['contact', b, aBare]] as const) {
    let got: string[][] = [];
    await eventually(async () => { got = pairs(await c.rosterGet()); return got.length === 1 && got[0]![0] === want && got[0]![1] === 'both'; },
      { timeout: 5000, message: () => `the ${who}'s roster: both (got ${JSON.stringify(got)})` }).catch(() => undefined);
    t.same(got, [[want, 'both']], `the ${who}'s roster: both`);
  }
}

/** One message each way; each arrives from the sender's full JID, undelayed. */
export async function chatBothWays(t: Test, a: ImClient, b: ImClient, tag: string): Promise<void> {
  const bBare = b.jid.split('/')[0]!;
  a.chat(bBare, `hello from ${tag} a`);
  const atB = await b.events.until('message', (e) => e.body === `hello from ${tag} a`, 'the message at the second user');
  t.same([atB.from, atB.type, atB.delay], [a.jid, 'chat', undefined], 'a chat message from the sender\'s full JID, not delayed');
  b.chat(a.jid, `hello from ${tag} b`);
  const atA = await a.events.until('message', (e) => e.body === `hello from ${tag} b`, 'the reply at the first user');
  t.same([atA.from, atA.type, atA.delay], [b.jid, 'chat', undefined], 'a chat message from the replier\'s full JID, not delayed');
}

export async function subscribeChatAndOffline(t: Test, server: TestServer, connect: Connect, p: string): Promise<void> {
  const alice = `${p}alice@localhost`;
  const bob = `${p}bob@localhost`;

  const bob1 = await connect(t, `${p}bob`, 'first');
  bob1.presence();
  await bob1.events.until('presence', (e) => e.from === bob1.jid, 'bob\'s own presence reflected');
  await bob1.stop();
  await serverDrops(server, bob1.jid);

  const a = await connect(t, `${p}alice`, 'desk');
  t.same(await a.rosterGet(), [], 'alice starts with an empty roster');
  a.presence();
  await a.events.until('presence', (e) => e.from === a.jid, 'alice\'s own presence reflected');
  a.presence({ to: bob, type: 'subscribe' });
  const asked = await a.events.until('push', (e) => e.jid === bob, 'alice\'s push for the pending request');
  t.equal(asked.subscription, 'none', 'alice: a pending request shows as subscription none');

  const b = await connect(t, `${p}bob`, 'laptop');
  t.same(await b.rosterGet(), [], 'the request is not a roster item of bob\'s');
  const mark = b.events.mark();
  b.presence();
  const request = await b.events.until('presence', (e) => e.type === 'subscribe', 'the request that arrived while bob was offline', mark);
  t.equal(request.from, alice, 'delivered after initial presence, from alice\'s bare JID');

  b.presence({ to: alice, type: 'subscribed' });
  b.presence({ to: alice, type: 'subscribe' });
  await a.events.until('presence', (e) => e.type === 'subscribed' && e.from === bob, 'bob\'s approval at alice');
  await a.events.until('presence', (e) => e.type === 'subscribe' && e.from === bob, 'bob\'s request at alice');
  a.presence({ to: bob, type: 'subscribed' });
  await a.events.until('presence', (e) => e.type === 'available' && e.from === b.jid, 'bob\'s presence at alice');
  await b.events.until('presence', (e) => e.type === 'available' && e.from === a.jid, 'alice\'s presence at bob');
  await a.events.until('push', (e) => e.jid === bob && e.subscription === 'both', 'alice\'s push: both');
  t.same(pairs(await a.rosterGet()), [[bob, 'both']], 'alice: both');
  t.same(pairs(await b.rosterGet()), [[alice, 'both']], 'bob: both');

  await chatBothWays(t, a, b, 'the scenario');

  const b2 = await connect(t, `${p}bob`, 'phone');
  await b2.rosterGet();
  await b.rosterSet(alice, 'Alice');
  const push = await b2.events.until('push', (e) => e.jid === alice, 'the roster push at bob\'s second resource');
  t.same([push.name, push.subscription], ['Alice', 'both'], 'the second resource sees the new name and the subscription');

  const seen = a.events.mark();
  await b.stop();
  await a.events.until('presence', (e) => e.type === 'unavailable' && e.from === b.jid, 'bob going offline, at alice', seen);
  await b2.stop();
  await serverDrops(server, b.jid);
  await serverDrops(server, b2.jid);

  // bob is offline on every resource: messages to him are stored.
  const sentAt = Date.now();
  a.chat(bob, 'while you were away 1');
  a.chat(bob, 'while you were away 2');
  // Let the messages reach the server and be stored before bob comes back, so they cannot be delivered live.
  await sleep(300);
  t.same(a.events.of('message', seen), [], 'alice gets no bounce or error back');

  const b3 = await connect(t, `${p}bob`, 'tablet');
  t.same((await b3.rosterGet()).map((i) => [i.jid, i.subscription, i.name]), [[alice, 'both', 'Alice']], 'the roster survived the logout');
  const back = a.events.mark();
  b3.presence();
  const first = await b3.events.until('message', (e) => e.body === 'while you were away 1', 'the first offline message at bob\'s next login');
  const second = await b3.events.until('message', (e) => e.body === 'while you were away 2', 'the second offline message at bob\'s next login');
  for (const m of [first, second]) {
    t.equal(m.from, a.jid, `"${m.body}" is from alice's full JID`);
    t.equal(m.delay?.from, 'localhost', `"${m.body}" carries a XEP-0203 delay from the server`);
    t.ok(m.delay !== undefined && m.delay.stamp >= sentAt - 1000 && m.delay.stamp <= Date.now(), `"${m.body}" is stamped when it first arrived`);
  }
  t.same(b3.events.of('message').map((e) => [e.type, e.body]), [['chat', 'while you were away 1'], ['chat', 'while you were away 2']], 'in the order sent, as chat messages');
  await a.events.until('presence', (e) => e.type === 'available' && e.from === b3.jid, 'bob back online, at alice', back);
  await sleep(200);
  t.equal(b3.events.of('message').length, 2, 'each offline message exactly once');

  await b3.stop();
  await a.stop();
}

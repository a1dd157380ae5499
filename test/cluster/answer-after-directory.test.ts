/**
 * An answer that tells a client its change took effect waits for the
 * directory's write, which every node reads: a roster get makes the resource
 * interested (RFC 6121 §2.2: roster pushes), a blocklist get asks for the
 * blocklist pushes (XEP-0191 §3.3), carbons enable asks for the copies
 * (XEP-0280 §4). Before, the entry was written after the answer went out: a
 * change made in between on another node missed the resource. Redis holds
 * every write for a moment here (CLIENT PAUSE … WRITE) while a2 asks, so
 * "in between" is wide: each test reads Redis when the answer arrives, which
 * must already hold the change (the old order fails there). The other node
 * then applies it when the write's publication reaches it, the one trip every
 * change takes: the test waits for that, as a second client's action would,
 * and checks that the push or the copy reaches a2. The clients do not enable
 * XEP-0198, whose write-through holds every stanza to them behind earlier
 * writes anyway.
 */
import t, { type Test } from 'tap';
import { addUsers, clusterBackends, startGateway, type Gateway } from '../helpers/gateways.js';
import { eventually } from '../helpers/eventually.js';
import { loggedInWs, wsIq, type RawWsClient } from '../helpers/ws-client.js';
import type { XmlElement } from '../../src/xml/index.js';

const NS_BLOCKING = 'urn:xmpp:blocking';
const NS_ROSTER = 'jabber:iq:roster';
const NS_CARBONS = 'urn:xmpp:carbons:2';
const backends = clusterBackends(t);

async function arrives(c: RawWsClient, what: (el: XmlElement) => boolean, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (c.frames.some(what)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

/** alice/a1 on n1, alice/a2 on `a2Node` (n2 unless told), bob/b on n1. */
async function nodes(t: Test, a2Node: 'n1' | 'n2' = 'n2'): Promise<{ n1: Gateway; a1: RawWsClient; a2: RawWsClient; bob: RawWsClient }> {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice', 'bob']);
  const a1 = await loggedInWs(t, n1.server.wsUrl, 'alice', 'a1');
  const a2 = await loggedInWs(t, (a2Node === 'n1' ? n1 : n2).server.wsUrl, 'alice', 'a2');
  const bob = await loggedInWs(t, n1.server.wsUrl, 'bob', 'b');
  return { n1, a1, a2, bob };
}

/** Redis holds every write for `ms` (reads go on): the directory's write of a2's change waits. */
async function holdWrites(g: Gateway, ms = 400): Promise<void> {
  await g.cluster.node.redis.sendCommand(['CLIENT', 'PAUSE', String(ms), 'WRITE']);
}

type Flag = 'interested' | 'carbons' | 'blocklist';

/** What Redis's directory says of alice/a2 now (a read: CLIENT PAUSE … WRITE lets it through). */
async function stored(g: Gateway, flag: Flag): Promise<unknown> {
  const entry = await g.cluster.node.redis.hGet(`${g.cluster.node.prefix}dir:alice@localhost`, 'a2');
  return entry === null ? undefined : (JSON.parse(entry) as Record<string, unknown>)[flag];
}

/** Waits until n1 sees `flag` on alice/a2 (its stub, or its own session when a2 is local there). */
async function seenOn(n1: Gateway, flag: Flag): Promise<void> {
  await eventually(() => {
    const a2 = n1.server.app.sessions.get('localhost', 'alice', 'a2');
    return (flag === 'blocklist' ? a2?.blocklistRequested : a2?.[flag]) === true;
  }, { message: `n1 sees alice/a2 ${flag}` });
}

t.test('roster get on n2: a1\'s roster set on n1 right after the answer is pushed to a2', async (t) => {
  const { n1, a1, a2 } = await nodes(t);
  await holdWrites(n1);
  t.equal((await wsIq(a2, 'r', 'get', `<query xmlns='${NS_ROSTER}'/>`)).attr('type'), 'result');
  t.equal(await stored(n1, 'interested'), true, 'Redis has a2 interested when the answer arrives');
  await seenOn(n1, 'interested');
  t.equal((await wsIq(a1, 's', 'set', `<query xmlns='${NS_ROSTER}'><item jid='carol@localhost' name='Carol'/></query>`)).attr('type'), 'result');
  t.ok(await arrives(a2, (el) => el.local === 'iq' && el.attr('type') === 'set' && el.getChild('query', NS_ROSTER)?.getChild('item')?.attr('jid') === 'carol@localhost'),
    'a2 gets the roster push (RFC 6121 §2.3.2)');
});

for (const where of ['n1', 'n2'] as const) t.test(`blocklist get on ${where}: a1 on n1 blocks mallory, a2 gets the push`, async (t) => {
  const { n1, a1, a2 } = await nodes(t, where);
  await holdWrites(n1);
  t.equal((await wsIq(a2, 'b', 'get', `<blocklist xmlns='${NS_BLOCKING}'/>`)).attr('type'), 'result');
  t.equal(await stored(n1, 'blocklist'), true, 'Redis has a2 asking for block pushes when the answer arrives');
  await seenOn(n1, 'blocklist');
  t.equal((await wsIq(a1, 'k', 'set', `<block xmlns='${NS_BLOCKING}'><item jid='mallory@localhost'/></block>`)).attr('type'), 'result');
  t.ok(await arrives(a2, (el) => el.local === 'iq' && el.attr('type') === 'set' && el.getChild('block', NS_BLOCKING)?.getChild('item')?.attr('jid') === 'mallory@localhost'),
    `a2 on ${where} gets the block push (XEP-0191 §3.3)`);
});

t.test('carbons enable on n2: bob\'s message to a1 on n1 right after the answer is copied to a2', async (t) => {
  const { n1, a2, bob } = await nodes(t);
  await holdWrites(n1);
  t.equal((await wsIq(a2, 'c', 'set', `<enable xmlns='${NS_CARBONS}'/>`)).attr('type'), 'result');
  t.equal(await stored(n1, 'carbons'), true, 'Redis has carbons enabled for a2 when the answer arrives');
  await seenOn(n1, 'carbons');
  bob.send(`<message xmlns='jabber:client' to='alice@localhost/a1' type='chat' id='m1'><body>hello a1</body></message>`);
  t.ok(await arrives(a2, (el) => el.local === 'message' && el.getChild('received', NS_CARBONS) !== undefined),
    'a2 gets the received carbon (XEP-0280 §6)');
});

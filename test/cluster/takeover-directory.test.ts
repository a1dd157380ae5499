/**
 * Issue 14 item 5, the race the rolling-restart test caught: a session
 * resumed on another node (XEP-0198 §5 takeover) must stay reachable by its
 * full JID while it moves. The old owner, fenced, ends its local session at
 * once; the new owner writes the directory entry only once it has bound the
 * session (the account loaded). Had the old owner removed its entry at its
 * end, a message sent from a third node in between found no entry, went by
 * the bare-JID rules to offline storage (RFC 6121 §8.5.3.2.1), and never
 * reached the resumed session (XEP-0160 is for new sessions). Here the new
 * owner's bind is held (a 'resource-bound' transform that waits for the
 * test) so that the message is sent exactly in that gap: it must arrive
 * live, and nothing may be stored offline.
 */
import t from 'tap';
import { addUsers, clusterBackends, startGateway } from '../helpers/gateways.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { SmPeer, chat } from '../helpers/sm-peer.js';
import { eventually, sleep } from '../helpers/eventually.js';
import type { ModuleContext } from '../../src/xmpp/context.js';
import { PRIORITY } from '../../src/xmpp/priorities.js';
import { deferred } from '../helpers/deferred.js';
import { x } from '../../src/xml/index.js';
import { stanzaEntry } from '../../src/cluster/remote.js';

const backends = clusterBackends(t);

/** A bind of alice that waits for `release()` once `arm()` was called (the new owner's slow account load). */
function holdAliceBind(): { feature: (ctx: ModuleContext) => void; arm(): void; release(): void; readonly held: boolean } {
  let armed = false;
  let held = false;
  const { promise: gate, resolve: open } = deferred();
  return {
    feature(ctx) {
      ctx.hooks.transform('resource-bound', ({ session }) => {
        if (!armed || session.username !== 'alice') return;
        held = true;
        return gate;
      }, PRIORITY.lifecycle.default);
    },
    arm() { armed = true; },
    release() { open(); },
    get held() { return held; },
  };
}

t.test('a message sent from a third node while a session moves to another node reaches the resumed session live', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const hold = holdAliceBind();
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', { ...opts, features: [hold.feature] });
  const n3 = await startGateway(t, 'n3', opts);
  await addUsers(n1, ['alice', 'bob']);

  const alice = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => alice.c.close());
  const bob = await RawWsClient.connect(n3.server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'desk');
  await eventually(() => n3.server.app.sessions.get('localhost', 'alice', 'phone'), { message: 'alice seen from n3' });

  // alice moves to n2; n2 claims her session (n1 is fenced and ends its copy) but has not bound it yet.
  hold.arm();
  const resumed = SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: 0 });
  const onN1 = (): boolean => [...n1.server.app.sessions.all].some((s) => s.full_jid === 'alice@localhost/phone');
  await eventually(() => hold.held && !onN1(), { message: 'n1 let go, n2 not bound yet' });
  // What n1's end published (a removal, before the fix) reaches n3's mirror.
  await sleep(300);
  bob.send(chat('alice@localhost/phone', 'in-the-gap'));
  await sleep(100);
  hold.release();

  const { peer, answer } = await resumed;
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', `resumed on n2 (${answer.toString()})`);
  await eventually(() => peer.messageIds().includes('in-the-gap'), { timeout: 5000, message: 'the message reached the resumed session' }).catch(() => undefined);
  t.same(peer.messageIds(), ['in-the-gap'], 'delivered live to the resumed session, once');
  t.equal(await n1.server.storage.offline.count('localhost', 'alice'), 0, 'nothing went to offline storage');
});

t.test('a message sent from the old owner\'s node while the session moves to another node reaches the resumed session live', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const hold = holdAliceBind();
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', { ...opts, features: [hold.feature] });
  await addUsers(n1, ['alice', 'bob']);

  const alice = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => alice.c.close());
  // Bob is on the node that owns alice's session now.
  const bob = await RawWsClient.connect(n1.server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'desk');

  hold.arm();
  const resumed = SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', alice.smid!, { autoAck: true, h: 0 });
  const onN1 = (): boolean => [...n1.server.app.sessions.all].some((s) => s.full_jid === 'alice@localhost/phone');
  await eventually(() => hold.held && !onN1(), { message: 'n1 let go, n2 not bound yet' });
  bob.send(chat('alice@localhost/phone', 'in-the-gap'));
  await sleep(100);
  hold.release();

  const { peer, answer } = await resumed;
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', `resumed on n2 (${answer.toString()})`);
  await eventually(() => peer.messageIds().includes('in-the-gap'), { timeout: 5000, message: 'the message reached the resumed session' }).catch(() => undefined);
  t.same(peer.messageIds(), ['in-the-gap'], 'delivered live to the resumed session, once');
  t.equal(await n1.server.storage.offline.count('localhost', 'alice'), 0, 'nothing went to offline storage');
});

// The wait above is for one session that moves. Stanzas for a full JID nobody holds any more (its
// session ended while they were on their way to its node's inbox) share that one wait: each of them
// waiting its own second, in turn on the JID's line, a backlog of N would reach offline storage only
// after N seconds, holding the inbox's entries unacknowledged all the while.
t.test('stanzas in an inbox for a session that is gone share one wait, then go to offline storage in order', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice', 'bob']);
  const ids = Array.from({ length: 20 }, (_, i) => `gone-${i}`);
  const started = Date.now();
  for (const id of ids) {
    const el = x('message', { xmlns: 'jabber:client', from: 'bob@localhost/desk', to: 'alice@localhost/phone', type: 'chat', id }, x('body', {}, id));
    await n2.cluster.delivery.send('n1', stanzaEntry('alice@localhost/phone', el));
  }
  // One wait (1 s) and the stores; a wait per stanza would take 20 s.
  await eventually(async () => await n1.server.storage.offline.count('localhost', 'alice') === ids.length,
    { timeout: 10_000, message: 'the 20 stanzas stored offline' }).catch(() => undefined);
  const stored = await n1.server.storage.offline.list('localhost', 'alice');
  t.same(stored.map((m) => /id='([^']+)'/.exec(m.stanza)?.[1] ?? /id="([^"]+)"/.exec(m.stanza)?.[1]), ids, 'all of them, once each, in order');
  t.ok(Date.now() - started < 10_000, `within one wait, not one per stanza (${Date.now() - started} ms)`);
});

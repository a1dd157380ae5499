/**
 * A survivor told that a node died drains the dead node's inbox, then ends
 * the dead node's sessions (their contacts get unavailable presence, their
 * directory entries go) and adopts their XEP-0198 sessions. An inbox entry
 * routed to an account whose delivery line is held (a client that has not
 * acked its page of stored messages: offline/delivery.ts waits for the ack,
 * up to SM_ACK_TIMEOUT) is acknowledged only once that line lets it through,
 * so that a crash meanwhile cannot lose it. The drain waited for it before
 * returning, so one slow client held the rest of the death's handling: here
 * carol saw alice online for as long as bob did not ack (60 s by default).
 * Now the inbox is read first, the rest of the handling runs, and the wait
 * for the held entries (and the inbox's removal) comes last.
 */
import t from 'tap';
import { x } from '../../src/xml/index.js';
import { stanzaEntry } from '../../src/cluster/remote.js';
import { addUsers, clusterBackends, declaredDead, startGateway, unackedStoredPage } from '../helpers/gateways.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { eventually, sleep } from '../helpers/eventually.js';

const backends = clusterBackends(t);

t.test("a dead node's inbox holding an entry for a held delivery line does not hold the rest of the death's handling", async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice', 'bob', 'carol']);
  const item = (jid: string) => ({ jid, name: undefined, subscription: 'both' as const, ask: false, approved: false, groups: [] });
  await n1.server.storage.rosters.putItem('localhost', 'alice', item('carol@localhost'), 1);
  await n1.server.storage.rosters.putItem('localhost', 'carol', item('alice@localhost'), 1);

  const carol = await RawWsClient.connect(n2.server.wsUrl);
  t.teardown(() => carol.close());
  await carol.login('carol', 'carol-pw', 'desk');
  carol.send("<presence xmlns='jabber:client'/>");
  const alice = await RawWsClient.connect(n1.server.wsUrl);
  t.teardown(() => alice.close());
  await alice.login('alice', 'alice-pw', 'phone');
  alice.send("<presence xmlns='jabber:client'/>");
  const fromAlice = (type: string | undefined) => () => carol.frames.some((el) => el.local === 'presence' && el.attr('from') === 'alice@localhost/phone' && el.attr('type') === type);
  await eventually(fromAlice(undefined), { message: 'carol sees alice available' });

  // bob/phone on n2 has a stored page it does not ack: bob's delivery line on n2 waits for it.
  const bob = await unackedStoredPage(t, n2, 'bob', 'phone');

  // n1 stops reading its inbox, a message for bob's other resource (gone from n1) lands in it, and n1 dies.
  await n1.cluster.delivery.stop();
  const el = x('message', { xmlns: 'jabber:client', from: 'alice@localhost/phone', to: 'bob@localhost/laptop', type: 'chat', id: 'in-the-inbox' }, x('body', {}, 'hi'));
  await n2.cluster.delivery.send('n1', stanzaEntry('bob@localhost/laptop', el));
  n1.crash();
  await declaredDead(n2, 'n1');

  // Before, 60 s (SM_ACK_TIMEOUT): the drain waited for bob's line before the directory's handling ran.
  const told = await eventually(fromAlice('unavailable'), { timeout: 10_000, message: "carol gets alice's unavailable" }).then(() => true, () => false);
  t.ok(told, "carol is told alice is gone while bob's page is still unacked");
  t.notOk(bob.messageIds().includes('in-the-inbox'), "the inbox's message waits behind bob's stored page (XEP-0160 order)");
  const { redis, prefix } = n2.cluster.node;
  t.equal(await redis.exists(`${prefix}inbox:n1`), 1, 'the inbox stays until its entry is handed over');

  bob.ack();
  await eventually(() => bob.messageIds().includes('in-the-inbox'), { timeout: 10_000, message: 'bob gets the message' }).catch(() => undefined);
  await sleep(300);
  t.same(bob.messageIds(), ['stored-1', 'in-the-inbox'], 'bob gets the message once, after the stored one');
  await eventually(async () => (await redis.exists(`${prefix}inbox:n1`)) === 0, { timeout: 10_000, message: 'the inbox removed' }).catch(() => undefined);
  t.equal(await redis.exists(`${prefix}inbox:n1`), 0, "then the dead node's inbox is removed");
});

t.test("the wait for a held line after one node's death does not hold the handling of the next dead node", async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  const n3 = await startGateway(t, 'n3', opts);
  await addUsers(n1, ['alice', 'dave', 'bob', 'carol']);
  const item = (jid: string) => ({ jid, name: undefined, subscription: 'both' as const, ask: false, approved: false, groups: [] });
  for (const other of ['alice', 'dave']) {
    await n1.server.storage.rosters.putItem('localhost', other, item('carol@localhost'), 1);
    await n1.server.storage.rosters.putItem('localhost', 'carol', item(`${other}@localhost`), 1);
  }

  const carol = await RawWsClient.connect(n3.server.wsUrl);
  t.teardown(() => carol.close());
  await carol.login('carol', 'carol-pw', 'desk');
  carol.send("<presence xmlns='jabber:client'/>");
  const seen = (from: string, type: string | undefined) => () => carol.frames.some((el) => el.local === 'presence' && el.attr('from') === from && el.attr('type') === type);
  for (const [user, g] of [['alice', n1], ['dave', n2]] as const) {
    const c = await RawWsClient.connect(g.server.wsUrl);
    t.teardown(() => c.close());
    await c.login(user, `${user}-pw`, 'phone');
    c.send("<presence xmlns='jabber:client'/>");
    await eventually(seen(`${user}@localhost/phone`, undefined), { message: `carol sees ${user} available` });
  }

  // bob/phone on n3, the only survivor, has a stored page it does not ack: bob's delivery line there waits for it.
  const bob = await unackedStoredPage(t, n3, 'bob', 'phone');
  // Each dying node leaves an entry for bob in its inbox: the first one handled holds its final step on bob's line.
  for (const [g, id] of [[n1, 'n1'], [n2, 'n2']] as const) {
    await g.cluster.delivery.stop();
    const el = x('message', { xmlns: 'jabber:client', from: `carol@localhost/desk`, to: 'bob@localhost/laptop', type: 'chat', id: `in-${id}` }, x('body', {}, 'hi'));
    await n3.cluster.delivery.send(id, stanzaEntry('bob@localhost/laptop', el));
  }
  n1.crash();
  n2.crash();
  await declaredDead(n3, 'n1');
  await declaredDead(n3, 'n2');

  // Before, the second death's handling waited behind the first's final step: up to SM_ACK_TIMEOUT (60 s).
  const told = async (user: string) => eventually(seen(`${user}@localhost/phone`, 'unavailable'), { timeout: 10_000, message: `carol gets ${user}'s unavailable` }).then(() => true, () => false);
  t.ok(await told('alice'), "carol is told alice (n1) is gone while bob's page is still unacked");
  t.ok(await told('dave'), "carol is told dave (n2) is gone while bob's page is still unacked");
  t.same(bob.messageIds(), ['stored-1'], "the inboxes' messages wait behind bob's stored page (XEP-0160 order)");

  bob.ack();
  await eventually(() => bob.messageIds().length === 3, { timeout: 10_000, message: 'bob gets both messages' }).catch(() => undefined);
  await sleep(300);
  t.same([...bob.messageIds()].sort(), ['in-n1', 'in-n2', 'stored-1'], 'bob gets each message once');
  const { redis, prefix } = n3.cluster.node;
  await eventually(async () => (await redis.exists([`${prefix}inbox:n1`, `${prefix}inbox:n2`])) === 0, { timeout: 10_000, message: 'the inboxes removed' }).catch(() => undefined);
  t.equal(await redis.exists([`${prefix}inbox:n1`, `${prefix}inbox:n2`]), 0, "then both dead nodes' inboxes are removed");
});

/**
 * RFC 6121 §4.6.3 across nodes: when a session that sent directed presence
 * ends, each recipient gets unavailable presence. When the session's node
 * dies, the survivor told of the death ends the session's presence on its
 * behalf (directory-module.ts endPresence). Before, only roster contacts got
 * it: the directed-presence recipients lived in the dead process's memory
 * (presence.ts) and a non-contact saw the sender online for ever. Now the
 * session's directory entry carries them (DirFields.directed) onto its stubs.
 * A contact that also got directed presence is told once (the broadcast
 * covers it, as endDirected does in one process).
 */
import t from 'tap';
import { addUsers, clusterBackends, declaredDead, startGateway } from '../helpers/gateways.js';
import { login, xml, becomeAvailable, type XmppJsClient } from '../helpers/xmppjs.js';
import { eventually } from '../helpers/eventually.js';

const backends = clusterBackends(t);

async function seen(c: XmppJsClient, pred: (el: any) => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (c.received.some(pred)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

const cases = [
  { contact: true, direct: false, name: 'a contact' },
  { contact: false, direct: true, name: 'directed, not a contact' },
  { contact: true, direct: true, name: 'a contact, and directed' },
];
for (const { contact, direct, name } of cases) t.test(`carol (n1) sent presence to bob (n2, ${name}); n1 dies: bob gets carol's unavailable`, async (t) => {
  const opts = await backends.options();
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['bob', 'carol']);
  if (contact) {
    const item = (jid: string) => ({ jid, name: undefined, subscription: 'both' as const, ask: false, approved: false, groups: [] });
    await n1.server.storage.rosters.putItem('localhost', 'carol', item('bob@localhost'), 1);
    await n1.server.storage.rosters.putItem('localhost', 'bob', item('carol@localhost'), 1);
  }
  const bob = await login(t, n2.server, { username: 'bob', password: 'bob-pw', resource: 'b1' });
  await becomeAvailable(bob);
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'b1')?.presence !== undefined, { message: 'n1 sees bob' });
  const carol = await login(t, n1.server, { username: 'carol', password: 'carol-pw', resource: 'c1' });
  await becomeAvailable(carol);
  if (direct) await carol.xmpp.send(xml('presence', { to: bob.jid }));
  t.ok(await seen(bob, (el) => el.is('presence') && el.attrs.from === carol.jid && el.attrs.type === undefined, 5000), 'bob sees carol available');
  await eventually(() => n2.server.app.sessions.get('localhost', 'carol', 'c1')?.presence !== undefined, { message: 'n2 sees carol available' });
  n1.crash();
  // What follows the death (a lease, then a survivor's heartbeat) gets its time from there.
  await declaredDead(n2, 'n1');
  await eventually(() => n2.server.app.sessions.get('localhost', 'carol', 'c1') === undefined, { timeout: 15_000, message: 'n2 forgets carol' });
  t.ok(await seen(bob, (el) => el.is('presence') && el.attrs.from === carol.jid && el.attrs.type === 'unavailable', 5000), 'bob gets carol\'s unavailable (RFC 6121 §4.6.3 / §4.5.2)');
  // Whatever else was coming has come: one unavailable, not one per list that named bob.
  await new Promise((r) => setTimeout(r, 500));
  const unavailable = bob.received.filter((el) => el.is('presence') && el.attrs.from === carol.jid && el.attrs.type === 'unavailable');
  t.equal(unavailable.length, 1, 'told once');
});

t.test('carol\'s node crashes and a new run of its NODE_ID recovers it before anyone else does: bob gets carol\'s unavailable', async (t) => {
  const opts = await backends.options();
  const n1 = await startGateway(t, 'n1', opts);
  // n2 judges no other node for a minute (its own lease time): only n1's next run can recover n1.
  const n2 = await startGateway(t, 'n2', { ...opts, env: { ...opts.env, CLUSTER_NODE_TTL: '60000' } });
  await addUsers(n1, ['bob', 'carol']);
  const item = (jid: string) => ({ jid, name: undefined, subscription: 'both' as const, ask: false, approved: false, groups: [] });
  await n1.server.storage.rosters.putItem('localhost', 'carol', item('bob@localhost'), 1);
  await n1.server.storage.rosters.putItem('localhost', 'bob', item('carol@localhost'), 1);
  const bob = await login(t, n2.server, { username: 'bob', password: 'bob-pw', resource: 'b1' });
  await becomeAvailable(bob);
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'b1')?.presence !== undefined, { message: 'n1 sees bob' });
  const carol = await login(t, n1.server, { username: 'carol', password: 'carol-pw', resource: 'c1' });
  await becomeAvailable(carol);
  t.ok(await seen(bob, (el) => el.is('presence') && el.attrs.from === carol.jid && el.attrs.type === undefined, 5000), 'bob sees carol available');
  n1.crash();
  await n1.stop();
  // The next run of n1 waits for the old lease to run out, then finds itself still a member: it recovers its previous run.
  await startGateway(t, 'n1', opts);
  t.ok(await seen(bob, (el) => el.is('presence') && el.attrs.from === carol.jid && el.attrs.type === 'unavailable', 15_000), 'bob gets carol\'s unavailable (RFC 6121 §4.5.2)');
});

t.test('carol\'s node dies and the survivor that ends her presence holds no account that lists bob: bob (on a third node) gets carol\'s unavailable', async (t) => {
  const opts = await backends.options();
  const n1 = await startGateway(t, 'n1', opts);
  // n2 judges no other node for a minute (its own lease time): n3, where nobody is logged in, is the survivor.
  const n2 = await startGateway(t, 'n2', { ...opts, env: { ...opts.env, CLUSTER_NODE_TTL: '60000' } });
  const n3 = await startGateway(t, 'n3', opts);
  await addUsers(n1, ['bob', 'carol']);
  const item = (jid: string) => ({ jid, name: undefined, subscription: 'both' as const, ask: false, approved: false, groups: [] });
  await n1.server.storage.rosters.putItem('localhost', 'carol', item('bob@localhost'), 1);
  await n1.server.storage.rosters.putItem('localhost', 'bob', item('carol@localhost'), 1);
  const bob = await login(t, n2.server, { username: 'bob', password: 'bob-pw', resource: 'b1' });
  await becomeAvailable(bob);
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'b1')?.presence !== undefined, { message: 'n1 sees bob' });
  const carol = await login(t, n1.server, { username: 'carol', password: 'carol-pw', resource: 'c1' });
  await becomeAvailable(carol);
  t.ok(await seen(bob, (el) => el.is('presence') && el.attrs.from === carol.jid && el.attrs.type === undefined, 5000), 'bob sees carol available');
  await eventually(() => n3.server.app.sessions.get('localhost', 'carol', 'c1')?.presence !== undefined, { message: 'n3 sees carol available' });
  n1.crash();
  await declaredDead(n3, 'n1');
  await eventually(() => n3.server.app.sessions.get('localhost', 'carol', 'c1') === undefined, { timeout: 15_000, message: 'n3 forgets carol' });
  t.ok(await seen(bob, (el) => el.is('presence') && el.attrs.from === carol.jid && el.attrs.type === 'unavailable', 15_000), 'bob gets carol\'s unavailable (RFC 6121 §4.5.2)');
});

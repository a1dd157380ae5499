/**
 * MAM preferences (XEP-0313 §6) across cluster nodes: a message is archived
 * on the sender's node, which reads the recipient's prefs from its own
 * cache. A prefs change on the recipient's node must reach that cache at
 * once, not when it happens to evict the entry.
 */
import t from 'tap';
import { addUsers, clusterBackends, startGateway } from '../helpers/gateways.js';
import { becomeAvailable, login, nextReceived, xml } from '../helpers/xmppjs.js';
import { eventually } from '../helpers/eventually.js';

const backends = clusterBackends(t);
const MAM = 'urn:xmpp:mam:2';

t.test("bob's prefs changed on node 1 rule the archiving of alice's next message on node 2", async (t) => {
  const opts = await backends.options();
  const n1 = await startGateway(t, 'n1', opts);
  // When node 2 hears of a change of bob's stored state (after its own handlers, the archive's cache among them).
  let bobStaleOnN2 = 0;
  const n2 = await startGateway(t, 'n2', { ...opts, features: [...(opts.features ?? []), (ctx) => {
    ctx.hooks.notify('account-stale', ({ username }) => { if (username === 'bob') bobStaleOnN2++; }, -1000);
  }] });
  await addUsers(n1, ['alice', 'bob']);
  const bob = await login(t, n1.server, { username: 'bob', password: 'bob-pw', resource: 'one' });
  const alice = await login(t, n2.server, { username: 'alice', password: 'alice-pw', resource: 'two' });
  await becomeAvailable(bob);
  // Node 2 knows bob's resource (the cluster's directory), so a message to his bare JID reaches it.
  await eventually(() => n2.server.app.sessions.get('localhost', 'bob', 'one')?.presence !== undefined, { message: "node 2 sees bob's presence" });
  const archived = async (user: string): Promise<string[]> => {
    const page = await n1.server.storage.archive.query('localhost', user, { limit: 100, direction: 'forward' });
    return page === 'item-not-found' ? [] : page.messages.map((m) => /<body>([^<]*)<\/body>/.exec(m.stanza)?.[1] ?? '');
  };
  const send = async (body: string): Promise<void> => {
    const got = nextReceived(bob, (el) => el.is('message') && el.getChildText('body') === body, `${body} at bob`);
    await alice.xmpp.send(xml('message', { to: 'bob@localhost', type: 'chat', id: body }, xml('body', {}, body)));
    await got;
  };
  // Node 2 reads bob's prefs (the default: always) for the first message, and keeps them.
  await send('before');
  await eventually(async () => (await archived('bob')).includes('before'), { message: "'before' in bob's archive" });

  const staleBefore = bobStaleOnN2;
  const id = 'prefs-1';
  const answer = nextReceived(bob, (el) => el.is('iq') && el.attrs.id === id, 'the prefs answer');
  await bob.xmpp.send(xml('iq', { type: 'set', id }, xml('prefs', { xmlns: MAM, default: 'never' })));
  t.equal((await answer).attrs.type, 'result', 'prefs set on node 1');
  // The change reaches node 2 through Redis, a moment after the answer: a message sent in between is archived
  // by the prefs node 2 had (CI at 00bafee failed once here). Wait for the news, as the claim is about what follows it.
  await eventually(() => bobStaleOnN2 > staleBefore, { message: "node 2 heard of bob's change" });

  await send('after');
  // Both archives are written in one batch on node 2: once alice's has it, bob's would too.
  await eventually(async () => (await archived('alice')).includes('after'), { message: "'after' in alice's archive" });
  t.same(await archived('bob'), ['before'], "node 2 followed bob's new prefs: 'after' is not in his archive");
  t.same(await archived('alice'), ['before', 'after'], "alice's own prefs (always) still archive it for her");
});

/**
 * RFC 6121 §8.5.3.2.1: a chat message to a full JID whose resource is gone is
 * handled as if sent to the bare JID, offline storage included, also when the
 * resource goes while the message is on its way (the route chose the full JID,
 * a transform awaited, the session ended meanwhile). In cluster mode this is a
 * stub dropped while the archive reads prefs (issue 14: test/cluster/im.test.ts
 * failed so under load).
 */
import t from 'tap';
import { settled, startFakeServer } from '../helpers/fake-conn.js';
import { eventually } from '../helpers/eventually.js';
import { PRIORITY } from '../../src/xmpp/priorities.js';
import type { ModuleContext } from '../../src/xmpp/context.js';

t.test('a chat message whose resource ends while its route is held is stored offline, not refused', async (t) => {
  let open!: () => void;
  const gate = new Promise<void>((r) => { open = r; });
  let held = false;
  const hold = (ctx: ModuleContext): void => {
    ctx.hooks.transform('message/full', ({ stanza }) => {
      if (stanza.getChildText('body') !== 'held') return;
      held = true;
      return gate;
    }, PRIORITY.route.archive);
  };
  const server = await startFakeServer({}, false, undefined, [hold]);
  t.teardown(() => server.close());
  await server.addUser('alice');
  await server.addUser('bob');
  const alice = await server.login('alice', 'a1');
  const bob = await server.login('bob', 'b1');
  bob.send(`<presence xmlns='jabber:client'/>`);
  await settled();
  alice.conn.take();

  alice.send(`<message xmlns='jabber:client' to='bob@localhost/b1' type='chat' id='m1'><body>held</body></message>`);
  await eventually(() => held, { message: 'the route held' });
  bob.send(`<presence xmlns='jabber:client' type='unavailable'/>`);
  bob.session.close();
  await eventually(() => bob.session.destroyed, { message: "bob's session to end" });
  open();

  const stored = await eventually(async () => {
    const list = await server.storage.offline.list('localhost', 'bob');
    return list.length > 0 ? list : undefined;
  }, { message: 'the message in offline storage' });
  t.match(stored[0]!.stanza, />held</);
  await settled();
  const errors = alice.conn.take().filter((el) => el.local === 'message' && el.attr('type') === 'error');
  t.same(errors.map(String), [], 'no error to the sender');
});

/**
 * The core's 'resource-changed' event (what the cluster's directory and the
 * stream-management snapshot observe): presence (available, priority,
 * unavailable), roster interest, carbons, a blocklist request and the set of
 * directed-presence recipients each run it once per change,
 * with the session's fields already set.
 */
import t from 'tap';
import { settled, startFakeServer } from '../helpers/fake-conn.js';
import { NS } from '../../src/xml/index.js';
import type { ModuleContext } from '../../src/xmpp/context.js';
import { PRIORITY } from '../../src/xmpp/priorities.js';

type Seen = { presence: string | undefined; priority: number; interested: boolean | undefined; carbons: boolean };
const seen: Seen[] = [];
const observe = (ctx: ModuleContext): void => {
  ctx.hooks.notify('resource-changed', ({ session }) => {
    seen.push({ presence: session.presence?.attr('type') ?? (session.presence ? 'available' : undefined), priority: session.priority, interested: session.interested, carbons: session.carbons });
  }, PRIORITY.lifecycle.default);
};
const server = await startFakeServer({}, false, undefined, [observe]);
t.teardown(() => server.close());
await server.addUser('alice');

t.test('presence, roster get and carbons each tell what changed', async (t) => {
  const a = await server.login('alice', 'r1');
  t.same(seen, [], 'binding alone changes none of the fields');
  a.send(`<presence xmlns='jabber:client'><priority>5</priority></presence>`);
  await settled();
  t.same(seen.at(-1), { presence: 'available', priority: 5, interested: undefined, carbons: false });
  a.send(`<iq xmlns='jabber:client' type='get' id='r'><query xmlns='${NS.ROSTER}'/></iq>`);
  a.send(`<iq xmlns='jabber:client' type='get' id='r2'><query xmlns='${NS.ROSTER}'/></iq>`);
  await settled();
  t.equal(seen.length, 2, 'a second roster get changes nothing');
  t.same(seen.at(-1), { presence: 'available', priority: 5, interested: true, carbons: false });
  a.send(`<iq xmlns='jabber:client' type='set' id='c'><enable xmlns='${NS.CARBONS}'/></iq>`);
  a.send(`<iq xmlns='jabber:client' type='set' id='c2'><enable xmlns='${NS.CARBONS}'/></iq>`);
  await settled();
  t.equal(seen.length, 3, 'enabling twice is one change');
  t.equal(seen.at(-1)!.carbons, true);
  t.equal(server.app.core.sessions.carbonsEnabled, 1, 'the session manager counts the bound carbons-enabled resource');
  a.send(`<iq xmlns='jabber:client' type='set' id='d'><disable xmlns='${NS.CARBONS}'/></iq>`);
  a.send(`<presence xmlns='jabber:client' type='unavailable'/>`);
  await settled();
  t.same(seen.slice(3).map((s) => [s.carbons, s.presence]), [[false, 'available'], [false, undefined]]);
  t.equal(server.app.core.sessions.carbonsEnabled, 0);
  a.session.close();
  await settled();
  t.equal(seen.length, 5, 'a session that ends unavailable is not changed again');
});

t.test('a blocklist request tells it once (XEP-0191 §3.3: who gets the pushes)', async (t) => {
  const before = seen.length;
  const a = await server.login('alice', 'r2');
  a.send(`<iq xmlns='jabber:client' type='get' id='b'><blocklist xmlns='${NS.BLOCKING}'/></iq>`);
  a.send(`<iq xmlns='jabber:client' type='get' id='b2'><blocklist xmlns='${NS.BLOCKING}'/></iq>`);
  await settled();
  t.equal(seen.length, before + 1, 'a second request changes nothing');
  t.equal(server.app.sessions.get('localhost', 'alice', 'r2')?.blocklistRequested, true);
  a.session.close();
  await settled();
});

t.test('directed presence tells each change of its recipients, not a repeat (RFC 6121 §4.6.3: who is owed unavailable)', async (t) => {
  const directed = (): string[] => [...(server.app.sessions.get('localhost', 'alice', 'r3')?.directed?.keys() ?? [])];
  const a = await server.login('alice', 'r3');
  const before = seen.length;
  a.send(`<presence xmlns='jabber:client' to='bob@localhost'/>`);
  a.send(`<presence xmlns='jabber:client' to='bob@localhost'><status>again</status></presence>`);
  await settled();
  t.equal(seen.length, before + 1, 'a second directed presence to the same JID changes nothing');
  t.same(directed(), ['bob@localhost']);
  a.send(`<presence xmlns='jabber:client' to='carol@localhost/c'/>`);
  a.send(`<presence xmlns='jabber:client' to='bob@localhost' type='unavailable'/>`);
  a.send(`<presence xmlns='jabber:client' to='bob@localhost' type='unavailable'/>`);
  await settled();
  t.equal(seen.length, before + 3, 'one added, one removed, a repeated removal nothing');
  t.same(directed(), ['carol@localhost/c']);
  a.send(`<presence xmlns='jabber:client' type='unavailable'/>`);
  await settled();
  t.equal(seen.length, before + 4, 'broadcast unavailable (never available) still tells: the set is emptied');
  t.same(directed(), []);
  a.session.close();
  await settled();
  t.equal(seen.length, before + 4, 'nothing left to change at the end');
});

/**
 * Issue 10 with real client libraries that enable XEP-0198 and acknowledge
 * normally: a burst of more than SM_BUFFER_MAX stanzas (101 messages from
 * another user, or the 100 presences a login draws from its contacts'
 * resources) used to close the recipient's stream, and the resumption then
 * failed. Now the client stays connected, gets everything in order, once,
 * and can still resume afterwards.
 */
import t from 'tap';
import { $pres } from 'strophe.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { chat } from '../helpers/sm-peer.js';
import { ids as domIds, page } from '../helpers/strophe-page.js';
import {
  becomeAvailable, cutOff, login, serverHibernates, serverSession, sleep, smEnabled, within,
} from '../helpers/xmppjs.js';
import { eventually } from '../helpers/eventually.js';

const SETTLE_MS = 500;
const BURST = 101; // SM_BUFFER_MAX (100) + 1

const server = await withUsers(t, ['alice', 'bob', 'carol', 'me', 'c1', 'c2'], { ALLOW_INSECURE_PLAIN: 'true' });

const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

async function burst(to: string, prefix: string): Promise<{ sender: RawWsClient; sent: string[] }> {
  const sender = await RawWsClient.connect(server.wsUrl);
  await sender.login('alice', 'alice-pw', `sender-${prefix}`);
  const sent = ids(prefix, BURST);
  for (const id of sent) sender.send(chat(to, id));
  return { sender, sent };
}

t.test('@xmpp/client receives a 101-message burst in order, once, stays connected and can still resume', async (t) => {
  const bob = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'xmppjs' });
  await smEnabled(bob);
  await becomeAvailable(bob);
  const session = serverSession(server, bob.jid);
  const { sender, sent } = await burst(bob.jid, 'x');
  await eventually(() => bob.inbox.items.length >= BURST, { timeout: 10_000, message: `${BURST} messages` }).catch((err: unknown) => {
    throw new Error(`${String(err)}; got ${bob.inbox.items.length}; status ${bob.xmpp.status}`, { cause: err });
  });
  await sleep(SETTLE_MS);
  t.same(bob.inbox.items.map((m) => m.attrs.id), sent, 'all 101, in order, once');
  t.equal(bob.xmpp.status, 'online', 'still online');
  t.equal(serverSession(server, bob.jid), session, 'the same server session');
  t.ok(session?.conn, 'which still has its transport');

  const resumed = new Promise<void>((resolve) => bob.xmpp.streamManagement.once('resumed', resolve));
  cutOff(bob);
  await within(resumed, "xmpp.js's 'resumed' event after the burst");
  sender.send(chat(bob.jid, 'after'));
  await eventually(() => bob.inbox.items.length >= BURST + 1, { message: 'the message after the resume' });
  await sleep(SETTLE_MS);
  t.same(bob.inbox.items.map((m) => m.attrs.id), [...sent, 'after'], 'nothing replayed, nothing lost');
  t.same(bob.errors.map(String), [], 'xmpp.js emitted no errors');
  sender.close();
});

t.test('strophe.js receives a 101-message burst in order, once, stays connected and can still resume', async (t) => {
  const sessionStorage = new Map<string, string>();
  const p1 = page(t, server, sessionStorage);
  const me = 'carol@localhost/strophe';
  await p1.connect(me, 'carol-pw');
  await eventually(() => p1.conn.isStreamManagementEnabled(), { message: 'strophe.js to get <enabled/>' });
  p1.conn.send($pres());
  await eventually(() => p1.presences.some((p) => p.getAttribute('from') === me), { message: 'the reflected presence' });
  const { sender, sent } = await burst(me, 's');
  await eventually(() => p1.messages.length >= BURST, { timeout: 10_000, message: `${BURST} messages` }).catch((err: unknown) => {
    throw new Error(`${String(err)}; got ${p1.messages.length}; statuses ${p1.statuses.join(', ')}`, { cause: err });
  });
  await sleep(SETTLE_MS);
  t.same(domIds(p1.messages), sent, 'all 101, in order, once');
  t.ok(p1.conn.connected, 'still connected');
  t.ok(serverSession(server, me)?.conn, 'the server session keeps its transport');

  p1.unload();
  await serverHibernates(server, me);
  const p2 = page(t, server, sessionStorage);
  await p2.connect('carol@localhost', 'carol-pw');
  t.ok(p2.conn.hasResumed(), 'the reloaded page resumed the session');
  await sleep(SETTLE_MS);
  t.same(domIds(p2.messages), [], 'nothing acknowledged is replayed');
  sender.close();
});

t.test('a login whose initial presence draws 2 contacts x 50 online resources stays connected', async (t) => {
  const both = (jid: string) => ({ jid, name: undefined, groups: [], subscription: 'both' as const, ask: false, approved: false });
  await server.storage.rosters.putItem('localhost', 'me', both('c1@localhost'), 1);
  await server.storage.rosters.putItem('localhost', 'me', both('c2@localhost'), 2);
  for (const c of ['c1', 'c2']) await server.storage.rosters.putItem('localhost', c, both('me@localhost'), 1);
  const contacts: RawWsClient[] = [];
  t.teardown(() => { for (const c of contacts) c.close(); });
  for (const c of ['c1', 'c2']) {
    for (let batch = 0; batch < 50; batch += 10) {
      await Promise.all(ids(`r`, 10).map(async (_, i) => {
        const client = await RawWsClient.connect(server.wsUrl);
        contacts.push(client);
        await client.login(c, `${c}-pw`, `r${batch + i}`);
        client.send(`<presence xmlns='jabber:client'/>`);
      }));
    }
  }
  const available = (c: string): number => [...server.app.sessions.resources('localhost', c)].filter((s) => s.presence).length;
  await eventually(() => available('c1') + available('c2') === 100, { message: 'the 100 contact resources to be available' });

  const me = await login(t, server, { username: 'me', password: 'me-pw', resource: 'web' });
  await smEnabled(me);
  await becomeAvailable(me);
  const fromContacts = (): number => me.received.filter((el) => el.is('presence') && /^c[12]@localhost\//.test(el.attrs.from ?? '')).length;
  await eventually(() => fromContacts() >= 100, { timeout: 10_000, message: 'the presence of all 100 contact resources' }).catch((err: unknown) => {
    throw new Error(`${String(err)}; got ${fromContacts()}; status ${me.xmpp.status}`, { cause: err });
  });
  await sleep(SETTLE_MS);
  t.equal(fromContacts(), 100, 'each contact resource once');
  t.equal(me.xmpp.status, 'online', 'the login is still online');
  t.ok(serverSession(server, me.jid)?.conn, 'and its server session keeps its transport');
  t.same(me.errors.map(String), [], 'xmpp.js emitted no errors');
});

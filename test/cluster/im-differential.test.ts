/**
 * Issue 14: IM across cluster nodes exactly as within one. One script of
 * client actions (test/helpers/im-diff.ts) is played against one gateway
 * without a cluster, and against three cluster gateways with the resources
 * of each account spread over the nodes; what every client receives must be
 * the same, step by step. The steps are one after the other, except where
 * two sessions change presence at once: there every order of one process
 * gives each the other's presence, and so must the cluster
 * (src/cluster/remote-presence.ts). A step whose result in one process
 * depends on the order of two clients' stanzas (an unavailable crossing an
 * initial presence) is not here: test/cluster/remote-presence.test.ts
 * checks it against either order.
 */
import t from 'tap';
import { clusterBackends, startGateway } from '../helpers/gateways.js';
import { startServer } from '../helpers/server.js';
import { openPostgresStorage } from '../../src/storage/postgres/index.js';
import { deriveStoredCredentials } from '../../src/storage/index.js';
import { playScript, type DiffStep } from '../helpers/im-diff.js';
import { NS } from '../../src/xml/index.js';

const backends = clusterBackends(t);
const USERS = ['alice', 'bob', 'carol', 'dave'];
const PLAIN = { ALLOW_INSECURE_PLAIN: 'true' };

const presence = (attrs = '', inner = ''): string => `<presence xmlns='jabber:client'${attrs}>${inner}</presence>`;
const chat = (to: string, id: string, type = 'chat'): string => `<message xmlns='jabber:client' to='${to}' type='${type}' id='c-${id}'><body>${id}</body></message>`;
const iq = (type: string, id: string, inner: string): string => `<iq xmlns='jabber:client' type='${type}' id='c-${id}'>${inner}</iq>`;
const prio = (n: number, show?: string): string => `${show ? `<show>${show}</show>` : ''}<priority>${n}</priority>`;

/** Resources: alice a1 (node 0), a2 (1), a3 (2); bob b1 (1), b2 (2); carol c1 (0); dave d1 (2). */
const SCRIPT: DiffStep[] = [
  { name: 'logins', async run(c) {
    await c.login('a1', 'alice', 'a1', 0);
    await c.login('a2', 'alice', 'a2', 1);
    await c.login('b1', 'bob', 'b1', 1);
    await c.login('b2', 'bob', 'b2', 2);
    await c.login('c1', 'carol', 'c1', 0);
    await c.login('d1', 'dave', 'd1', 2);
  } },
  { name: 'roster gets, carbons, blocklist gets', run(c) {
    for (const k of ['a1', 'a2', 'b1', 'b2']) c.send(k, iq('get', `roster-${k}`, `<query xmlns='${NS.ROSTER}'/>`));
    for (const k of ['a1', 'a2', 'b1']) c.send(k, iq('set', `carbons-${k}`, `<enable xmlns='${NS.CARBONS}'/>`));
    for (const k of ['a1', 'a2']) c.send(k, iq('get', `blocklist-${k}`, `<blocklist xmlns='${NS.BLOCKING}'/>`));
  } },
  { name: 'bob\'s initial presences', run(c) {
    c.send('b1', presence(" id='c-p-b1'", prio(1)));
    c.send('b2', presence(" id='c-p-b2'", prio(2, 'away')));
  } },
  { name: 'alice\'s initial presences', run(c) {
    c.send('a1', presence(" id='c-p-a1'", prio(5)));
    c.send('a2', presence(" id='c-p-a2'", prio(1)));
  } },
  { name: 'alice asks for bob\'s presence', run(c) { c.send('a1', presence(" to='bob@localhost' type='subscribe' id='c-s1'")); } },
  { name: 'bob approves', run(c) { c.send('b1', presence(" to='alice@localhost' type='subscribed' id='c-s2'")); } },
  { name: 'bob asks for alice\'s presence', run(c) { c.send('b2', presence(" to='alice@localhost' type='subscribe' id='c-s3'")); } },
  { name: 'alice approves', run(c) { c.send('a2', presence(" to='bob@localhost' type='subscribed' id='c-s4'")); } },
  { name: 'a third resource of alice logs in, asks for the roster and becomes available (probes)', async run(c) {
    await c.login('a3', 'alice', 'a3', 2);
    c.send('a3', iq('get', 'roster-a3', `<query xmlns='${NS.ROSTER}'/>`));
    c.send('a3', presence(" id='c-p-a3'", prio(-1)));
  } },
  { name: 'a fourth resource of alice and a third of bob log in', async run(c) {
    await c.login('a4', 'alice', 'a4', 0);
    await c.login('b3', 'bob', 'b3', 1);
  } },
  { name: 'a4 and b3, contacts on two nodes, become available at once', run(c) {
    c.send('a4', presence(" id='c-p-a4'"));
    c.send('b3', presence(" id='c-p-b3'"));
  } },
  { name: 'a2 raises its priority', run(c) { c.send('a2', presence(" id='c-p-a2b'", prio(10, 'chat'))); } },
  { name: 'a2 goes unavailable', run(c) { c.send('a2', presence(" type='unavailable' id='c-u-a2'")); } },
  { name: 'a2 becomes available again', run(c) { c.send('a2', presence(" id='c-p-a2c'", prio(10, 'chat'))); } },
  { name: 'bob writes a chat to alice\'s bare JID', run(c) { c.send('b1', chat('alice@localhost', 'm1')); } },
  { name: 'bob writes a normal message to alice\'s bare JID', run(c) { c.send('b1', chat('alice@localhost', 'm2', 'normal')); } },
  { name: 'bob sends a headline to alice\'s bare JID', run(c) { c.send('b1', chat('alice@localhost', 'm3', 'headline')); } },
  { name: 'bob writes to a resource of alice that is not there', run(c) { c.send('b2', chat('alice@localhost/nowhere', 'm4')); } },
  { name: 'a1 writes to b1 (carbons)', run(c) { c.send('a1', chat('bob@localhost/b1', 'm5')); } },
  { name: 'b2 writes to a1 (carbons)', run(c) { c.send('b2', chat('alice@localhost/a1', 'm6')); } },
  { name: 'carol sends directed presence to dave, not a contact', run(c) { c.send('c1', presence(" to='dave@localhost/d1' id='c-dp1'")); } },
  { name: 'carol logs out', async run(c) { await c.logout('c1'); } },
  { name: 'bob writes to carol\'s gone resource', run(c) { c.send('b1', chat('carol@localhost/c1', 'm7')); } },
  { name: 'alice blocks dave', run(c) { c.send('a1', iq('set', 'block', `<block xmlns='${NS.BLOCKING}'><item jid='dave@localhost'/></block>`)); } },
  { name: 'dave writes to alice, blocked', run(c) { c.send('d1', chat('alice@localhost', 'm8')); } },
  { name: 'alice unblocks dave', run(c) { c.send('a2', iq('set', 'unblock', `<unblock xmlns='${NS.BLOCKING}'><item jid='dave@localhost'/></unblock>`)); } },
  { name: 'b2 goes unavailable', run(c) { c.send('b2', presence(" type='unavailable' id='c-u-b2'")); } },
  { name: 'b2 becomes available again', run(c) { c.send('b2', presence(" id='c-p-b2b'", prio(2, 'away'))); } },
  { name: 'bob logs in again as b1 on another node (conflict)', async run(c) { await c.login('b1x', 'bob', 'b1', 0); } },
  { name: 'the new b1 becomes available', run(c) { c.send('b1x', presence(" id='c-p-b1x'", prio(3))); } },
  { name: 'bob unsubscribes from alice', run(c) { c.send('b2', presence(" to='alice@localhost' type='unsubscribe' id='c-s5'")); } },
  { name: 'bob cancels alice\'s subscription', run(c) { c.send('b2', presence(" to='alice@localhost' type='unsubscribed' id='c-s6'")); } },
  { name: 'a1 goes unavailable and logs out', async run(c) {
    c.send('a1', presence(" type='unavailable' id='c-u-a1'"));
    await c.logout('a1');
  } },
  { name: 'carol logs in again and gets the message kept offline', async run(c) {
    await c.login('c2', 'carol', 'c2', 1);
    c.send('c2', presence(" id='c-p-c2'"));
  } },
];

t.test('the IM script gives every client the same stanzas on three cluster nodes as on one gateway', async (t) => {
  const reference = await (async () => {
    const opts = await backends.options();
    const storage = await openPostgresStorage({ url: opts.databaseUrl });
    const server = await startServer({ STORAGE: 'postgres', DATABASE_URL: opts.databaseUrl, ...PLAIN }, storage);
    t.teardown(() => server.close());
    for (const name of USERS) await server.storage.users.create('localhost', name, await deriveStoredCredentials(`${name}-pw`, 4096));
    return playScript(t, [server], SCRIPT);
  })();
  const opts = await backends.options(PLAIN);
  const gateways = [];
  for (const id of ['n1', 'n2', 'n3']) gateways.push(await startGateway(t, id, opts));
  for (const name of USERS) await gateways[0]!.server.storage.users.create('localhost', name, await deriveStoredCredentials(`${name}-pw`, 4096));
  const clustered = await playScript(t, gateways.map((g) => g.server), SCRIPT, reference);
  for (const [i, { step, got }] of reference.entries()) {
    t.same(clustered[i]!.got, got, `step ${i + 1}: ${step}`);
  }
});

/**
 * Deleting an account with the CLI (another process, PostgreSQL) in a
 * cluster of two gateway processes: its contacts on either node drop to
 * subscription none (RFC 6121 §3.2, §3.3, as Prosody and ejabberd do), each
 * online resource gets one roster push (from its own node: every node
 * follows the change log for its own sessions; a node that holds a contact's
 * account for a session elsewhere pushes nothing), and an account made again
 * under the name, on either node, gets none of their presence.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import pg from 'pg';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LONG_LEASE, withGatewayCluster } from '../helpers/cluster.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { eventually } from '../helpers/eventually.js';
import { NS, type XmlElement } from '../../src/xml/index.js';

t.setTimeout(120_000);
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'xmpp-web-gateway.js');
const A = 'alice@localhost';

const cluster = await withGatewayCluster(t, { nodes: 2, env: { ALLOW_INSECURE_PLAIN: 'true', ...LONG_LEASE } });
const [n0, n1] = cluster.nodes as [NonNullable<(typeof cluster.nodes)[0]>, NonNullable<(typeof cluster.nodes)[1]>];
const root = t;

function cli(args: string[], input = ''): Promise<number | null> {
  const env = { PATH: process.env.PATH, STORAGE: 'postgres', DATABASE_URL: cluster.databaseUrl, XMPP_DOMAIN: 'localhost', SCRAM_ITERATIONS: '4096' };
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['pipe', 'ignore', 'inherit'] });
  child.stdin.end(input);
  return new Promise((resolve, reject) => { child.on('error', reject); child.on('close', resolve); });
}

let ids = 0;
async function roundTrip(c: RawWsClient): Promise<void> {
  const id = `ping${++ids}`;
  c.send(`<iq xmlns='jabber:client' type='get' id='${id}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await c.until((el) => el.attr('id') === id, 10_000);
}

/** Logged in, roster asked for and initial presence sent. */
async function online(t: Test, url: string, user: string, password: string, resource: string): Promise<RawWsClient> {
  const c = await RawWsClient.connect(url);
  t.teardown(() => c.ws.terminate());
  await c.login(user, password, resource);
  c.send(`<iq xmlns='jabber:client' type='get' id='roster'><query xmlns='${NS.ROSTER}'/></iq>`);
  await c.until((el) => el.attr('id') === 'roster', 10_000);
  c.send(`<presence xmlns='jabber:client'/>`);
  await roundTrip(c);
  return c;
}

const rosterItems = (el: XmlElement | undefined): XmlElement[] => el?.getChild('query', NS.ROSTER)?.getChildren().filter((c) => c.local === 'item') ?? [];
const pushesFor = (c: RawWsClient, jid: string): XmlElement[] =>
  c.frames.filter((el) => el.local === 'iq' && el.attr('type') === 'set' && rosterItems(el).some((i) => i.attr('jid') === jid));

let bob: RawWsClient;
let carol: RawWsClient;

t.test('setup: alice is subscribed both ways with bob and carol', async (t) => {
  for (const u of ['alice', 'bob', 'carol']) await cluster.addUser(u, `${u}-pw`);
  const db = new pg.Client({ connectionString: cluster.databaseUrl });
  await db.connect();
  t.teardown(() => db.end());
  const put = async (user: string, jid: string, version: number) => {
    await db.query("INSERT INTO roster_items (host, username, jid, name, subscription, ask, approved, groups) VALUES ('localhost', $1, $2, NULL, 'both', false, false, '[]')", [user, jid]);
    await db.query("INSERT INTO roster_versions (host, username, version) VALUES ('localhost', $1, $2) ON CONFLICT (host, username) DO UPDATE SET version = excluded.version", [user, version]);
  };
  await put('alice', 'bob@localhost', 10);
  await put('alice', 'carol@localhost', 11);
  await put('bob', A, 20);
  await put('carol', A, 30);
});

t.test('deleted with the CLI: the contacts on both nodes get one push each, and its unavailable presence', async (t) => {
  const alice = await online(t, n0.wsUrl, 'alice', 'alice-pw', 'laptop');
  bob = await online(root, n1.wsUrl, 'bob', 'bob-pw', 'desk'); // on the other node
  carol = await online(root, n0.wsUrl, 'carol', 'carol-pw', 'desk'); // on alice's node
  for (const c of [bob, carol]) {
    await eventually(() => c.frames.find((el) => el.local === 'presence' && el.attr('from') === `${A}/laptop` && el.attr('type') === undefined),
      { timeout: 10_000, message: "alice's presence" });
  }
  t.equal(await cli(['user', 'delete', A]), 0);
  await alice.waitClosed(10_000);
  for (const [name, c] of [['bob', bob], ['carol', carol]] as const) {
    const push = await eventually(() => pushesFor(c, A)[0], { timeout: 10_000, message: `a roster push for alice at ${name}` });
    t.equal(rosterItems(push)[0]!.attr('subscription'), 'none', `${name}: subscription none`);
    await eventually(() => c.frames.find((el) => el.local === 'presence' && el.attr('from') === `${A}/laptop` && el.attr('type') === 'unavailable'),
      { timeout: 10_000, message: `alice's unavailable presence at ${name}` });
  }
});

t.test('made again under the name, on either node: no presence of the old contacts, one push each in all', async (t) => {
  t.equal(await cli(['user', 'add', A], 'new-pw\n'), 0);
  for (const [node, resource] of [[n1, 'one'], [n0, 'two']] as const) {
    const alice = await online(t, node.wsUrl, 'alice', 'new-pw', resource);
    t.same(rosterItems(alice.frames.find((el) => el.attr('id') === 'roster')), [], `${node.id}: an empty roster`);
    for (const c of [bob, carol]) {
      c.send(`<presence xmlns='jabber:client'><status>${resource}</status></presence>`);
      c.send(`<message xmlns='jabber:client' to='${A}/${resource}' id='m-${resource}-${ids++}'><body>hi</body></message>`);
    }
    await eventually(() => alice.frames.filter((el) => el.local === 'message').length === 2 || undefined, { timeout: 10_000, message: 'both messages' });
    t.notOk(alice.frames.find((el) => el.local === 'presence' && /^(bob|carol)@localhost/.test(el.attr('from') ?? '')),
      `${node.id}: no presence of bob or carol reaches the new alice`);
    alice.ws.terminate();
  }
  for (const c of [bob, carol]) await roundTrip(c);
  t.equal(pushesFor(bob, A).length, 1, 'bob (whose account alice\'s node also held) was pushed once');
  t.equal(pushesFor(carol, A).length, 1, 'carol was pushed once');
});

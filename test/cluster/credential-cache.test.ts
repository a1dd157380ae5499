/**
 * Credentials kept in memory across a cluster (CREDENTIAL_CACHE_BYTES, on by
 * default): both nodes have read alice's credentials at a login; the
 * operator's CLI (another process, PostgreSQL only, no Redis) changes her
 * password, then deletes her. PostgreSQL's NOTIFY at the commit drops the
 * kept credentials on every node, with no poll interval in between: once a
 * node has it (its debug line `credentials-dropped`), the old password, then
 * the deleted account, is refused there. The NOTIFY reaches a node some time
 * after the CLI returned (on a loaded machine, after a login sent at once):
 * that bounded window is the design's (docs/ARCHITECTURE.md, `storage/`), so
 * each login waits for its node's notification instead of racing it.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import pg from 'pg';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LONG_LEASE, withGatewayCluster } from '../helpers/cluster.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { eventually } from '../helpers/eventually.js';
import { deriveStoredCredentials } from '../../src/storage/index.js';

t.setTimeout(300_000);
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'xmpp-web-gateway.js');

// debug: each node logs the notifications that dropped kept credentials.
const cluster = await withGatewayCluster(t, { nodes: 2, env: { LOG_LEVEL: 'debug', ...LONG_LEASE } });
const [n0, n1] = cluster.nodes as [NonNullable<(typeof cluster.nodes)[0]>, NonNullable<(typeof cluster.nodes)[1]>];

/** The real CLI against the cluster's database, as an operator runs it. */
function cli(args: string[], input = ''): Promise<number | null> {
  const env = { PATH: process.env.PATH, STORAGE: 'postgres', DATABASE_URL: cluster.databaseUrl, XMPP_DOMAIN: 'localhost', SCRAM_ITERATIONS: '4096' };
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['pipe', 'ignore', 'inherit'] });
  child.stdin.end(input);
  return new Promise((resolve, reject) => { child.on('error', reject); child.on('close', resolve); });
}

type Node = typeof n0;

/** Waits until `node` has logged the NOTIFY that dropped `user`'s kept credentials (each test changes its own user once). */
function notified(node: Node, user: string): Promise<unknown> {
  return eventually(() => node.events().some((e) => e.event === 'credentials-dropped' && e.account === `${user}@localhost`),
    { timeout: 60_000, message: `${node.id}: the NOTIFY that drops ${user}'s credentials` });
}

/** Logs in over WebSocket and leaves; 'ok' or the failure as the server answered it. */
async function login(url: string, user: string, password: string): Promise<string> {
  const c = await RawWsClient.connect(url);
  try {
    await c.login(user, password, 'probe');
    return 'ok';
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    c.ws.terminate();
  }
}

/** Adds `user`, whose credentials n1 then keeps (two logins there); returns a client of the database, as its administrator. */
async function keptOnN1(t: Test, user: string, password: string): Promise<pg.Client> {
  await cluster.addUser(user, password);
  for (let i = 0; i < 2; i++) t.equal(await login(n1.wsUrl, user, password), 'ok', `login ${i + 1}: ${user}'s credentials kept on ${n1.id}`);
  const admin = new pg.Client({ connectionString: cluster.databaseUrl });
  await admin.connect();
  t.teardown(() => admin.end());
  return admin;
}

t.test('a password changed with the CLI: the old one fails on each node once its NOTIFY is in, the new one works', async (t) => {
  await cluster.addUser('alice', 'old-secret');
  // Each node reads the credentials once, then keeps them.
  for (const node of [n0, n1]) for (let i = 0; i < 2; i++) t.equal(await login(node.wsUrl, 'alice', 'old-secret'), 'ok', `login ${i + 1} on ${node.id}`);
  t.equal(await cli(['user', 'passwd', 'alice@localhost'], 'new-secret\n'), 0);
  await Promise.all([notified(n0, 'alice'), notified(n1, 'alice')]);
  t.match(await login(n1.wsUrl, 'alice', 'old-secret'), /not-authorized/, `${n1.id}: the old password is refused`);
  t.match(await login(n0.wsUrl, 'alice', 'old-secret'), /not-authorized/, `${n0.id}: refused too`);
  // A session that logs in right after the change may still be ended with reset by the 500 ms poll of the change
  // log (features/account-changes.ts ends every session of the account): the new password is tried until one stays.
  t.ok(await eventually(async () => (await login(n1.wsUrl, 'alice', 'new-secret')) === 'ok', { timeout: 10_000, message: 'a login with the new password' }),
    'the new password logs in');
});

t.test('an account deleted with the CLI is refused on every node once its NOTIFY is in', async (t) => {
  await cluster.addUser('bob', 'bob-secret');
  for (const node of [n0, n1]) t.equal(await login(node.wsUrl, 'bob', 'bob-secret'), 'ok', `bob logs in on ${node.id}`);
  t.equal(await cli(['user', 'delete', 'bob@localhost']), 0);
  await Promise.all([notified(n0, 'bob'), notified(n1, 'bob')]);
  t.match(await login(n1.wsUrl, 'bob', 'bob-secret'), /not-authorized/, `${n1.id} refuses the deleted account`);
  t.match(await login(n0.wsUrl, 'bob', 'bob-secret'), /not-authorized/, `${n0.id} too`);
});

t.test("a password changed by an operator's UPDATE in SQL: the old one fails on the node that kept it, once its NOTIFY is in", async (t) => {
  const admin = await keptOnN1(t, 'frank', 'frank-secret');
  const before = Date.now();
  await admin.query('UPDATE users SET credentials = $1 WHERE host = $2 AND username = $3',
    [JSON.stringify(await deriveStoredCredentials('frank-new', 4096)), 'localhost', 'frank']);
  const { rows } = await admin.query<{ at: string }>("SELECT credentials_changed_at AS at FROM users WHERE username = 'frank'");
  t.ok(Number(rows[0]!.at) >= before, 'the UPDATE stamped the change of credentials (token logins before it are refused)');
  await notified(n1, 'frank');
  t.match(await login(n1.wsUrl, 'frank', 'frank-secret'), /not-authorized/, `${n1.id}: the old password is refused`);
  t.ok(await eventually(async () => (await login(n1.wsUrl, 'frank', 'frank-new')) === 'ok', { timeout: 10_000, message: 'a login with the new password' }),
    'the new password logs in');
});

t.test('the connection that listens for account changes dies: the log says so, and a change made meanwhile is not missed', async (t) => {
  const admin = await keptOnN1(t, 'carol', 'carol-secret');
  // What an operator's failover or a dropped TCP connection does to it: the backend ends under it.
  const killed = await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'");
  t.ok(killed.rowCount !== null && killed.rowCount >= 2, `the listening connections of both nodes ended (${killed.rowCount})`);
  const said = await eventually(() => n1.events().find((e) => e.event === 'storage-connection-error'), { timeout: 10_000, message: 'the failure in the log' });
  t.equal(said.level, 40, 'logged as a warning, as JSON');
  t.notMatch(JSON.stringify(said), /carol-secret|postgres(ql)?:\/\//, 'no password, no database URL in it');
  // Meanwhile the cache serves nothing; once it listens again it keeps credentials afresh: either way the change counts.
  t.equal(await cli(['user', 'passwd', 'carol@localhost'], 'carol-new\n'), 0);
  // The connection is opened again a second after it ended: if that was before the commit (a slow CLI on a loaded
  // machine), the change reaches n1 as a NOTIFY like any other, whose arrival a login must not race.
  const first = await login(n1.wsUrl, 'carol', 'carol-secret');
  if (first === 'ok') {
    t.comment(`${n1.id} listened again before the commit: its NOTIFY is awaited`);
    await notified(n1, 'carol');
    t.match(await login(n1.wsUrl, 'carol', 'carol-secret'), /not-authorized/, `${n1.id}: the old password is refused`);
  } else {
    t.match(first, /not-authorized/, `${n1.id}: the old password is refused`);
  }
});

t.test('with every NOTIFY held back, the change log bounds the window: a login with the old password meanwhile is ended, the next one is refused', async (t) => {
  const admin = await keptOnN1(t, 'dave', 'dave-secret');
  // Both nodes listen again (the test before ended their connections).
  const listening = async (): Promise<number[]> => (await admin.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %' AND state = 'idle'")).rows.map((r) => r.pid);
  const pids = await eventually(async () => { const p = await listening(); return p.length >= 2 ? p : undefined; }, { timeout: 30_000, message: 'both nodes listening' });
  // The listening backends stop: the commit's notification reaches no node (a slow delivery, at its worst).
  for (const pid of pids) process.kill(pid, 'SIGSTOP');
  const resume = (): void => { for (const pid of pids) try { process.kill(pid, 'SIGCONT'); } catch { /* gone */ } };
  t.teardown(resume);
  t.equal(await cli(['user', 'passwd', 'dave@localhost'], 'dave-new\n'), 0);
  const c = await RawWsClient.connect(n1.wsUrl);
  t.teardown(() => c.ws.terminate());
  const got = await c.login('dave', 'dave-secret', 'window').then(() => 'ok', (err: unknown) => String(err));
  if (got === 'ok') {
    t.comment('logged in with the old password before the change log was read');
    // At the next reading (500 ms), or AUTH_TIMEOUT later for a login whose check began before it (30 s).
    const end = await c.until((el) => el.local === 'error', 60_000);
    t.equal(streamErrorCondition(end), 'reset', 'the session that got in with the old password is ended (the password was changed)');
  } else {
    t.match(got, /not-authorized/, 'the change log was read first: the old password is refused');
  }
  t.match(await login(n1.wsUrl, 'dave', 'dave-secret'), /not-authorized/, `${n1.id}: the old password is refused, with no NOTIFY`);
  t.notOk(n1.events().some((e) => e.event === 'credentials-dropped' && e.account === 'dave@localhost'), 'none reached the node meanwhile');
  resume();
});

/** The TCP ports of the connections process `pid` holds (its sockets' inodes, found in /proc/net/tcp). */
function localPortsOf(pid: number): Set<number> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode) inodes.add(inode);
    } catch { /* closed meanwhile */ }
  }
  const ports = new Set<number>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && inodes.has(f[9]!)) ports.add(parseInt(f[1]!.split(':')[1]!, 16));
  }
  return ports;
}

t.test('a node whose database stalls (its connections open, nothing answering) stops taking the old password from memory once the change log is not read', async (t) => {
  const admin = await keptOnN1(t, 'erin', 'erin-secret');
  // A half-open connection at its worst: no FIN, no RST, no answer. Every backend serving n1 stops, its
  // listening one included (no NOTIFY, no error); the CLI's new connections, as another node's, are served.
  const pid = n1.pid();
  if (pid === undefined) throw new Error(`${n1.id} is not running`);
  const listening = async (): Promise<Array<{ pid: number; client_port: number; query: string }>> => (await admin.query<{ pid: number; client_port: number; query: string }>(
    'SELECT pid, client_port, query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()')).rows
    .filter((r) => localPortsOf(pid).has(r.client_port));
  const backends = await eventually(async () => { const b = await listening(); return b.some((r) => r.query.startsWith('LISTEN ')) ? b : undefined; },
    { timeout: 30_000, message: `${n1.id} listening` });
  for (const b of backends) process.kill(b.pid, 'SIGSTOP');
  const resume = (): void => { for (const b of backends) try { process.kill(b.pid, 'SIGCONT'); } catch { /* gone */ } };
  t.teardown(resume);
  t.equal(await cli(['user', 'passwd', 'erin@localhost'], 'erin-new\n'), 0, 'the password is changed through another connection');
  // Past the bound (the change log read every 500 ms; twice that without a reading), with room to spare.
  await new Promise((r) => setTimeout(r, 2000));
  const c = await RawWsClient.connect(n1.wsUrl);
  t.teardown(() => c.ws.terminate());
  await c.openStream();
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0erin\0erin-secret').toString('base64')}</auth>`);
  // Without a cache the login waits for the store, which answers once it runs again: with the new password.
  let answer = await c.next(5000).catch(() => undefined);
  if (!answer) {
    t.comment(`${n1.id} waits for its stalled database: it runs again`);
    resume();
    answer = await c.next(30_000);
  }
  t.equal(answer.local, 'failure', `${n1.id} does not take the old password from memory: ${answer.toString()}`);
  t.ok(answer.getChild('not-authorized'), 'not-authorized, as the store says');
  resume();
  t.ok(await eventually(async () => (await login(n1.wsUrl, 'erin', 'erin-new')) === 'ok', { timeout: 30_000, message: 'a login with the new password' }),
    `${n1.id} logs in with the new password once its database answers`);
});

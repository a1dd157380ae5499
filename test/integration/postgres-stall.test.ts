/**
 * The real process (`node dist/main.js`) on a PostgreSQL that stalls. Without bounds, node-postgres waits
 * for ever: a login behind a held lock hung until AUTH_TIMEOUT, a message for an offline account waited
 * with no answer, and a DATABASE_URL that accepts TCP but never answers hung the start. Now
 * DATABASE_STATEMENT_TIMEOUT cuts the statement: the login ends with <temporary-auth-failure/>
 * (RFC 6120 §6.5.12, a server-side problem, not the client's credentials), the message is bounced
 * with internal-server-error, and once the lock is gone both work; DATABASE_CONNECT_TIMEOUT stops the
 * start naming DATABASE_URL. Every connection of the process has TCP keepalive.
 */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { deriveStoredCredentials, openPostgresStorage } from '../../src/storage/index.js';
import { ensureBuilt, MAIN, mainExit, spawnMain } from '../helpers/built.js';
import { waitUntil } from '../helpers/eventually.js';
import { holdLock, startPostgres } from '../helpers/postgres.js';
import { plain, scramFirst } from '../helpers/scram-client.js';
import { MANY_CLIENTS, PRE_SASL2 } from '../helpers/server.js';
import { availableWs, RawWsClient, stanzaErrorCondition } from '../helpers/ws-client.js';

t.setTimeout(240_000);
t.before(() => ensureBuilt(MAIN));

const STATEMENT_MS = 1000;
/** Far beyond the bound (the statement's, the client's grace after it, a loaded machine), far below AUTH_TIMEOUT. */
const ANSWER_MS = 20_000;

const postgres = await startPostgres();
t.teardown(() => postgres.stop());
const url = await postgres.createDatabase();
{
  const setup = await openPostgresStorage({ url });
  for (const user of ['alice', 'bob', 'carol']) await setup.users.create('localhost', user, await deriveStoredCredentials(`${user}-pw`, 4096));
  await setup.close();
}

/** The real process; its WebSocket URL once it serves, and its log. */
async function serve(t: Test, env: Record<string, string>): Promise<{ pid: number; wsUrl: string }> {
  const { child } = spawnMain(t, t.testdir(), { ADMIN_SOCKET: 'off', SCRAM_ITERATIONS: '4096', ...PRE_SASL2, ...MANY_CLIENTS, ...env });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
  const lines = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  await waitUntil(() => lines().some((l) => l.event === 'listening') || child.exitCode !== null, { timeout: 60_000, message: `the server to listen\n${out}` });
  const line = lines().find((l) => typeof l.msg === 'string' && l.msg.startsWith('Server listening at http://127.0.0.1:'));
  if (!line) throw new Error(`the server did not start:\n${out}`);
  return { pid: child.pid!, wsUrl: `${(line.msg as string).replace('Server listening at http', 'ws')}/xmpp-websocket` };
}

const server = await serve(t, {
  STORAGE: 'postgres', DATABASE_URL: url, DATABASE_STATEMENT_TIMEOUT: String(STATEMENT_MS), ALLOW_INSECURE_PLAIN: 'true', AUTH_TIMEOUT: '120',
});
const condition = (el: XmlElement): string | undefined => el.getChildren().find((c) => c.local !== 'text')?.local;

/** The server's answer to `auth` (an <auth/> element) on a fresh stream. */
async function answerTo(t: Test, auth: string): Promise<XmlElement> {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.ws.terminate());
  await c.openStream();
  c.send(auth);
  return c.next(ANSWER_MS);
}

t.test('a login whose credentials cannot be read (the users table locked) ends with temporary-auth-failure; after the lock it works', async (t) => {
  const lock = await holdLock(t, url, 'LOCK TABLE users IN ACCESS EXCLUSIVE MODE');
  for (const [mechanism, first] of [['PLAIN', plain('alice', 'alice-pw')], ['SCRAM-SHA-256', scramFirst('carol').message]] as const) {
    const answer = await answerTo(t, `<auth xmlns='${NS.SASL}' mechanism='${mechanism}'>${first}</auth>`);
    t.ok(answer.is('failure', NS.SASL), `${mechanism}: the exchange ends: ${answer.toString()}`);
    t.equal(condition(answer), 'temporary-auth-failure', `${mechanism}: a server-side problem, not not-authorized`);
  }
  await lock.release();
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.ws.terminate());
  t.match(await c.login('alice', 'alice-pw', 'desk'), /^alice@localhost\/desk$/, 'the same login works once the lock is released');
});

t.test('a message for an offline account whose store is locked is bounced with internal-server-error; after the lock it is kept', async (t) => {
  const alice = await availableWs(t, server.wsUrl, 'alice', 'offline-sender');
  const lock = await holdLock(t, url, 'LOCK TABLE offline_counters IN ACCESS EXCLUSIVE MODE');
  alice.send("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='lost'><body>while stalled</body></message>");
  const bounce = await alice.until((el) => el.local === 'message' && el.attr('id') === 'lost', ANSWER_MS);
  t.equal(bounce.attr('type'), 'error', 'the sender is told, not left waiting');
  t.equal(stanzaErrorCondition(bounce), 'internal-server-error');
  await lock.release();
  alice.send("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='kept'><body>after</body></message>");
  const bob = await availableWs(t, server.wsUrl, 'bob', 'later');
  const got = await bob.until((el) => el.local === 'message' && el.getChildText('body') !== undefined, ANSWER_MS);
  t.equal(got.attr('id'), 'kept', 'the message sent after the lock was kept offline and delivered; the bounced one was not');
});

t.test('every PostgreSQL connection of the process has TCP keepalive', async (t) => {
  const port = new URL(url).port;
  // ss shows each socket's timer: keepalive once SO_KEEPALIVE is set, and none on an idle socket without it. A socket
  // with unacknowledged data shows its retransmission timer instead (`timer:(on,…)`, seen in CI) for a few ms, so the
  // sockets are read again until none has data in flight. The pool's and the listener's connections are open (a login just read).
  const read = () => execFileSync('ss', ['-tnpoH', 'state', 'established', `( dport = :${port} )`], { encoding: 'utf8' })
    .split('\n').filter((l) => l.includes(`pid=${server.pid},`));
  let sockets = read();
  await waitUntil(() => !(sockets = read()).some((s) => /timer:\(on,/.test(s)), { timeout: 5000, message: 'no data in flight' });
  t.ok(sockets.length >= 2, `the pool's and the listener's connections (${sockets.length})`);
  for (const s of sockets) t.match(s, /timer:\(keepalive,/, s);
});

t.test('a DATABASE_URL that accepts connections and never answers stops the start after DATABASE_CONNECT_TIMEOUT, naming DATABASE_URL', async (t) => {
  const held: Socket[] = [];
  const silent = createServer((s) => { held.push(s); }).listen(0, '127.0.0.1');
  await new Promise((r) => silent.once('listening', r));
  t.teardown(() => { for (const s of held) s.destroy(); silent.close(); });
  const { port } = silent.address() as { port: number };
  const { code, stderr } = await mainExit(t, t.testdir(), {
    ADMIN_SOCKET: 'off', STORAGE: 'postgres', DATABASE_URL: `postgres://xwg:secret@127.0.0.1:${port}/xwg`, DATABASE_CONNECT_TIMEOUT: '1000',
  }, 60_000);
  t.equal(code, 2, `the configuration errors' exit code: ${stderr}`);
  t.match(stderr, /configuration error: DATABASE_URL: cannot open the PostgreSQL database: .*timeout/);
  t.notMatch(stderr, /secret/, 'the password is not echoed');
});

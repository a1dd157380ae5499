/**
 * Deleting an account or changing its password with the CLI (another
 * process, the same SQLite file) ends its sessions on the running server
 * within a second: a hostile review found they went on, so a stolen
 * session outlived the password change meant to stop it.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NS } from '../../src/xml/index.js';
import { openSqliteStorage } from '../../src/storage/index.js';
import { deriveStoredCredentials } from '../../src/storage/credentials.js';
import { withServer } from '../helpers/server.js';
import { scramFinal, scramFirst } from '../helpers/scram-client.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { holdChangeLog, holdResult } from '../helpers/change-log.js';
import { authenticate, htResponse, plainResponse } from '../helpers/sasl2.js';
import { SignJWT } from 'jose';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'xmpp-web-gateway.js');
const SM = 'urn:xmpp:sm:3';
const dir = t.testdir();
const dataDir = join(dir, 'data');
const storage = openSqliteStorage(dataDir);
const JWT_SECRET = 'a-web-app-secret-of-at-least-32-characters';
// AUTH_TIMEOUT: how long after a change its account is read again (the last tests). SASL2 and JWT_SECRET: token logins.
const server = await withServer(t, { ALLOW_INSECURE_PLAIN: 'true', DATA_DIR: dataDir, AUTH_TIMEOUT: '3', SASL2_ENABLED: 'true', JWT_SECRET }, storage);
const AGENT = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';

/** The real CLI, as an operator runs it beside the server. */
function cli(args: string[], input = ''): Promise<number | null> {
  const env = { PATH: process.env.PATH, DATA_DIR: dataDir, XMPP_DOMAIN: 'localhost', SCRAM_ITERATIONS: '4096' };
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['pipe', 'ignore', 'inherit'] });
  child.stdin.end(input);
  return new Promise((resolve, reject) => { child.on('error', reject); child.on('close', resolve); });
}

async function online(t: Test, user: string, password: string, resource: string): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.ws.terminate());
  await c.login(user, password, resource);
  return c;
}

/** Logs in with SCRAM-SHA-256 (not PLAIN) and binds `resource`. */
async function onlineScram(t: Test, user: string, password: string, resource: string): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.ws.terminate());
  await c.openStream();
  const first = scramFirst(user);
  c.send(`<auth xmlns='${NS.SASL}' mechanism='SCRAM-SHA-256'>${first.message}</auth>`);
  const challenge = await c.next();
  c.send(`<response xmlns='${NS.SASL}'>${scramFinal(first, challenge.text(), password)}</response>`);
  if ((await c.next()).local !== 'success') throw new Error('SCRAM login failed');
  await c.openStream();
  c.send(`<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='${NS.BIND}'><resource>${resource}</resource></bind></iq>`);
  if (!(await c.next()).getChild('bind', NS.BIND)) throw new Error('bind failed');
  return c;
}

/** A ping round trip: the session is still served (not ended by a stream error). */
async function served(c: RawWsClient, id: string): Promise<boolean> {
  c.send(`<iq xmlns='jabber:client' type='get' id='${id}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  // After a SASL2 login the stream features come first (XEP-0388 §2.6): they are passed over.
  const answer = await c.until((el) => el.attr('id') === id || el.is('error', NS.STREAM));
  return answer.attr('type') === 'result';
}

/** A session with resumable stream management whose socket then dies: it hibernates. */
async function hibernating(t: Test, user: string, password: string): Promise<string> {
  const c = await online(t, user, password, 'sleeper');
  c.send(`<enable xmlns='${SM}' resume='true'/>`);
  const smid = (await c.until((el) => el.local === 'enabled')).attr('id')!;
  c.ws.terminate();
  return smid;
}

/** Authenticates as `user` (no bind) and tries to resume `smid`: the answer's condition, or 'resumed'. */
async function resumeAs(user: string, password: string, smid: string): Promise<string | undefined> {
  const c = await RawWsClient.connect(server.wsUrl);
  try {
    await c.openStream();
    c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString('base64')}</auth>`);
    if ((await c.next()).local !== 'success') return 'auth failed';
    await c.openStream();
    c.send(`<resume xmlns='${SM}' previd='${smid}' h='0'/>`);
    const answer = await c.until((el) => el.ns === SM);
    return answer.local === 'failed' ? answer.getChildren()[0]?.local : answer.local;
  } finally {
    c.ws.terminate();
  }
}

t.test('setup', async (t) => {
  t.equal(await cli(['user', 'add', 'alice@localhost'], 'alice-secret\n'), 0);
  t.equal(await cli(['user', 'add', 'bob@localhost'], 'bob-secret\n'), 0);
  t.equal(await cli(['user', 'add', 'carol@localhost'], 'carol-secret\n'), 0);
});

t.test('a password changed with the CLI ends the live and the hibernating sessions with reset', async (t) => {
  const live = await online(t, 'alice', 'alice-secret', 'laptop');
  const smid = await hibernating(t, 'alice', 'alice-secret');
  const started = Date.now();
  t.equal(await cli(['user', 'passwd', 'alice@localhost'], 'a-new-secret\n'), 0);
  const error = await live.until((el) => el.local === 'error' && el.ns === NS.STREAM, 5000);
  t.equal(streamErrorCondition(error), 'reset', 'RFC 6120 §4.9.3.16: security-critical state has changed');
  t.ok(Date.now() - started < 5000, 'soon after the change');
  t.equal(await resumeAs('alice', 'a-new-secret', smid), 'item-not-found', 'nobody resumes the hibernating session, not even its owner');
  const again = await online(t, 'alice', 'a-new-secret', 'laptop');
  t.ok(again, 'the new password logs in');
});

t.test('an account deleted with the CLI loses its sessions with not-authorized', async (t) => {
  const live = await online(t, 'bob', 'bob-secret', 'phone');
  t.equal(await cli(['user', 'delete', 'bob@localhost']), 0);
  const error = await live.until((el) => el.local === 'error' && el.ns === NS.STREAM, 5000);
  t.equal(streamErrorCondition(error), 'not-authorized');
  t.match(error.toString(), /the account was deleted/);
});

t.test("another account's sessions are not touched", async (t) => {
  const carol = await online(t, 'carol', 'carol-secret', 'desk');
  t.equal(await cli(['user', 'passwd', 'alice@localhost'], 'third-secret\n'), 0);
  await new Promise((r) => setTimeout(r, 1200));
  carol.send(`<iq xmlns='jabber:client' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const pong = await carol.until((el) => el.attr('id') === 'p1');
  t.equal(pong.attr('type'), 'result', 'carol is still served');
});

t.test('a login with the new password right after the change is not ended with the sessions from before it', async (t) => {
  t.equal(await cli(['user', 'add', 'dave@localhost'], 'dave-old\n'), 0);
  const before = await online(t, 'dave', 'dave-old', 'old');
  // The logins below come before the server's next reading of the change log (every 500 ms), which used to
  // end them too: the reading is held until they are in.
  const hold = holdChangeLog(storage.users);
  await storage.users.setCredentials('localhost', 'dave', await deriveStoredCredentials('dave-new', 4096));
  const plain = await online(t, 'dave', 'dave-new', 'plain');
  const scram = await onlineScram(t, 'dave', 'dave-new', 'scram');
  await hold.release();
  const error = await before.until((el) => el.local === 'error' && el.ns === NS.STREAM, 5000);
  t.equal(streamErrorCondition(error), 'reset', 'the session from before the change is ended');
  t.ok(await served(plain, 'd1'), 'the PLAIN login with the new password goes on');
  t.ok(await served(scram, 'd2'), 'the SCRAM login with the new password goes on');
});

t.test('an account deleted and created again: the logins to the new account stay, the old one ends', async (t) => {
  t.equal(await cli(['user', 'add', 'erin@localhost'], 'erin-secret\n'), 0);
  const before = await online(t, 'erin', 'erin-secret', 'old');
  const hold = holdChangeLog(storage.users);
  await storage.users.delete('localhost', 'erin');
  await storage.users.create('localhost', 'erin', await deriveStoredCredentials('erin-secret', 4096));
  const after = await online(t, 'erin', 'erin-secret', 'new');
  await hold.release();
  const error = await before.until((el) => el.local === 'error' && el.ns === NS.STREAM, 5000);
  t.equal(streamErrorCondition(error), 'not-authorized', 'the same password, but another account: its salt differs');
  t.ok(await served(after, 'e1'), 'the login to the account as it is now goes on');
});

t.test('a SCRAM exchange that read the old credentials and succeeds after the change is ended too', async (t) => {
  await storage.users.create('localhost', 'frank', await deriveStoredCredentials('frank-old', 4096));
  const witness = await online(t, 'frank', 'frank-old', 'witness');
  const late = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => late.ws.terminate());
  await late.openStream();
  const first = scramFirst('frank');
  late.send(`<auth xmlns='${NS.SASL}' mechanism='SCRAM-SHA-256'>${first.message}</auth>`);
  const challenge = await late.next();
  t.ok(challenge.is('challenge', NS.SASL), 'the server read the old credentials');
  await storage.users.setCredentials('localhost', 'frank', await deriveStoredCredentials('frank-new', 4096));
  const error = await witness.until((el) => el.local === 'error' && el.ns === NS.STREAM, 5000);
  t.equal(streamErrorCondition(error), 'reset', 'the change has been acted on');
  late.send(`<response xmlns='${NS.SASL}'>${scramFinal(first, challenge.text(), 'frank-old')}</response>`);
  t.equal((await late.next()).local, 'success', 'the old password still completes the exchange it began');
  await boundThenEnded(t, late, 'reset');
});

/** `late`'s stream, authenticated, restarted and bound; then ended with `condition` at the recheck. */
async function boundThenEnded(t: Test, late: RawWsClient, condition: string): Promise<void> {
  await late.openStream();
  late.send(`<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='${NS.BIND}'><resource>late</resource></bind></iq>`);
  t.ok((await late.next()).getChild('bind', NS.BIND), 'bound');
  await endedAtRecheck(t, late, condition);
}

/** `late` ends with `condition` when the account is read again (AUTH_TIMEOUT after the change). */
async function endedAtRecheck(t: Test, late: RawWsClient, condition: string): Promise<void> {
  const ended = await late.until((el) => el.local === 'error' && el.ns === NS.STREAM, 10_000);
  t.equal(streamErrorCondition(ended), condition, 'ended when the account is read again (AUTH_TIMEOUT after the change)');
}

t.test('a hibernating session resumed with the new password right after the change goes on', async (t) => {
  await storage.users.create('localhost', 'gina', await deriveStoredCredentials('gina-old', 4096));
  const smid = await hibernating(t, 'gina', 'gina-old');
  // The resumption comes before the server reads the change (held until then), as one within 500 ms of it can.
  const hold = holdChangeLog(storage.users);
  await storage.users.setCredentials('localhost', 'gina', await deriveStoredCredentials('gina-new', 4096));
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.ws.terminate());
  await c.authenticate('gina', 'gina-new');
  c.send(`<resume xmlns='${SM}' previd='${smid}' h='0'/>`);
  t.equal((await c.until((el) => el.ns === SM)).local, 'resumed', 'resumed with the new password, before the change was read');
  await hold.release();
  t.ok(await served(c, 'g1'), 'the session resumed by a login with the new password goes on, as a new login would');
});

/** A connection whose stream is open and whose SASL2 <authenticate/> (a token login) has been sent. */
async function authenticating(t: Test, el: string): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.ws.terminate());
  await c.openStream();
  c.send(el);
  return c;
}

/** A SASL2 PLAIN login asking for a FAST token: the connection, bound as `tag`, and the token. */
async function withFastToken(t: Test, user: string, password: string, tag: string): Promise<{ c: RawWsClient; token: string }> {
  const c = await authenticating(t, authenticate({ mechanism: 'PLAIN', initial: plainResponse(user, password), agent: AGENT, bind: { tag }, requestToken: true }).toString());
  const success = await c.next();
  const token = success.getChild('token', NS.FAST)?.attr('token');
  if (!token) throw new Error(`no FAST token: ${success.toString()}`);
  return { c, token };
}

/** A FAST login (HT-SHA-256-NONE) with `token`, bound as `tag`: sent, not yet answered. */
const fastLogin = (t: Test, user: string, token: string, tag: string): Promise<RawWsClient> =>
  authenticating(t, authenticate({ mechanism: 'HT-SHA-256-NONE', initial: htResponse(user, token), agent: AGENT, fast: true, bind: { tag } }).toString());

t.test('a FAST login that read its token before the change and succeeds after it was acted on is ended too', async (t) => {
  await storage.users.create('localhost', 'hank', await deriveStoredCredentials('hank-old', 4096));
  const { c: witness, token } = await withFastToken(t, 'hank', 'hank-old', 'witness');
  // The token is read, then the change (which ends the account's tokens) is made and acted on before the login completes.
  const held = holdResult(storage.fastTokens, 'find');
  const late = await fastLogin(t, 'hank', token, 'late');
  await held.ran;
  await storage.users.setCredentials('localhost', 'hank', await deriveStoredCredentials('hank-new', 4096));
  const error = await witness.until((el) => el.local === 'error' && el.ns === NS.STREAM, 5000);
  t.equal(streamErrorCondition(error), 'reset', 'the change has been acted on');
  held.release();
  t.ok((await late.next()).is('success', NS.SASL2), 'the token read before the change still logs in');
  // A token issued after the change, used after it was read: that login saw the store as the change left it.
  const fresh = await withFastToken(t, 'hank', 'hank-new', 'fresh');
  const after = await fastLogin(t, 'hank', fresh.token, 'after');
  t.ok((await after.next()).is('success', NS.SASL2), 'a token issued after the change logs in');
  await endedAtRecheck(t, late, 'reset');
  t.ok(await served(after, 'h1'), 'the token login begun after the change was read goes on (the same reading judged it)');
  t.ok(await served(fresh.c, 'h2'), 'so does the password login with the new password');
});

t.test('a JWT login that read the account before its deletion and succeeds after it was acted on is ended too', async (t) => {
  await storage.users.create('localhost', 'ivy', await deriveStoredCredentials('ivy-secret', 4096));
  const witness = await online(t, 'ivy', 'ivy-secret', 'witness');
  const jwt = await new SignJWT({ jid: 'ivy@localhost', exp: Math.floor(Date.now() / 1000) + 300 })
    .setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(JWT_SECRET));
  // The login reads the account (it exists), then it is deleted and the deletion acted on before the login completes.
  const held = holdResult(storage.users, 'get', (_account, [, username]) => username === 'ivy');
  const late = await authenticating(t, `<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plainResponse('ivy', jwt)}</auth>`);
  await held.ran;
  await storage.users.delete('localhost', 'ivy');
  const error = await witness.until((el) => el.local === 'error' && el.ns === NS.STREAM, 5000);
  t.equal(streamErrorCondition(error), 'not-authorized', 'the deletion has been acted on');
  held.release();
  t.equal((await late.next()).local, 'success', 'the token logs in the account it read');
  await boundThenEnded(t, late, 'not-authorized');
});

/** A server of its own (it is ended) with an account `user`, and what it logs at warn and above. */
async function serverToEnd(t: Test, user: string, env: Record<string, string> = {}) {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done(); } });
  const ownDir = join(dir, `ending-${user}`);
  const own = openSqliteStorage(ownDir);
  const ending = await withServer(t, { DATA_DIR: ownDir, ...env }, own, { logger: { level: 'warn', stream: sink } });
  await own.users.create('localhost', user, await deriveStoredCredentials(`${user}-old`, 4096));
  const changeLogLines = () => lines.filter((l) => String(l.msg).startsWith('account changes')).map((l) => l.msg);
  return { own, ending, changeLogLines };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

t.test("a reading of the change log under way at the server's end does nothing after it", async (t) => {
  const { own, ending, changeLogLines } = await serverToEnd(t, 'judy');
  const hold = holdChangeLog(own.users);
  await own.users.setCredentials('localhost', 'judy', await deriveStoredCredentials('judy-new', 4096));
  await hold.held;
  // The module is disposed and the store closed while the reading waits; then it goes on, and fails.
  await ending.close();
  await hold.open();
  await turn();
  t.same(changeLogLines(), [], 'nothing logged once disposed');
});

t.test("a reading of the change log that returned at the server's end sets no recheck after it", async (t) => {
  // AUTH_TIMEOUT 7: the recheck's timer is the one of 7000 ms (no connection here waits to authenticate).
  const { own, ending, changeLogLines } = await serverToEnd(t, 'kim', { AUTH_TIMEOUT: '7' });
  // The reading that has the change: its result waits until the module is disposed and the store closed.
  const held = holdResult(own.users, 'changesSince', (read) => read.changes.length > 0);
  await own.users.setCredentials('localhost', 'kim', await deriveStoredCredentials('kim-new', 4096));
  await held.ran;
  await ending.close();
  const set: number[] = [];
  const setTimeoutBefore = globalThis.setTimeout;
  globalThis.setTimeout = ((fn: () => void, ms?: number) => { set.push(ms ?? 0); return setTimeoutBefore(fn, ms); }) as typeof setTimeout;
  try {
    held.release();
    await turn();
  } finally {
    globalThis.setTimeout = setTimeoutBefore;
  }
  t.notOk(set.includes(7000), 'no recheck timer set once disposed');
  t.same(changeLogLines(), [], 'nothing logged');
});

/**
 * The admin CLI against a running server: a real port, a real admin socket,
 * real clients on the wire, and the built CLI in a child process.
 */
import t from 'tap';
import { createConnection } from 'node:net';
import { lstatSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { NS } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { RawBoshClient, payloads } from '../helpers/bosh-client.js';
import { SmPeer, chat, routed } from '../helpers/sm-peer.js';
import { eventually } from '../helpers/eventually.js';
import { privateDir, runCli } from '../helpers/admin-cli.js';
import { baseline } from '../helpers/metrics-text.js';
import type { SessionInfo } from '../../src/admin/port.js';

const dataDir = privateDir(t);
const socket = join(dataDir, 'admin.sock');
const env = { DATA_DIR: dataDir };
const server = await withUsers(t, ['alice', 'bob', 'carol', 'dave'], {
  ALLOW_INSECURE_PLAIN: 'true', XMPP_DOMAIN: 'localhost,other.example',
}, undefined, { adminSocket: socket });
await server.addUser('olga', 'olga-pw', 'other.example');

const list = async (): Promise<SessionInfo[]> => {
  const run = await runCli(['sessions', 'list', '--json'], env);
  if (run.code !== 0) throw new Error(`sessions list failed: ${run.stderr}`);
  return JSON.parse(run.stdout) as SessionInfo[];
};

t.test('the admin socket is a socket only its owner may open', async (t) => {
  const stat = lstatSync(socket);
  t.ok(stat.isSocket());
  t.equal(stat.mode & 0o777, 0o600);
  t.equal(statSync(dataDir).mode & 0o077, 0, 'its directory is private too');
});

t.test('sessions list shows a client with its transport, IP and state, then hibernating once its socket is cut', async (t) => {
  const peer = await SmPeer.login(server.wsUrl, 'alice', 'alice-pw', 'laptop', { autoAck: false });
  t.teardown(() => peer.c.ws.terminate());
  peer.c.send(chat('alice@localhost/laptop', 'to-self'));
  await peer.c.until((el) => el.local === 'message');
  const mine = (sessions: SessionInfo[]) => sessions.find((s) => s.jid === 'alice@localhost/laptop');
  const bound = mine(await list());
  t.match(bound, { transport: 'websocket', ip: '127.0.0.1', state: 'bound', unacked: 1 }, 'the unacked message is the SM queue');

  const table = await runCli(['sessions', 'list'], env);
  t.equal(table.code, 0);
  const header = table.stdout.split('\n')[0]!;
  const row = table.stdout.split('\n').find((l) => l.startsWith('alice@localhost/laptop'))!;
  t.match(header, /^JID\s+TRANSPORT\s+IP\s+STATE\s+AGE\s+UNACKED$/);
  t.equal(row.indexOf('websocket'), header.indexOf('TRANSPORT'), 'the columns are aligned');
  t.match(row, /websocket\s+127\.0\.0\.1\s+bound\s+\d+s\s+1$/);

  peer.c.ws.terminate();
  const hibernating = await eventually(async () => {
    const s = mine(await list());
    return s?.state === 'hibernating' ? s : undefined;
  });
  t.equal(hibernating.unacked, 1);
  await runCli(['sessions', 'kick', 'alice@localhost'], env);
});

t.test('kick ends the session with the chosen stream error on the wire, and it cannot be resumed', async (t) => {
  const peer = await SmPeer.login(server.wsUrl, 'bob', 'bob-pw', 'phone', { autoAck: true });
  t.teardown(() => peer.c.ws.terminate());
  const delta = await baseline(server);
  const run = await runCli(['sessions', 'kick', 'bob@localhost', '--condition', 'conflict'], env);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /ended 1 session of bob@localhost with conflict/);
  const error = await peer.c.until((el) => el.is('error', NS.STREAM));
  t.equal(streamErrorCondition(error), 'conflict');
  await peer.c.until((el) => el.is('close', NS.FRAMING)); // RFC 7395 §3.6: the error, then <close/>
  // An operator's kick is counted as such, whatever condition it carried (not as a resource conflict).
  await eventually(async () => (await delta('xmpp_sessions_ended_total', { transport: 'websocket', reason: 'kicked' })) === 1 || undefined);
  t.equal(await delta('xmpp_sessions_ended_total', { transport: 'websocket', reason: 'conflict' }), 0);
  const { answer } = await SmPeer.resume(server.wsUrl, 'bob', 'bob-pw', peer.smid!, { autoAck: false, h: peer.h });
  t.ok(answer.is('failed', NS.SM), `resumption is refused: ${answer.toString()}`);
  t.ok(answer.getChild('item-not-found', NS.STANZAS));
  t.notOk((await list()).some((s) => s.jid?.startsWith('bob@')), 'nothing of bob is left');
});

t.test('kick ends a hibernating session too, so it cannot be resumed later', async (t) => {
  const peer = await SmPeer.login(server.wsUrl, 'bob', 'bob-pw', 'tablet', { autoAck: true });
  peer.c.ws.terminate();
  await eventually(async () => (await list()).some((s) => s.jid === 'bob@localhost/tablet' && s.state === 'hibernating'));
  const run = await runCli(['sessions', 'kick', 'bob@localhost/tablet'], env);
  t.equal(run.code, 0, run.stderr);
  const { peer: again, answer } = await SmPeer.resume(server.wsUrl, 'bob', 'bob-pw', peer.smid!, { autoAck: false });
  t.teardown(() => again.c.ws.terminate());
  t.ok(answer.is('failed', NS.SM));
});

t.test('kick refuses a condition RFC 6120 does not define, and says when nobody is there', async (t) => {
  const bad = await runCli(['sessions', 'kick', 'bob@localhost', '--condition', 'go-away'], env);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /not an RFC 6120 stream error condition.*policy-violation/s);
  const nobody = await runCli(['sessions', 'kick', 'nobody@localhost'], env);
  t.equal(nobody.code, 3);
  t.match(nobody.stderr, /no session of nobody@localhost/);
});

t.test('stats counts sessions by transport and state, and messages in', async (t) => {
  const before = JSON.parse((await runCli(['stats', '--json'], env)).stdout);
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.ws.terminate());
  await c.login('carol', 'carol-pw', 'desk');
  c.send(chat('dave@localhost', 'm1'));
  c.send(chat('dave@localhost', 'm2'));
  await routed(c, 'p1');
  const after = JSON.parse((await runCli(['stats', '--json'], env)).stdout);
  t.equal(after.messages.in - before.messages.in, 2);
  t.equal(after.sessions.websocket.bound, (before.sessions.websocket?.bound ?? 0) + 1);
  t.equal(after.storage, 'sqlite', 'STORAGE as configured');
  t.ok(after.uptimeSeconds >= before.uptimeSeconds);
  const text = await runCli(['stats'], env);
  t.match(text.stdout, /messages in: \d+/);
  t.match(text.stdout, /websocket\s+bound\s+\d+/);
});

t.test('announce reaches the online resources of one host, over WebSocket and BOSH, and not another host', async (t) => {
  const ws = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => ws.ws.terminate());
  await ws.login('dave', 'dave-pw', 'ws');
  ws.send("<presence xmlns='jabber:client'/>");
  await ws.until((el) => el.local === 'presence');
  const bosh = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => bosh.destroy());
  await bosh.login('carol', 'carol-pw', 'bosh');
  await bosh.send({}, (await import('../../src/xml/index.js')).x('presence', { xmlns: 'jabber:client' }));
  const other = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => other.ws.terminate());
  await other.login('olga', 'olga-pw', 'web', 'other.example');
  other.send("<presence xmlns='jabber:client'/>");
  await other.until((el) => el.local === 'presence');

  const run = await runCli(['announce', 'localhost', '--subject', 'Maintenance'], env, 'Back in 5 minutes.\nThanks!\n');
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /announced to 2 online resources on localhost/);
  const isHeadline = (el: { local: string; attr(n: string): string | undefined }) => el.local === 'message' && el.attr('type') === 'headline';
  const got = await ws.until(isHeadline);
  t.equal(got.attr('from'), 'localhost');
  t.equal(got.getChildText('subject'), 'Maintenance');
  t.equal(got.getChildText('body'), 'Back in 5 minutes.\nThanks!');
  const overBosh = await eventually(async () => payloads((await bosh.send()).body).find(isHeadline));
  t.equal(overBosh.getChildText('body'), 'Back in 5 minutes.\nThanks!');
  other.send("<iq xmlns='jabber:client' type='get' to='other.example' id='after'><ping xmlns='urn:xmpp:ping'/></iq>");
  await other.until((el) => el.attr('id') === 'after');
  t.notOk(other.frames.some(isHeadline), "another host's users get nothing");

  const unknown = await runCli(['announce', 'elsewhere.example', 'hi'], env);
  t.equal(unknown.code, 3);
});

t.test('a request line over the bound is refused and closed, and the server keeps serving', async (t) => {
  const conn = createConnection(socket);
  const chunks: Buffer[] = [];
  conn.on('data', (b: Buffer) => chunks.push(b));
  const closed = new Promise((resolve) => conn.once('close', resolve));
  conn.write(Buffer.alloc(70 * 1024, 'a'));
  await closed;
  const answer = JSON.parse(Buffer.concat(chunks).toString().trim());
  t.match(answer, { ok: false, error: { condition: 'policy-violation' } });
  const still = await runCli(['stats'], env);
  t.equal(still.code, 0);
  const junk = await runCli(['sessions', 'list'], { DATA_DIR: dataDir, ADMIN_SOCKET: join(dataDir, 'absent.sock') });
  t.equal(junk.code, 2);
  t.match(junk.stderr, new RegExp(`nothing answers on ${join(dataDir, 'absent.sock')}`));
});

t.test('a stale socket left by a crash is replaced; a live one or a regular file is not', async (t) => {
  const dir = privateDir(t);
  const path = join(dir, 'admin.sock');
  // A process that dies by SIGKILL never removes its socket.
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  t.ok(lstatSync(path).isSocket(), 'the stale socket is there');
  const { startAdminSocket } = await import('../../src/admin/server.js');
  const port = { listSessions: () => [], kick: () => 0, stats: async () => { throw new Error('unused'); }, announce: async () => 0, backup: async () => '' };
  const log = { info() {}, warn() {}, error() {}, debug() {} } as never;
  const admin = await startAdminSocket(path, port, log);
  t.equal(lstatSync(path).mode & 0o777, 0o600);
  await t.rejects(startAdminSocket(path, port, log), /another server answers/);
  await admin.close();
  t.throws(() => lstatSync(path), 'removed on close');
  const { writeFileSync, chmodSync } = await import('node:fs');
  writeFileSync(path, 'not a socket');
  await t.rejects(startAdminSocket(path, port, log), /not a socket/);
  const open = privateDir(t);
  chmodSync(open, 0o777);
  await t.rejects(startAdminSocket(join(open, 'admin.sock'), port, log), /writable by other users/);
  await t.rejects(startAdminSocket(join(dir, 's'.repeat(110)), port, log), /longer than 103 bytes/);
});

t.test('the socket is removed when the server shuts down', async (t) => {
  await server.app.shutdown();
  t.throws(() => lstatSync(socket));
  const run = await runCli(['stats'], env);
  t.equal(run.code, 2);
  t.match(run.stderr, /the server is not running/);
});

/**
 * A second SIGTERM or SIGINT during the graceful shutdown (the second Ctrl-C) ends the real process
 * (`node dist/main.js`) at once, as Node's own second Ctrl-C does, instead of waiting out SHUTDOWN_TIMEOUT.
 * "Nothing lost" still holds as far as the forcing lets it: the accepted message of a session the first
 * signal closed is stored offline, or counted as unfinished in the `shutdown-forced` line.
 *
 * What holds the graceful shutdown here: a BOSH request whose body never ends (HTTP_REQUEST_TIMEOUT=300): the
 * listener's close waits for it.
 */
import t, { type Test } from 'tap';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ensureBuilt, MAIN, spawnServing } from '../helpers/built.js';
import { waitUntil } from '../helpers/eventually.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { deriveStoredCredentials, openSqliteStorage } from '../../src/storage/index.js';

const SM = 'urn:xmpp:sm:3';
t.setTimeout(120_000);
t.before(() => ensureBuilt(MAIN));

/**
 * `node dist/main.js` on a fresh SQLite store with `users` (password `pw`), serving: its JSON log lines as parsed so
 * far, its host:port, and bob logged in over WebSocket as bob@localhost/phone.
 */
async function serving(t: Test, users: readonly string[], env: Record<string, string>) {
  const dir = t.testdir();
  const storage = openSqliteStorage(join(dir, 'data'));
  for (const n of users) await storage.users.create('localhost', n, await deriveStoredCredentials('pw', 4096));
  await storage.close();
  const { child, exited, lines, base } = await spawnServing(t, dir, { ALLOW_INSECURE_PLAIN: 'true', SCRAM_ITERATIONS: '4096', ADMIN_SOCKET: 'off', ...env });
  const bob = await RawWsClient.connect(`ws://${base}/xmpp-websocket`);
  t.teardown(() => bob.ws.terminate());
  await bob.login('bob', 'pw', 'phone');
  return { dir, child, exited, lines, base, bob };
}

async function forced(t: Test, signal: NodeJS.Signals): Promise<void> {
  const { dir, child, exited, lines, base, bob } = await serving(t, ['alice', 'bob'], { HTTP_REQUEST_TIMEOUT: '300', SHUTDOWN_TIMEOUT: '600' });
  bob.send(`<enable xmlns='${SM}'/>`);
  await bob.until((el) => el.local === 'enabled');
  const alice = await RawWsClient.connect(`ws://${base}/xmpp-websocket`);
  t.teardown(() => alice.ws.terminate());
  await alice.login('alice', 'pw', 'desk');
  alice.send(`<message xmlns='jabber:client' type='chat' to='bob@localhost/phone' id='m1'><body>kept</body></message>`);
  // Bob reads it and never acknowledges it (XEP-0198): it is in his queue, to be stored offline at the shutdown.
  await bob.until((el) => el.local === 'message' && el.attr('id') === 'm1');

  const [host, port] = base.split(':');
  const slow = connect(Number(port), host);
  t.teardown(() => slow.destroy());
  slow.on('error', () => undefined);
  await new Promise((resolve) => slow.once('connect', resolve));
  // Expect: 100-continue: the interim answer says the server has the request (a connection it has not read a
  // request from yet is idle, and closed by the shutdown instead of waited for).
  let answer = '';
  slow.on('data', (b: Buffer) => { answer += b.toString(); });
  slow.write('POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n');
  await waitUntil(() => answer.startsWith('HTTP/1.1 100 Continue'), { message: 'the server reading the slow request' });
  slow.write('<body');

  child.kill(signal);
  await waitUntil(() => lines().some((l) => l.event === 'shutdown'), { message: 'the shutdown line' });
  // The graceful part that can finish has (the queue stored); the slow request holds the rest.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
  t.teardown(() => clearTimeout(guard));
  child.kill(signal);
  const end = await exited;
  clearTimeout(guard);
  t.same(end, { code: 1, signal: null }, 'the second signal ended the process itself, with 1 (it was killed by the guard before)');
  const last = lines().find((l) => l.event === 'shutdown-forced');
  t.match(last, { level: 50, signal, offlineStored: Number, offlineUnfinished: Number }, 'one error line says the shutdown was cut short, and what it left');
  t.notOk(lines().some((l) => l.event === 'shutdown-complete' || l.event === 'shutdown-timeout'), 'neither complete nor timed out');
  const after = openSqliteStorage(join(dir, 'data'));
  const stored = await after.offline.count('localhost', 'bob');
  await after.close();
  t.ok(stored + Number(last?.offlineUnfinished ?? 0) >= 1, `the accepted message is stored (${stored}) or counted as unfinished`);
}

t.test('a second SIGTERM during the graceful shutdown ends the process at once', (t) => forced(t, 'SIGTERM'));
t.test('a second SIGINT (the second Ctrl-C) does the same', (t) => forced(t, 'SIGINT'));

t.test('the same Ctrl-C delivered twice at once (`npm start`: the terminal and npm both send SIGINT) shuts down gracefully', async (t) => {
  // @npmcli/run-script forwards SIGINT/SIGTERM to the script's process, which the terminal's Ctrl-C also reached
  // (one process group): the second copy must not be taken for an operator's second Ctrl-C.
  const { child, exited, lines } = await serving(t, ['bob'], {});
  child.kill('SIGINT');
  // npm's copy comes a moment later (its own handler forwards it): two signals sent at once would merge into one.
  await waitUntil(() => lines().some((l) => l.event === 'shutdown'), { interval: 1, message: 'the shutdown line' });
  child.kill('SIGINT');
  const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
  t.teardown(() => clearTimeout(guard));
  const end = await exited;
  clearTimeout(guard);
  t.same(end, { code: 0, signal: null }, 'the process exits 0 after its graceful shutdown');
  t.ok(lines().some((l) => l.event === 'shutdown-complete'), 'the shutdown completed');
  t.notOk(lines().some((l) => l.event === 'shutdown-forced'), 'nothing was forced');
});

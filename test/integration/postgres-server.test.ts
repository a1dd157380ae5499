/**
 * The server on STORAGE=postgres with a real client library: @xmpp/client
 * logs in with an account the real CLI created in PostgreSQL, a message for
 * an account with no session is kept offline in PostgreSQL and reaches its
 * next login once, and a deletion by the CLI (another process) ends the live session.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NS } from '../../src/xml/index.js';
import { openPostgresStorage } from '../../src/storage/index.js';
import { eventually } from '../helpers/eventually.js';
import { startPostgres } from '../helpers/postgres.js';
import { withServer } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { becomeAvailable, login, sleep, within, xml } from '../helpers/xmppjs.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'xmpp-web-gateway.js');
const postgres = await startPostgres();
t.teardown(() => postgres.stop());
const url = await postgres.createDatabase();
const server = await withServer(t, { ALLOW_INSECURE_PLAIN: 'true' }, await openPostgresStorage({ url }));

/** The real CLI against the same PostgreSQL, as an operator runs it beside the server. */
function cli(args: string[], input = ''): Promise<number | null> {
  const env = { PATH: process.env.PATH, STORAGE: 'postgres', DATABASE_URL: url, XMPP_DOMAIN: 'localhost', SCRAM_ITERATIONS: '4096' };
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['pipe', 'ignore', 'inherit'] });
  child.stdin.end(input);
  return new Promise((resolve, reject) => { child.on('error', reject); child.on('close', resolve); });
}

t.test('setup: accounts created by the CLI in PostgreSQL', async (t) => {
  t.equal(await cli(['user', 'add', 'alice@localhost'], 'alice-pw\n'), 0);
  t.equal(await cli(['user', 'add', 'bob@localhost'], 'bob-pw\n'), 0);
});

t.test('a message for an account with no session is kept in PostgreSQL and reaches its next login once', async (t) => {
  const alice = await login(t, server, { username: 'alice', password: 'alice-pw', resource: 'desk' });
  await becomeAvailable(alice);
  await alice.xmpp.send(xml('message', { to: 'bob@localhost', type: 'chat', id: 'm1' }, xml('body', {}, 'kept in postgres')));
  await eventually(async () => (await server.storage.offline.count('localhost', 'bob')) === 1 || undefined, { message: 'the message stored offline in PostgreSQL' });
  t.same((await server.storage.offline.list('localhost', 'bob')).length, 1, 'one row in offline_messages');

  const bob = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'tab' });
  await becomeAvailable(bob);
  t.equal((await bob.inbox.next('the offline message')).getChildText('body'), 'kept in postgres');
  await sleep(200);
  t.equal(bob.inbox.items.length, 1, 'exactly once');
  await within(bob.xmpp.stop(), 'stop');
  await within(alice.xmpp.stop(), 'stop');
});

t.test('an account deleted by the CLI loses its live session', async (t) => {
  const live = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => live.ws.terminate());
  await live.login('bob', 'bob-pw', 'phone');
  t.equal(await cli(['user', 'delete', 'bob@localhost']), 0);
  const error = await live.until((el) => el.local === 'error' && el.ns === NS.STREAM, 5000);
  t.equal(streamErrorCondition(error), 'not-authorized');
});

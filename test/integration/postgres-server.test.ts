/**
 * The server on STORAGE=postgres with a real client library: @xmpp/client
 * logs in with an account the real CLI created in PostgreSQL, a message for
 * a closed tab is kept offline in PostgreSQL and reaches the next login
 * once, and a deletion by the CLI (another process) ends the live session.
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
import { becomeAvailable, cutOff, login, serverForgets, serverHibernates, sleep, smEnabled, within, xml } from '../helpers/xmppjs.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'xmpp-web-gateway.js');
const postgres = await startPostgres();
t.teardown(() => postgres.stop());
const url = await postgres.createDatabase();
const server = await withServer(t, { SM_RESUME_TIMEOUT: '1', ALLOW_INSECURE_PLAIN: 'true' }, await openPostgresStorage({ url }));

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

t.test('a message for a closed tab is kept in PostgreSQL and reaches the next login once', async (t) => {
  const bob = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'tab' });
  await smEnabled(bob);
  await becomeAvailable(bob);
  bob.xmpp.reconnect.stop();
  cutOff(bob);
  await serverHibernates(server, bob.jid);
  const alice = await login(t, server, { username: 'alice', password: 'alice-pw', resource: 'desk' });
  await becomeAvailable(alice);
  await alice.xmpp.send(xml('message', { to: 'bob@localhost', type: 'chat', id: 'm1' }, xml('body', {}, 'kept in postgres')));
  await serverForgets(server, bob.jid, 5000);
  await eventually(async () => (await server.storage.offline.count('localhost', 'bob')) === 1 || undefined, { message: 'the message stored offline in PostgreSQL' });
  t.pass('stored offline in PostgreSQL');

  const again = await login(t, server, { username: 'bob', password: 'bob-pw', resource: 'tab2' });
  await becomeAvailable(again);
  t.equal((await again.inbox.next('the offline message')).getChildText('body'), 'kept in postgres');
  await sleep(200);
  t.equal(again.inbox.items.length, 1, 'exactly once');
  await within(again.xmpp.stop(), 'stop');
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

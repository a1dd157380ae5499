/**
 * The log lines an operator follows a user by (issue 17 item 7): one
 * `authenticated` line per login with the JID, mechanism, address and
 * transport, and the address on the hibernate and resume lines, so a reload
 * that moved the user to another network shows both addresses. Addresses come
 * from X-Forwarded-For through the trusted loopback proxy, as behind nginx.
 */
import t from 'tap';
import { Writable } from 'node:stream';
import { NS } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { waitUntil } from '../helpers/eventually.js';

type Line = Record<string, unknown>;
const lines: Line[] = [];
const sink = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(JSON.parse(chunk.toString()) as Line); done(); } });
const server = await withUsers(t, ['alice'], { ALLOW_INSECURE_PLAIN: 'true', SM_RESUME_TIMEOUT: '30' }, undefined, { logger: { level: 'info', stream: sink } });
const events = (name: string) => lines.filter((l) => l.event === name);

async function from(ip: string): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl, 'xmpp', { 'x-forwarded-for': ip });
  t.teardown(() => c.ws.terminate());
  return c;
}

t.test('one authenticated line per login: JID, mechanism, address, transport', async (t) => {
  lines.length = 0;
  const c = await from('198.51.100.10');
  await c.authenticate('alice', 'alice-pw');
  t.equal(events('authenticated').length, 1);
  t.match(events('authenticated')[0], { jid: 'alice@localhost', mechanism: 'PLAIN', ip: '198.51.100.10', transport: 'websocket' });
  t.notOk(lines.some((l) => JSON.stringify(l).includes('alice-pw')), 'never the password');
});

t.test('the hibernate line has the old address and the resume line the new one', async (t) => {
  lines.length = 0;
  const c = await from('198.51.100.20');
  await c.login('alice', 'alice-pw', 'phone');
  c.send(`<enable xmlns='${NS.SM}' resume='true'/>`);
  const smid = (await c.until((el) => el.is('enabled', NS.SM))).attr('id')!;
  c.ws.terminate();
  await waitUntil(() => events('session-hibernated').length === 1, { message: 'the session to hibernate' });
  t.match(events('session-hibernated')[0], { jid: 'alice@localhost/phone', ip: '198.51.100.20' });

  const d = await from('203.0.113.30');
  await d.authenticate('alice', 'alice-pw');
  d.send(`<resume xmlns='${NS.SM}' previd='${smid}' h='0'/>`);
  t.ok((await d.until((el) => el.ns === NS.SM)).is('resumed', NS.SM), 'resumed');
  await waitUntil(() => events('session-resumed').length === 1, { message: 'the resume line' });
  t.match(events('session-resumed')[0], { jid: 'alice@localhost/phone', ip: '203.0.113.30', transport: 'websocket' });
});

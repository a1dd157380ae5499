/**
 * Issue 17 item 1: each metric moves on a real server through real protocol
 * traffic, read from the real /metrics text before and after. Here: stanzas
 * and bytes by transport, session ends, offline storage, limit refusals,
 * storage latency and errors, readiness; and, last, that no label value the
 * traffic left behind is a JID, a host name or an address.
 */
import t from 'tap';
import { NS } from '../../src/xml/index.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import { withServer, withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { TRANSPORTS, websocket } from '../helpers/transport-clients.js';
import { baseline, scrape, value } from '../helpers/metrics-text.js';
import { eventually } from '../helpers/eventually.js';

// big-*: the oversized-stanza tests (a BOSH session outlives its client until BOSH_INACTIVITY, and MAX_RESOURCES_PER_USER=1).
const USERS = ['alice', 'bob', 'carol', 'big-websocket', 'big-bosh'];
// Plain over loopback: the test clients use SASL PLAIN.
const PLAIN = { ALLOW_INSECURE_PLAIN: 'true' };
const server = await withUsers(t, USERS, {
  ...PLAIN, MAX_STANZA_SIZE: '4096', MAX_OFFLINE_MESSAGES: '2', MAX_RESOURCES_PER_USER: '1', MAX_ROSTER_ITEMS: '1', MAX_BLOCKLIST_ITEMS: '1',
});
const ping = (id: string) => `<iq xmlns='jabber:client' type='get' id='${id}'><ping xmlns='urn:xmpp:ping'/></iq>`;
const chat = (to: string, id: string) => `<message xmlns='jabber:client' to='${to}@localhost' type='chat' id='${id}'><body>${id}</body></message>`;

t.test('a fresh server exports every series its counters can move, at 0, before any traffic', async (t) => {
  // A rate() over a series that appears only with its first event starts absent, not at 0 (and an alert on it waits).
  const fresh = await withServer(t);
  const samples = await scrape(fresh);
  const at0 = (name: string, labels: Record<string, string>): void => {
    const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
    t.equal(found.length, 1, `${name} ${JSON.stringify(labels)} is exported`);
    t.equal(found[0]?.value, 0, 'at 0');
  };
  at0('xmpp_stanzas_received_total', { transport: 'bosh', kind: 'presence' });
  at0('xmpp_stanzas_sent_total', { transport: 'websocket', kind: 'iq' });
  at0('xmpp_received_bytes_total', { transport: 'bosh' });
  at0('xmpp_sent_bytes_total', { transport: 'websocket' });
  at0('xmpp_sessions_ended_total', { transport: 'websocket', reason: 'kicked' });
  at0('xmpp_sm_resumes_total', { outcome: 'timed-out', from: 'none', to: 'bosh' });
  at0('xmpp_sm_handed_over_total', { to: 'bounced' });
  at0('xmpp_limit_refusals_total', { limit: 'pep' });
  at0('xmpp_bosh_sessions_ended_total', { reason: 'shutdown' });
});

for (const adapter of TRANSPORTS) {
  const transport = adapter.name;
  const other = transport === 'websocket' ? 'bosh' : 'websocket';
  t.test(`${transport}: stanzas and bytes in and out, the session's start and its end`, async (t) => {
    const delta = await baseline(server);
    const c = await adapter.connect(t, server);
    await c.login('alice', 'alice-pw');
    await c.send(ping('p1'));
    await c.until((el) => el.attr('id') === 'p1');
    await c.close();
    // The bind and the ping: two IQs each way.
    t.ok(await delta('xmpp_stanzas_received_total', { transport, kind: 'iq' }) >= 2, 'IQs received, on this transport');
    t.ok(await delta('xmpp_stanzas_sent_total', { transport, kind: 'iq' }) >= 2, 'IQ results sent, on this transport');
    t.equal(await delta('xmpp_stanzas_received_total', { transport: other }), 0, 'nothing counted on the other transport');
    t.ok(await delta('xmpp_received_bytes_total', { transport }) > 100, 'bytes received');
    t.ok(await delta('xmpp_sent_bytes_total', { transport }) > 100, 'bytes sent');
    t.equal(await delta('xmpp_received_bytes_total', { transport: other }), 0);
    t.equal(await delta('xmpp_sessions_started_total', { transport }), 1, 'one session started');
    t.equal(await delta('xmpp_sessions_ended_total', { transport, reason: 'closed' }), 1, 'and ended, closed by the client');
  });

  t.test(`${transport}: an oversized stanza is a size refusal and ends the session with a stream error`, async (t) => {
    const delta = await baseline(server);
    const c = await adapter.connect(t, server);
    await c.login(`big-${transport}`, `big-${transport}-pw`);
    // Over MAX_STANZA_SIZE (4096): a WebSocket frame reaches the parser, a BOSH body meets Fastify's bodyLimit.
    await c.send(`<message xmlns='jabber:client' to='bob@localhost'><body>${'x'.repeat(5000)}</body></message>`).catch(() => {});
    if (transport === 'websocket') t.equal(await c.streamError(), 'policy-violation');
    t.equal(await delta('xmpp_limit_refusals_total', { limit: 'size' }), 1, 'limit="size"');
    if (transport === 'websocket') {
      t.equal(await delta('xmpp_sessions_ended_total', { transport, reason: 'stream-error' }), 1, 'ended by a stream error');
      t.equal(await delta('xmpp_stream_errors_total', { condition: 'policy-violation' }), 1);
    }
  });
}

t.test('too deep a stanza is a depth refusal', async (t) => {
  const delta = await baseline(server);
  const c = await websocket.connect(t, server);
  await c.login('alice', 'alice-pw');
  await c.send(`<message xmlns='jabber:client'>${'<a>'.repeat(100)}${'</a>'.repeat(100)}</message>`);
  t.equal(await c.streamError(), 'policy-violation');
  t.equal(await delta('xmpp_limit_refusals_total', { limit: 'depth' }), 1);
});

t.test('offline messages: stored, refused over the quota, delivered', async (t) => {
  const delta = await baseline(server);
  const alice = await websocket.connect(t, server);
  await alice.login('alice', 'alice-pw');
  // MAX_OFFLINE_MESSAGES=2: the third to carol is refused (resource-constraint).
  for (const id of ['o1', 'o2', 'o3']) await alice.send(chat('carol', id));
  await alice.send(chat('bob', 'o4'));
  const refused = await alice.until((el) => el.attr('type') === 'error' && el.attr('id') === 'o3');
  t.ok(refused.getChild('error')?.getChild('resource-constraint', NS.STANZAS), 'the sender hears resource-constraint');
  await eventually(async () => (await delta('xmpp_offline_messages_total', { event: 'stored' })) === 3, { message: 'three stored' });
  t.equal(await delta('xmpp_offline_messages_total', { event: 'refused-quota' }), 1);
  t.equal(await delta('xmpp_limit_refusals_total', { limit: 'offline' }), 1);
  await alice.close();

  const bob = await websocket.connect(t, server);
  await bob.login('bob', 'bob-pw');
  await bob.send("<presence xmlns='jabber:client'/>");
  await bob.until((el) => el.attr('id') === 'o4');
  await eventually(async () => (await delta('xmpp_offline_messages_total', { event: 'delivered' })) === 1, { message: 'one delivered' });
  await bob.close();
});

t.test('resources, roster and blocklist limits', async (t) => {
  const delta = await baseline(server);
  const first = await websocket.connect(t, server);
  await first.login('alice', 'alice-pw', 'one');
  const second = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => second.ws.terminate());
  await second.authenticate('alice', 'alice-pw');
  second.send(`<iq xmlns='jabber:client' type='set' id='b2'><bind xmlns='${NS.BIND}'><resource>two</resource></bind></iq>`);
  const bound = await second.until((el) => el.attr('id') === 'b2');
  t.equal(bound.attr('type'), 'error', 'MAX_RESOURCES_PER_USER=1: the second bind fails');
  t.equal(await delta('xmpp_limit_refusals_total', { limit: 'resources' }), 1);

  // MAX_ROSTER_ITEMS=1, MAX_BLOCKLIST_ITEMS=1: the first fits, the second is refused.
  for (const [limit, set] of [
    ['roster', (jid: string, id: string) => `<iq xmlns='jabber:client' type='set' id='${id}'><query xmlns='${NS.ROSTER}'><item jid='${jid}'/></query></iq>`],
    ['blocklist', (jid: string, id: string) => `<iq xmlns='jabber:client' type='set' id='${id}'><block xmlns='${NS.BLOCKING}'><item jid='${jid}'/></block></iq>`],
  ] as const) {
    const answer = async (jid: string, id: string) => {
      await first.send(set(jid, id));
      return (await first.until((el) => el.attr('id') === id)).attr('type');
    };
    t.equal(await answer('x@example.org', `${limit}-1`), 'result');
    t.equal(await answer('y@example.org', `${limit}-2`), 'error', `${limit} full`);
    t.equal(await delta('xmpp_limit_refusals_total', { limit }), 1, `limit="${limit}"`);
  }
  await first.close();
});

t.test('per-address limits are refusals by limit too', async (t) => {
  const strict = await withServer(t, { ...PLAIN, MAX_CONNECTIONS_PER_IP: '1' });
  const delta = await baseline(strict);
  const c = await RawWsClient.connect(strict.wsUrl);
  t.teardown(() => c.ws.terminate());
  await t.rejects(RawWsClient.connect(strict.wsUrl), 'the second connection from 127.0.0.1 is refused');
  t.equal(await delta('xmpp_limit_refusals_total', { limit: 'per-ip' }), 1);
});

t.test('the per-address rate of new sessions is a rate refusal', async (t) => {
  const strict = await withServer(t, { ...PLAIN, NEW_CONNECTIONS_BURST_PER_IP: '1', NEW_CONNECTIONS_PER_IP_PER_SECOND: '1' });
  const delta = await baseline(strict);
  const c = await RawWsClient.connect(strict.wsUrl);
  t.teardown(() => c.ws.terminate());
  await t.rejects(RawWsClient.connect(strict.wsUrl), 'the second new session within the burst is refused');
  t.equal(await delta('xmpp_limit_refusals_total', { limit: 'rate' }), 1);
  t.equal(await delta('xmpp_limit_refusals_total', { limit: 'per-ip' }), 0, 'not counted as a connections-per-address refusal');
});

t.test('storage operations are timed by op, and failures counted', async (t) => {
  const storage = createMemoryStorage();
  const s = await withUsers(t, ['dora'], PLAIN, storage);
  const delta = await baseline(s);
  const c = await websocket.connect(t, s);
  await c.login('dora', 'dora-pw');
  t.ok(await delta('xmpp_storage_operation_seconds_count', { op: 'users.get' }) >= 1, 'the login read the account');
  // The store fails: the client gets an error, the metric counts it under the port method's name.
  storage.vcards.get = () => Promise.reject(new Error('disk on fire'));
  await c.send(`<iq xmlns='jabber:client' type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>`);
  t.equal((await c.until((el) => el.attr('id') === 'v1')).attr('type'), 'error');
  t.equal(await delta('xmpp_storage_errors_total', { op: 'vcards.get' }), 1, 'op="vcards.get"');
  t.ok(await delta('xmpp_storage_operation_seconds_count', { op: 'vcards.get' }) >= 1, 'a failed operation is timed too');
});

t.test('xmpp_ready follows /readyz, and each flip is counted', async (t) => {
  const storage = createMemoryStorage();
  const s = await withServer(t, {}, storage);
  const delta = await baseline(s);
  t.equal((await fetch(`${s.httpUrl}/readyz`)).status, 200);
  t.equal(value(await scrape(s), 'xmpp_ready'), 1, 'ready');
  const ping = storage.ping.bind(storage);
  storage.ping = () => Promise.reject(new Error('database gone'));
  t.equal((await fetch(`${s.httpUrl}/readyz`)).status, 503);
  t.equal(value(await scrape(s), 'xmpp_ready'), 0, 'not ready');
  storage.ping = ping;
  t.equal((await fetch(`${s.httpUrl}/readyz`)).status, 200);
  t.equal(value(await scrape(s), 'xmpp_ready'), 1, 'ready again');
  t.equal(await delta('xmpp_readiness_changes_total'), 2, 'two flips');
});

// Runs last: the traffic above has put every label value it could into the registry.
t.test('no label value is a JID, a host name or an address', async (t) => {
  const forbidden = [...USERS, 'dora', 'localhost', '127.0.0.1', 'example.org'];
  const looksLikeAddress = /^\d{1,3}(\.\d{1,3}){3}$|^[0-9a-f]*:[0-9a-f:]*:[0-9a-f:]*$/i;
  let seen = 0;
  for (const sample of await scrape(server)) {
    for (const [label, text] of Object.entries(sample.labels)) {
      seen++;
      if (text.includes('@') || looksLikeAddress.test(text) || forbidden.some((f) => text.includes(f))) {
        t.fail(`${sample.name}{${label}="${text}"} looks like a JID, host or address`);
      }
    }
  }
  t.ok(seen > 100, `${seen} label values looked at`);
});

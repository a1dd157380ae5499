/**
 * The body that ends a BOSH session is a response like any other (found in
 * review): it carries at most BOSH_MAX_RESPONSE_BYTES of what was still
 * queued, oldest first, with the stream error after them (XEP-0206 §7).
 * What does not fit goes through the session's end-of-session hand-over
 * (here: offline storage), never into one huge body. The errors for the stanzas of the request
 * that fetches it (never processed, the stream gone) were added past the cap: they count first now,
 * and the queue's stanzas fill what they leave.
 */
import t, { type Test } from 'tap';
import { NS, parseXml, serialize, x, type XmlElement } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { RawBoshClient, payloads, replaceOverWebSocket, terminalCondition } from '../helpers/bosh-client.js';
import { eventually } from '../helpers/eventually.js';

const CAP = 4096;
const N = 12;
const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, {
  ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '2', BOSH_MAX_RESPONSE_BYTES: String(CAP),
});

/**
 * alice on BOSH as `resource`, holding no request, with N messages of about 1 KiB each from bob (as `sender`) queued
 * for her, ids `${prefix}0`… in order.
 */
async function aliceWithQueue(t: Test, resource: string, sender: string, prefix: string): Promise<{ alice: RawBoshClient; ids: string[] }> {
  const alice = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => alice.destroy());
  const jid = await alice.login('alice', 'alice-pw', resource, { wait: 2 });
  const bob = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', sender);
  const ids = Array.from({ length: N }, (_, i) => `${prefix}${i}`);
  for (const id of ids) bob.send(`<message xmlns='jabber:client' to='${jid}' type='chat' id='${id}'><body>${'x'.repeat(900)}</body></message>`);
  await eventually(() => server.app.bosh.stats().queued === N, { message: 'every message queued for alice' });
  return { alice, ids };
}

const bytes = (els: readonly XmlElement[]): number => els.reduce((sum, el) => sum + Buffer.byteLength(serialize(el)), 0);

t.test('the terminate body of a stream error carries at most BOSH_MAX_RESPONSE_BYTES of the queue, oldest first; the rest is stored offline, each message once', async (t) => {
  // About 1 KiB each: three times the cap in all, while alice holds no request.
  const { alice, ids } = await aliceWithQueue(t, 'capped', 'sender', 'm');

  // The server ends the stream: a login with the same resource replaces the session (conflict).
  await replaceOverWebSocket(t, server, 'alice', 'alice-pw', 'capped');

  const final = await alice.send();
  t.equal(terminalCondition(final), 'remote-stream-error', 'the next request gets the terminate body');
  const carried = payloads(final.body);
  t.ok(carried.at(-1)?.is('error', NS.STREAM) && carried.at(-1)?.getChild('conflict'), 'the stream error comes last (XEP-0206 §7)');
  t.ok(bytes(carried) <= CAP, `its payloads, the stream error included, stay within the cap (${bytes(carried)} bytes)`);
  const delivered = carried.filter((el) => el.local === 'message').map((el) => el.attr('id'));
  t.ok(delivered.length > 0, `it carries what fits (${delivered.length} messages)`);
  t.same(delivered, ids.slice(0, delivered.length), 'the oldest first');

  const rest = ids.slice(delivered.length);
  await eventually(async () => (await server.storage.offline.count('localhost', 'alice')) >= rest.length, { message: 'the rest stored offline' });
  const stored = (await server.storage.offline.list('localhost', 'alice')).map((m) => parseXml(m.stanza).attr('id'));
  t.same(stored, rest, 'what did not fit is stored offline, in order, and nothing of the body twice');
  t.equal(server.app.bosh.stats().sessions, 0, 'the BOSH session is over');
});

t.test("a client's terminate that fetches the body of a stream error gets the error only: it reads nothing more (XEP-0124 §13), so what was queued is stored offline", async (t) => {
  // More than the cap: the stream error's body holds the oldest, the rest is handed over when the session ends.
  const { alice, ids } = await aliceWithQueue(t, 'leaving', 'sender-2', 't');
  const before = await server.storage.offline.count('localhost', 'alice');

  // The server ends the stream while alice holds no request; her next request is her goodbye.
  await replaceOverWebSocket(t, server, 'alice', 'alice-pw', 'leaving');

  const final = await alice.terminate(x('presence', { xmlns: NS.CLIENT, type: 'unavailable' }));
  t.equal(terminalCondition(final), 'remote-stream-error', 'the terminate request gets the terminate body');
  t.ok(payloads(final.body).at(-1)?.getChild('conflict'), 'with the stream error');
  t.same(payloads(final.body).filter((el) => el.local === 'message').map((el) => el.attr('id')), [], 'and no message');
  await eventually(async () => (await server.storage.offline.count('localhost', 'alice')) >= before + ids.length, { message: 'the messages stored offline' });
  const stored = (await server.storage.offline.list('localhost', 'alice')).map((m) => parseXml(m.stanza).attr('id')).slice(before);
  t.same(stored, ids, 'each stored offline once, in order');
  t.equal(server.app.bosh.stats().sessions, 0, 'the BOSH session is over');
});

t.test("the errors for the stanzas of the request that fetches the terminate body count in BOSH_MAX_RESPONSE_BYTES: they come first, the queue's stanzas fill the rest, and what does not fit is stored offline", async (t) => {
  const alice = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => alice.destroy());
  const jid = await alice.login('alice', 'alice-pw', 'bounced', { wait: 2 });
  const before = await server.storage.offline.count('localhost', 'alice');
  const bob = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'sender-3');
  const ids = Array.from({ length: N }, (_, i) => `b${i}`);
  for (const id of ids) bob.send(`<message xmlns='jabber:client' to='${jid}' type='chat' id='${id}'><body>${'x'.repeat(900)}</body></message>`);
  await eventually(() => server.app.bosh.stats().queued === N, { message: 'every message queued for alice' });

  const replacement = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => replacement.close());
  await replacement.login('alice', 'alice-pw', 'bounced');
  await eventually(() => server.app.sessions.get('localhost', 'alice', 'bounced')?.transport === 'websocket', { message: 'the BOSH session replaced' });

  // Her next request carries messages the closed stream never takes: each gets an error in the terminate body.
  const mine = Array.from({ length: 8 }, (_, i) => `u${i}`);
  const final = await alice.send({}, ...mine.map((id) => x('message', { xmlns: NS.CLIENT, to: 'bob@localhost', type: 'chat', id }, x('body', {}, id))));
  t.equal(terminalCondition(final), 'remote-stream-error', 'the request gets the terminate body');
  const carried = payloads(final.body);
  t.ok(bytes(carried) <= CAP, `its payloads, the errors and the stream error included, stay within the cap (${bytes(carried)} bytes)`);
  const errors = carried.filter((el) => el.local === 'message' && el.attr('type') === 'error').map((el) => el.attr('id'));
  t.same(errors, mine, 'each of its messages gets its error');
  const delivered = carried.filter((el) => el.local === 'message' && el.attr('type') !== 'error').map((el) => el.attr('id'));
  t.same(delivered, ids.slice(0, delivered.length), 'the queue carried oldest first');
  const rest = ids.slice(delivered.length);
  await eventually(async () => (await server.storage.offline.count('localhost', 'alice')) >= before + rest.length, { message: 'the rest stored offline' });
  const stored = (await server.storage.offline.list('localhost', 'alice')).map((m) => parseXml(m.stanza).attr('id')).slice(before);
  t.same(stored, rest, 'what did not fit is stored offline, in order, and nothing of the body twice');
});

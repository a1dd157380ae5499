/**
 * A BOSH session that ends while its output queue is above
 * BOSH_MAX_QUEUED_BYTES (found in review). The client's terminate
 * (XEP-0124 §13) waited behind the full queue with the input it ended: its
 * request was answered with queued stanzas the client no longer reads, and
 * the session ended only at BOSH_INACTIVITY. Now the terminate is processed
 * at once and answered with the terminate body; what was queued goes
 * through the end-of-session hand-over. A stream error from the server
 * behind a full queue already ended the session with the client's next
 * request (the second test, which passed before the fix too).
 *
 * Found later: the byte bound on unprocessed input (two bodies) refused a
 * terminate from a client whose input waits behind the full queue with
 * policy-violation, and its payloads (which the connection manager MUST
 * forward, XEP-0124 §13) were not processed. §11 exempts a terminate from
 * the overactivity rules, and it ends the input: it is accepted with all its
 * payloads (the last test).
 */
import t, { type Test } from 'tap';
import { NS, parseXml, x } from '../../src/xml/index.js';
import { withUsers, type UsersServer } from '../helpers/server.js';
import { UNSHAPED } from '../helpers/flow.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { RawBoshClient, payloads, replaceOverWebSocket, terminalCondition } from '../helpers/bosh-client.js';
import { eventually } from '../helpers/eventually.js';

// The queue's mark is 16 KiB and a response carries 4 KiB: 24 KiB queued keeps the input waiting
// after a response (until the queue is back under half the mark), and below the slow-consumer limit.
const N = 12;
const PAD = 'x'.repeat(1900);
const ENV = {
  ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '60', BOSH_INACTIVITY: '60',
  BOSH_MAX_QUEUED_BYTES: '16384', BOSH_MAX_RESPONSE_BYTES: '4096', ...UNSHAPED,
};

/** Alice over BOSH with `count` messages from bob queued (N: above the mark), no request held; returns her client, bob's and the message ids. */
async function aliceBehindFullQueue(tt: Test, s: UsersServer, resource: string, count = N): Promise<{ alice: RawBoshClient; bob: RawWsClient; ids: string[] }> {
  const alice = new RawBoshClient(`${s.httpUrl}/http-bind`);
  tt.teardown(() => alice.destroy());
  const jid = await alice.login('alice', 'alice-pw', resource, { wait: 60 });
  const bob = await RawWsClient.connect(s.wsUrl);
  tt.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', `to-${resource}`);
  const ids = Array.from({ length: count }, (_, i) => `${resource}-${i}`);
  for (const id of ids) bob.send(`<message xmlns='jabber:client' to='${jid}' type='chat' id='${id}'><body>${PAD}</body></message>`);
  await eventually(() => s.app.bosh.stats().queued === count, { message: 'every message queued for alice' });
  return { alice, bob, ids };
}

/** The ids of the messages stored offline for alice, once there are `count`. */
async function storedIds(s: UsersServer, count: number): Promise<(string | undefined)[]> {
  await eventually(async () => (await s.storage.offline.count('localhost', 'alice')) >= count, { message: `${count} messages stored offline for alice` });
  return (await s.storage.offline.list('localhost', 'alice')).map((m) => parseXml(m.stanza).attr('id'));
}

t.test("the client's terminate behind a full output queue is answered with the terminate body at once; the session ends and what was queued is stored offline", async (t) => {
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, ENV);
  const { alice, ids } = await aliceBehindFullQueue(t, server, 'leaving');
  const res = await alice.terminate(x('presence', { xmlns: NS.CLIENT, type: 'unavailable' }));
  t.equal(terminalCondition(res), '', 'the only open request gets type=terminate, without a condition (§13)');
  t.same(payloads(res.body).map((el) => el.local), [], 'nothing after the client said goodbye: it reads no more');
  await eventually(() => server.app.bosh.stats().sessions === 0, { message: 'the BOSH session to end, without another request' });
  t.equal(server.app.sessions.get('localhost', 'alice', 'leaving'), undefined, 'the XMPP session is gone');
  t.same(await storedIds(server, N), ids, 'every queued message is stored offline, in order');
});

t.test("a stream error behind a full output queue ends the session with the client's next request; nothing queued is lost (passed before the fix too)", async (t) => {
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, ENV);
  const { alice, ids } = await aliceBehindFullQueue(t, server, 'replaced');
  // The server ends the stream: a login with the same resource replaces the session (conflict).
  await replaceOverWebSocket(t, server, 'alice', 'alice-pw', 'replaced');
  const res = await alice.send();
  t.equal(terminalCondition(res), 'remote-stream-error', 'the next request gets the terminate body');
  t.ok(payloads(res.body).at(-1)?.getChild('conflict'), 'with the conflict last');
  t.equal(server.app.bosh.stats().sessions, 0, 'the BOSH session is over');
  const delivered = payloads(res.body).filter((el) => el.local === 'message').map((el) => el.attr('id'));
  t.same([...delivered, ...await storedIds(server, N - delivered.length)], ids, 'each message in the terminate body or stored offline, once, in order');
});

// Behind the full queue, the payload runs after the terminate is known; behind a short one, at once, before it.
for (const count of [N, 2]) t.test(`a stream error caused by the client's own terminate body ends the session with the error only: what was queued (${count} messages) is stored offline, none of it in a body the client no longer reads`, async (t) => {
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, ENV);
  const { alice, ids } = await aliceBehindFullQueue(t, server, `forging-${count}`, count);
  // A forged from is invalid-from (RFC 6120 §4.9.3.9).
  const forged = x('message', { xmlns: NS.CLIENT, from: 'bob@localhost/elsewhere', to: 'bob@localhost', type: 'chat', id: 'forged' }, x('body', {}, 'hi'));
  const res = await alice.terminate(forged);
  t.equal(terminalCondition(res), 'remote-stream-error', 'the terminate request gets the stream error');
  t.ok(payloads(res.body).at(-1)?.getChild('invalid-from'), 'invalid-from');
  t.same(payloads(res.body).filter((el) => el.local === 'message').map((el) => el.attr('id')), [], 'no queued message in the body: after its terminate the client reads nothing (XEP-0124 §13)');
  await eventually(() => server.app.bosh.stats().sessions === 0, { message: 'the BOSH session to end' });
  t.same(await storedIds(server, count), ids, 'every queued message is stored offline, in order');
});

t.test("a terminate whose payloads take the unprocessed input past its bound is accepted: they are processed, it gets the terminate body, and nothing queued is lost", async (t) => {
  // The bound is two bodies (2 × MAX_STANZA_SIZE = 8 KiB). Behind the full queue, the input waits until
  // the client has fetched it below half the mark: two responses of 4 KiB leave it above.
  const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, { ...ENV, MAX_STANZA_SIZE: '4096' });
  const { alice, bob, ids } = await aliceBehindFullQueue(t, server, 'backed-up');
  const pings = (tag: string) => Array.from({ length: 40 }, (_, i) => x('iq', { xmlns: NS.CLIENT, type: 'get', id: `${tag}${i}` }, x('ping', { xmlns: 'urn:xmpp:ping' })));
  // About 3.7 KiB each: both wait unprocessed; each response carries queued messages.
  const fetched = [...payloads((await alice.send({}, ...pings('a'))).body), ...payloads((await alice.send({}, ...pings('b'))).body)];
  t.ok(server.app.bosh.stats().queued * PAD.length > 16384 / 2, 'more than half the mark is still queued: the input still waits');
  // About 1.7 KiB more: past the bound.
  const goodbye = x('message', { xmlns: NS.CLIENT, to: 'bob@localhost/to-backed-up', type: 'chat', id: 'goodbye' }, x('body', {}, 'g'.repeat(1500)));
  const res = await alice.terminate(goodbye, x('presence', { xmlns: NS.CLIENT, type: 'unavailable' }));
  t.equal(terminalCondition(res), '', `the terminate gets the terminate body, without a condition (§13) (${res.text.slice(0, 200)})`);
  t.equal((await bob.until((el) => el.local === 'message' && el.attr('id') === 'goodbye')).getChildText('body')?.length, 1500, "the terminate's message reached bob");
  const delivered = fetched.filter((el) => el.local === 'message').map((el) => el.attr('id'));
  t.same([...delivered, ...await storedIds(server, N - delivered.length)], ids, 'each queued message fetched or stored offline, once, in order');
  await eventually(() => server.app.bosh.stats().sessions === 0 && server.app.sessions.get('localhost', 'alice', 'backed-up') === undefined, { message: 'the sessions to end' });
});

/**
 * "Nothing lost" for what a client sends to a BOSH session the server has already closed on its own
 * (a conflict here): the request that fetches the terminate body, or waits for a gap beside it,
 * carried stanzas that are never processed (the stream is gone). The client cannot tell that from
 * the response: a terminate body answers a request whose payloads were forwarded too (its own
 * terminate's, XEP-0124 §13, or ones that caused the stream error, XEP-0206 §7), so its messages
 * and IQ requests get their errors (RFC 6120 §8.3, unexpected-request) in the body that answers
 * them, before the stream error. They were dropped silently.
 */
import t, { type Test } from 'tap';
import { NS, x, type XmlElement } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { RawBoshClient, payloads, replaceOverWebSocket, terminalCondition, type BoshResponse } from '../helpers/bosh-client.js';
import { eventually, sleep } from '../helpers/eventually.js';

const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, { ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '60' });

const chat = (id: string): XmlElement => x('message', { xmlns: NS.CLIENT, to: 'bob@localhost', type: 'chat', id }, x('body', {}, `text of ${id}`));
const ping = (id: string): XmlElement => x('iq', { xmlns: NS.CLIENT, type: 'get', id, to: 'localhost' }, x('ping', { xmlns: NS.PING }));
const presence = (): XmlElement => x('presence', { xmlns: NS.CLIENT, type: 'unavailable' });

/** Alice over BOSH, holding no request, replaced by a WebSocket login with the same resource (conflict); bob listens. */
async function closedByServer(t: Test, resource: string): Promise<{ alice: RawBoshClient; bob: RawWsClient }> {
  const alice = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => alice.destroy());
  await alice.login('alice', 'alice-pw', resource, { wait: 60 });
  const bob = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', `listener-${resource}`);
  return { alice, bob };
}

async function replace(t: Test, resource: string): Promise<void> {
  await replaceOverWebSocket(t, server, 'alice', 'alice-pw', resource);
}

/** The stanza errors a response carries, as id → condition. */
function errors(res: BoshResponse): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const el of payloads(res.body)) {
    if (el.attr('type') !== 'error' || el.local === 'error') continue;
    const error = el.getChild('error', NS.CLIENT);
    out[`${el.local}:${el.attr('id')}`] = error?.getChildren().find((c) => c.ns === NS.STANZAS && c.local !== 'text')?.local;
    if (error?.attr('type') !== 'wait') out[`${el.local}:${el.attr('id')}`] += ` (type ${error?.attr('type')})`;
  }
  return out;
}

async function bobGotNothing(t: Test, bob: RawWsClient): Promise<void> {
  await sleep(200);
  t.same(bob.frames.filter((el) => el.local === 'message').map((el) => el.attr('id')), [], 'bob got none of the messages');
  t.equal(await server.storage.offline.count('localhost', 'bob'), 0, 'and none was stored for him');
}

t.test('the request that fetches the terminate body of a closed stream gets errors for its messages and IQ requests', async (t) => {
  const { alice, bob } = await closedByServer(t, 'fetcher');
  await replace(t, 'fetcher');
  const res = await alice.send({}, chat('m1'), ping('q1'), presence(), chat('m2'));
  t.equal(terminalCondition(res), 'remote-stream-error', `the request gets the terminate body (${res.text.slice(0, 300)})`);
  t.ok(payloads(res.body).at(-1)?.getChild('conflict'), 'the stream error comes last (XEP-0206 §7)');
  t.same(errors(res), { 'message:m1': 'unexpected-request', 'iq:q1': 'unexpected-request', 'message:m2': 'unexpected-request' },
    'each message and IQ request is answered with an error, the presence is not');
  await bobGotNothing(t, bob);
});

t.test("the client's terminate that fetches the terminate body of a closed stream gets the errors for its messages too", async (t) => {
  const { alice, bob } = await closedByServer(t, 'leaving');
  await replace(t, 'leaving');
  const res = await alice.terminate(chat('m3'), presence());
  t.equal(terminalCondition(res), 'remote-stream-error', 'the terminate gets the terminate body');
  t.same(errors(res), { 'message:m3': 'unexpected-request' }, 'its message is answered with an error');
  await bobGotNothing(t, bob);
});

t.test('a request ahead of a gap, answered when the one that fills it fetches the terminate body, gets errors for its messages', async (t) => {
  const { alice, bob } = await closedByServer(t, 'gap');
  const gap = alice.body({}, chat('m4'));
  const ahead = alice.raw(alice.body({}, chat('m5')));
  await eventually(() => server.app.bosh.stats().pending === 1, { message: 'the later rid waiting for the gap' });
  await replace(t, 'gap');
  const filled = await alice.raw(gap);
  t.equal(terminalCondition(filled), 'remote-stream-error', 'the request that fills the gap gets the terminate body');
  t.same(errors(filled), { 'message:m4': 'unexpected-request' }, 'with the error for its message');
  const other = await ahead;
  t.equal(terminalCondition(other), 'other-request', 'the one ahead of the gap gets other-request (§17.2)');
  t.same(errors(other), { 'message:m5': 'unexpected-request' }, 'with the error for its message');
  await bobGotNothing(t, bob);
});

t.test('a request ahead of a gap, answered other-request when the session fails on the request that fills it, gets errors for its messages', async (t) => {
  const { alice, bob } = await closedByServer(t, 'failed');
  const gap = alice.body({ type: 'bogus' });
  const ahead = alice.raw(alice.body({}, chat('m6'), ping('q6')));
  await eventually(() => server.app.bosh.stats().pending === 1, { message: 'the later rid waiting for the gap' });
  t.equal(terminalCondition(await alice.raw(gap)), 'bad-request', 'the request that fills the gap ends the session');
  const other = await ahead;
  t.equal(terminalCondition(other), 'other-request', 'the one ahead of the gap gets other-request (§17.2)');
  t.same(errors(other), { 'message:m6': 'unexpected-request', 'iq:q6': 'unexpected-request' }, 'with the errors for its stanzas: the session is over');
  await bobGotNothing(t, bob);
});

t.test('with a resumable session (XEP-0198), a request ahead of a gap gets no errors when the session fails: the client resends what was not acknowledged', async (t) => {
  const { alice } = await closedByServer(t, 'resumable');
  const enabled = await alice.send({}, x('enable', { xmlns: NS.SM, resume: 'true' }));
  t.ok(payloads(enabled.body).some((el) => el.local === 'enabled'), 'stream management is on');
  const gap = alice.body({ type: 'bogus' });
  const ahead = alice.raw(alice.body({}, chat('m7')));
  await eventually(() => server.app.bosh.stats().pending === 1, { message: 'the later rid waiting for the gap' });
  t.equal(terminalCondition(await alice.raw(gap)), 'bad-request', 'the request that fills the gap ends the BOSH session');
  const other = await ahead;
  t.equal(terminalCondition(other), 'other-request', 'the one ahead of the gap gets other-request');
  t.same(errors(other), {}, 'and no error: the message is not counted in h, a resumption sends it again');
});

t.test('a BOSH session replaced by an XEP-0198 resumption elsewhere: the request that fetches its terminate body gets no errors, the resumed client sends its stanzas again', async (t) => {
  const { alice } = await closedByServer(t, 'moved');
  const enabled = await alice.send({}, x('enable', { xmlns: NS.SM, resume: 'true' }));
  const smid = payloads(enabled.body).find((el) => el.local === 'enabled')?.attr('id');
  t.ok(smid, 'stream management is on, resumable');
  const next = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => next.destroy());
  await next.create();
  const auth = await next.send({}, x('auth', { xmlns: NS.SASL, mechanism: 'PLAIN' }, Buffer.from('\0alice\0alice-pw').toString('base64')));
  t.ok(auth.body?.getChild('success', NS.SASL), 'the new session authenticates');
  await next.restart();
  const resumed = await next.send({}, x('resume', { xmlns: NS.SM, previd: smid, h: '0' }));
  t.ok(payloads(resumed.body).some((el) => el.local === 'resumed'), `resumed (${resumed.text.slice(0, 200)})`);
  const res = await alice.send({}, chat('m8'));
  t.equal(terminalCondition(res), 'remote-stream-error', 'the old BOSH session gets the terminate body');
  t.ok(payloads(res.body).at(-1)?.getChild('conflict'), 'with the conflict');
  t.same(errors(res), {}, 'and no error: the XMPP session lives on, and m8 was not counted in h');
});

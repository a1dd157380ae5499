/**
 * XEP-0198 over BOSH (found in review): the wait for the answer to an <r/>
 * (SM_ACK_TIMEOUT) starts when a response carries the <r/> to the client,
 * not when it is queued for a request that has not come yet. A client that
 * polls less often than SM_ACK_TIMEOUT (within BOSH_INACTIVITY) was closed
 * with connection-timeout for an <r/> it could not have read.
 *
 * No sleeps: a WebSocket session of bob's with the same SM_ACK_TIMEOUT is
 * the clock. Its <r/> is written after alice's was queued, so once bob is
 * closed for not answering, alice's <r/> has waited in her queue longer
 * than SM_ACK_TIMEOUT.
 */
import t, { type Test } from 'tap';
import { NS, x } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { RawBoshClient, payloads, terminalCondition } from '../helpers/bosh-client.js';
import { eventually } from '../helpers/eventually.js';

const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, {
  ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '60', BOSH_INACTIVITY: '60', SM_ACK_TIMEOUT: '1',
});

/** Alice over BOSH with XEP-0198 enabled, and no request held. */
async function alice(t: Test, resource: string): Promise<{ c: RawBoshClient; jid: string }> {
  const c = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => c.destroy());
  const jid = await c.login('alice', 'alice-pw', resource, { wait: 60 });
  const enabled = await c.send({}, x('enable', { xmlns: NS.SM }));
  t.ok(payloads(enabled.body).some((el) => el.is('enabled', NS.SM)), 'stream management enabled');
  return { c, jid };
}

t.test('an <r/> waiting in the BOSH queue does not run SM_ACK_TIMEOUT: the client that fetches it late and answers keeps its session', async (t) => {
  const { c, jid } = await alice(t, 'slow-poller');
  const bob = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => bob.close());
  const bobJid = await bob.login('bob', 'bob-pw', 'clock');
  bob.send(`<enable xmlns='${NS.SM}'/>`);
  await bob.until((el) => el.is('enabled', NS.SM));

  bob.send(`<message xmlns='jabber:client' to='${jid}' type='chat' id='late'><body>hi</body></message>`);
  await eventually(() => server.app.bosh.stats().queued === 2, { message: "the message and its <r/> in alice's queue" });
  // Bob's own <r/>, which he never answers: his session is closed SM_ACK_TIMEOUT after it was written.
  bob.send(`<message xmlns='jabber:client' to='${bobJid}' type='chat' id='to-self'><body>tick</body></message>`);
  await bob.until((el) => el.is('r', NS.SM));
  const error = await bob.until((el) => el.is('error', NS.STREAM), 5000);
  t.equal(streamErrorCondition(error), 'connection-timeout', 'bob, who read his <r/> and did not answer, is closed');

  const late = await c.send();
  t.equal(terminalCondition(late), undefined, 'alice polls after more than SM_ACK_TIMEOUT: her session is still there');
  const got = payloads(late.body);
  t.ok(got.some((el) => el.local === 'message' && el.attr('id') === 'late'), 'with the message');
  t.ok(got.some((el) => el.is('r', NS.SM)), 'and the <r/>, now handed to her');
  const answered = await c.send({}, x('a', { xmlns: NS.SM, h: 1 }), x('iq', { xmlns: NS.CLIENT, type: 'get', id: 'after' }, x('ping', { xmlns: NS.PING })));
  t.equal(terminalCondition(answered), undefined);
  t.ok(payloads(answered.body).some((el) => el.attr('id') === 'after'), 'the session goes on');
  await c.terminate();
});

t.test('an <r/> a response carried and the client leaves unanswered still ends the session after SM_ACK_TIMEOUT', async (t) => {
  const { c, jid } = await alice(t, 'no-answer');
  const poll = c.send();
  await eventually(() => server.app.bosh.stats().held === 1, { message: "alice's poll held" });
  const bob = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'sender');
  bob.send(`<message xmlns='jabber:client' to='${jid}' type='chat' id='unanswered'><body>hi</body></message>`);
  const fetched = await poll;
  t.ok(payloads(fetched.body).some((el) => el.local === 'message'), 'the held request carries the message');
  // The <r/> follows in the same response or the next one; alice reads it and never answers.
  const got = payloads(fetched.body).some((el) => el.is('r', NS.SM)) ? fetched : await c.send();
  t.ok(payloads(got.body).some((el) => el.is('r', NS.SM)), 'alice gets the <r/>');
  const end = await c.send();
  t.equal(terminalCondition(end), 'remote-stream-error', 'her held request ends with the stream error');
  t.equal(streamErrorCondition(payloads(end.body).at(-1)!), 'connection-timeout', 'connection-timeout (SM_ACK_TIMEOUT)');
});

/**
 * XEP-0124 §10 pause with XEP-0198: a client that paused its BOSH session
 * (a page changing, within 'maxpause') cannot fetch, so it cannot answer an
 * <r/> the server queued meanwhile; the session must wait for it as long as
 * the pause the server granted, not end for an unanswered <r/>.
 */
import t from 'tap';
import { NS, x } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { RawBoshClient, payloads, terminalCondition } from '../helpers/bosh-client.js';
import { eventually, sleep } from '../helpers/eventually.js';

// SM_ACK_TIMEOUT well below the pause: an <r/> unanswered for a second would end the session.
const server = await withUsers(t, { alice: 'alice-pw', bob: 'bob-pw' }, { ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '2', SM_ACK_TIMEOUT: '1' });

t.test('a paused BOSH session is not ended for an <r/> it could not fetch; the client back within its pause gets the message and the <r/>', async (t) => {
  const bosh = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => bosh.destroy());
  const jid = await bosh.login('alice', 'alice-pw', 'paused', { wait: 2 });
  const enabled = await bosh.send({}, x('enable', { xmlns: NS.SM, resume: 'true' }));
  t.ok(payloads(enabled.body).some((el) => el.is('enabled', NS.SM)), 'stream management enabled');
  // The page goes away for a while: a pause the server grants (maxpause 120).
  const paused = await bosh.send({ pause: 30 });
  t.equal(paused.body?.attr('type'), undefined, 'the pause is answered at once');
  const bob = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw');
  bob.send(`<message xmlns='jabber:client' to='${jid}' type='chat' id='during-pause'><body>hi</body></message>`);
  await eventually(() => server.app.bosh.stats().queued >= 2, { message: 'the message and its <r/> queued for the paused client' });
  // Several ack timeouts pass while the client is away, well within its pause.
  await sleep(3000);
  const back = await bosh.send();
  t.equal(terminalCondition(back), undefined, 'the session is still there');
  const got = payloads(back.body);
  t.ok(got.some((el) => el.local === 'message' && el.attr('id') === 'during-pause'), 'the message sent during the pause');
  t.ok(got.some((el) => el.is('r', NS.SM)), 'and the <r/> asking for it');
  // The client answers in its next request, as it would after reading the response.
  const answered = await bosh.send({}, x('a', { xmlns: NS.SM, h: 1 }), x('iq', { xmlns: NS.CLIENT, type: 'get', id: 'after-pause' }, x('ping', { xmlns: NS.PING })));
  t.equal(terminalCondition(answered), undefined);
  t.ok(payloads(answered.body).some((el) => el.attr('id') === 'after-pause'), 'the session goes on');
  await bosh.terminate();
});

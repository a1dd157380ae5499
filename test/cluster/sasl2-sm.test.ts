/**
 * SASL2 across cluster nodes (SM_BACKEND=redis, PostgreSQL shared): a FAST
 * token issued on node 1 logs in on node 2, and its <authenticate/> resumes
 * inline the session node 1 held, through the same takeover as a classic
 * <resume/> (XEP-0198, XEP-0388, XEP-0484).
 */
import t from 'tap';
import { NS } from '../../src/xml/index.js';
import { addUsers, clusterBackends, startGateway } from '../helpers/gateways.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { eventually } from '../helpers/eventually.js';
import { authenticate, htResponse, plainResponse } from '../helpers/sasl2.js';

const backends = clusterBackends(t);
const AGENT = '3e4d5c6b-7a89-4b0c-9d1e-2f3a4b5c6d7e';

t.test('a session started on node 1 resumes inline on node 2 with a FAST token from node 1, and gets the message sent meanwhile', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true', SASL2_ENABLED: 'true' });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice', 'bob']);

  const alice = await RawWsClient.connect(n1.server.wsUrl);
  t.teardown(() => alice.close());
  await alice.openStream();
  alice.send(authenticate({ mechanism: 'PLAIN', initial: plainResponse('alice', 'alice-pw'), agent: AGENT, bind: { tag: 'web', sm: true }, requestToken: true }).toString());
  const success = await alice.next();
  const jid = success.getChildText('authorization-identifier')!;
  const smid = success.getChild('bound', NS.BIND2)?.getChild('enabled', NS.SM)?.attr('id');
  const token = success.getChild('token', NS.FAST)?.attr('token');
  t.ok(smid && token, 'node 1: bound, SM enabled inline, a token issued');
  alice.ws.terminate();
  const resource = jid.split('/')[1]!;
  await eventually(() => n1.server.app.sessions.get('localhost', 'alice', resource)?.conn === null, { message: 'alice hibernating on node 1' });

  const bob = await RawWsClient.connect(n2.server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'desk');
  await eventually(() => n2.server.app.sessions.get('localhost', 'alice', resource), { message: 'alice seen from node 2' });
  bob.send(`<message xmlns='jabber:client' to='${jid}' type='chat' id='meanwhile'><body>hi</body></message>`);
  bob.send(`<iq xmlns='jabber:client' type='get' id='rt'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await bob.until((el) => el.attr('id') === 'rt');

  const page = await RawWsClient.connect(n2.server.wsUrl);
  t.teardown(() => page.close());
  await page.openStream();
  page.send(authenticate({
    mechanism: 'HT-SHA-256-NONE', initial: htResponse('alice', token!), agent: AGENT, fast: true,
    resume: { previd: smid!, h: 0 }, bind: { tag: 'web', sm: true },
  }).toString());
  const answer = await page.next();
  t.ok(answer.is('success', NS.SASL2), `node 2 accepts node 1's token (${answer.toString().slice(0, 200)})`);
  t.equal(answer.getChild('resumed', NS.SM)?.attr('previd'), smid, 'and resumes node 1\'s session inline');
  t.equal(answer.getChildText('authorization-identifier'), jid, 'the same full JID');
  const message = await page.until((el) => el.local === 'message');
  t.equal(message.attr('id'), 'meanwhile', 'the message sent while away arrives on node 2');
  t.equal(n2.server.app.sessions.get('localhost', 'alice', resource)?.transport, 'websocket', 'node 2 holds the session now');
});

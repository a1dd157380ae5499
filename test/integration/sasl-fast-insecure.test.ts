/**
 * XEP-0484 §6 "FAST authentication MUST only be performed over a secure connection",
 * and the project's own rule for bearer secrets (PLAIN and OAUTHBEARER only where the stream is
 * protected, RFC 4616 §6 / RFC 7628 §5). On a plain ws:// stream (no TLS, no proxy saying https,
 * ALLOW_INSECURE_PLAIN off) the server still offers FAST, hands out a token in clear text and
 * accepts the replayable HT-SHA-256-NONE proof.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { authenticate, htResponse } from '../helpers/sasl2.js';
import { scramFirst, scramFinal } from '../helpers/scram-client.js';
import { NS } from '../../src/xml/index.js';

const AGENT = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
const server = await withUsers(t, ['alice'], { SASL2_ENABLED: 'true' });

t.test('no FAST on an insecure stream', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.close());
  const features = await c.openStream();
  const mechs = features.getChild('authentication', NS.SASL2)!.getChildren().filter((m) => m.local === 'mechanism').map((m) => m.text());
  t.notOk(mechs.includes('PLAIN'), 'sanity: PLAIN is not offered here (the stream is insecure)');
  t.notOk(features.getChild('authentication', NS.SASL2)?.getChild('inline')?.getChild('fast', NS.FAST), 'FAST is not offered on an insecure stream');
  // SCRAM (fine over an insecure stream) with <request-token/>.
  const first = scramFirst('alice');
  c.send(authenticate({ mechanism: 'SCRAM-SHA-256', initial: first.message, agent: AGENT, bind: { tag: 'raw' }, requestToken: true }).toString());
  const challenge = await c.next();
  c.send(`<response xmlns='${NS.SASL2}'>${scramFinal(first, challenge.text(), 'alice-pw')}</response>`);
  const success = await c.next();
  t.ok(success.is('success', NS.SASL2), 'SCRAM logs in');
  const token = success.getChild('token', NS.FAST)?.attr('token');
  t.notOk(token, 'no bearer token is sent in clear text');
  if (!token) return;
  const d = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => d.close());
  await d.openStream();
  d.send(authenticate({ mechanism: 'HT-SHA-256-NONE', initial: htResponse('alice', token), agent: AGENT, fast: true, bind: { tag: 'raw' } }).toString());
  t.notOk((await d.next()).is('success', NS.SASL2), 'a FAST login over an insecure stream is refused');
});

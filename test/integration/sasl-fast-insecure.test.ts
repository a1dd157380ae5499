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

t.test('no SASL2, so no FAST, on an insecure stream (XEP-0388 §9, XEP-0484 §6)', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.close());
  const features = await c.openStream();
  t.notOk(features.getChild('authentication', NS.SASL2), 'SASL2 is not offered on an insecure stream');
  t.ok(features.getChild('mechanisms', NS.SASL), 'the legacy SASL is');
  // A client that sends <authenticate/> all the same (SCRAM, asking for a token) is refused before any exchange.
  const first = scramFirst('alice');
  c.send(authenticate({ mechanism: 'SCRAM-SHA-256', initial: first.message, agent: AGENT, bind: { tag: 'raw' }, requestToken: true }).toString());
  const answer = await c.next();
  t.ok(answer.is('failure', NS.SASL2), `refused (${answer.toString()})`);
  t.ok(answer.getChild('encryption-required', NS.SASL), 'encryption-required (RFC 6120 §6.5.6)');
  t.notOk(answer.toString().includes('token'), 'no bearer token is sent in clear text');
});

t.test('behind a trusted proxy that says https, SASL2 is offered with FAST, and a token logs in', async (t) => {
  const secure = { 'x-forwarded-proto': 'https' };
  const c = await RawWsClient.connect(server.wsUrl, 'xmpp', secure);
  t.teardown(() => c.close());
  const features = await c.openStream();
  t.ok(features.getChild('authentication', NS.SASL2)?.getChild('inline')?.getChild('fast', NS.FAST), 'SASL2 with FAST offered on a secure stream');
  const first = scramFirst('alice');
  c.send(authenticate({ mechanism: 'SCRAM-SHA-256', initial: first.message, agent: AGENT, bind: { tag: 'raw' }, requestToken: true }).toString());
  const challenge = await c.next();
  c.send(`<response xmlns='${NS.SASL2}'>${scramFinal(first, challenge.text(), 'alice-pw')}</response>`);
  const success = await c.next();
  t.ok(success.is('success', NS.SASL2), 'SCRAM logs in');
  const token = success.getChild('token', NS.FAST)?.attr('token');
  t.ok(token, 'a token is handed out on the secure stream');
  if (!token) return;
  // The same token over an insecure stream: SASL2 is refused there before the token is looked at.
  const d = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => d.close());
  await d.openStream();
  d.send(authenticate({ mechanism: 'HT-SHA-256-NONE', initial: htResponse('alice', token), agent: AGENT, fast: true, bind: { tag: 'raw' } }).toString());
  const refused = await d.next();
  t.ok(refused.getChild('encryption-required', NS.SASL), `a FAST login over an insecure stream is refused (${refused.toString()})`);
});

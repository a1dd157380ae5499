/**
 * RFC 6120 §6.4.5 — after SASL_MAX_FAILURES failed attempts the stream is closed.
 * An OAUTHBEARER attempt with a bad token gets the RFC 7628 §3.2.2 error challenge; a client
 * that never sends the kvsep but starts a new <auth/> is never counted against the stream's limit.
 */
import t from 'tap';
import { NS } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';

const env = { JWT_SECRET: 'a-web-app-secret-of-at-least-32-characters', SASL_MAX_FAILURES: '2' };
const server = await withUsers(t, ['alice'], env);
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

t.test('bad bearer tokens without the kvsep still count toward SASL_MAX_FAILURES', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl, 'xmpp', { 'x-forwarded-proto': 'https' });
  t.teardown(() => c.ws.terminate());
  await c.openStream();
  let answered = 0;
  for (let i = 0; i < 6; i++) {
    c.send(`<auth xmlns='${NS.SASL}' mechanism='OAUTHBEARER'>${b64(`n,a=alice@localhost,\x01auth=Bearer guess${i}\x01\x01`)}</auth>`);
    const el = await c.next().catch(() => undefined);
    if (!el || !el.is('challenge', NS.SASL)) break;
    answered++;
  }
  t.ok(answered <= 2, `the stream ends after 2 failed guesses (got ${answered} error challenges)`);
});

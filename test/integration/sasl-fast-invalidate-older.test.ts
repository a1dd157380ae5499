/**
 * XEP-0484 §3.4 "Upon successful use of any token, the server MUST invalidate all
 * tokens issued to the same client with an earlier expiry than the current token", and §3.5
 * (log out with invalidate='true'). A login with the rotated (newer) token that also asks
 * to invalidate it leaves the older token of the same client working.
 */
import t, { type Test } from 'tap';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { authenticate, failureCondition, htResponse, plainResponse } from '../helpers/sasl2.js';
import { NS, x, type XmlElement } from '../../src/xml/index.js';

const AGENT = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
const server = await withUsers(t, ['alice'], { SASL2_ENABLED: 'true', ALLOW_INSECURE_PLAIN: 'true' });

async function attempt(tt: Test, el: XmlElement): Promise<XmlElement> {
  const c = await RawWsClient.connect(server.wsUrl);
  tt.teardown(() => c.close());
  await c.openStream();
  c.send(el.toString());
  return c.next();
}
const tokenLogin = (token: string, extra: { requestToken?: boolean } = {}): XmlElement =>
  authenticate({ mechanism: 'HT-SHA-256-NONE', initial: htResponse('alice', token), agent: AGENT, fast: true, bind: { tag: 'raw' }, ...extra });

t.test('using the newer token (with invalidate) ends the older one of the same client', async (t) => {
  const a = (await attempt(t, authenticate({ mechanism: 'PLAIN', initial: plainResponse('alice', 'alice-pw'), agent: AGENT, bind: { tag: 'raw' }, requestToken: true })))
    .getChild('token', NS.FAST)!.attr('token')!;
  const rotated = await attempt(t, tokenLogin(a, { requestToken: true }));
  const b = rotated.getChild('token', NS.FAST)!.attr('token')!;
  t.ok(b && b !== a, 'a rotated token B');
  // "Log out": the client uses B, its newest token, asking that it be invalidated.
  const logout = authenticate({ mechanism: 'HT-SHA-256-NONE', initial: htResponse('alice', b), agent: AGENT, bind: { tag: 'raw' } });
  logout.append(x('fast', { xmlns: NS.FAST, invalidate: 'true' }));
  t.ok((await attempt(t, logout)).is('success', NS.SASL2), 'B logs in once more');
  t.equal(failureCondition(await attempt(t, tokenLogin(b))), 'not-authorized', 'B is invalidated');
  t.equal(failureCondition(await attempt(t, tokenLogin(a))), 'not-authorized', 'A, older than B which was used, must be invalid too');
});

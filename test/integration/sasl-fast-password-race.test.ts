/**
 * A FAST token (XEP-0484) must not outlive a password change through a login
 * that checked the old password. SCRAM reads the credentials at the
 * client-first message and verifies the proof a round trip later: a change
 * in between ends the account's tokens (storage trigger), and the token this
 * login asked for was stored after that, so it used to stay valid for
 * FAST_TOKEN_TTL (the session itself is ended AUTH_TIMEOUT later,
 * account-changes.ts, but the token logged in again). Someone who knows the
 * old password keeps an exchange pending and so keeps the account after the
 * owner changed the password. A FAST login that found its token before the
 * change is the same case.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { authenticate, failureCondition, htResponse, plainResponse } from '../helpers/sasl2.js';
import { scramFinal, scramFirst } from '../helpers/scram-client.js';
import { NS, x } from '../../src/xml/index.js';
import { deriveStoredCredentials } from '../../src/storage/index.js';

const AGENT = '7c6b5a49-3827-4165-a4b3-c2d1e0f9a8b7';
const server = await withUsers(t, { alice: 'old-pw' }, { SASL2_ENABLED: 'true', ALLOW_INSECURE_PLAIN: 'true' });

async function stream(): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.close());
  await c.openStream();
  return c;
}

const newPassword = async (password: string): Promise<void> =>
  server.storage.users.setCredentials('localhost', 'alice', await deriveStoredCredentials(password, server.config.scramIterations));

const tokenLogin = (token: string) =>
  authenticate({ mechanism: 'HT-SHA-256-NONE', initial: htResponse('alice', token), agent: AGENT, fast: true, requestToken: true });

t.test('a SCRAM exchange that read the old credentials before a password change gets no token that outlives it', async (t) => {
  const c = await stream();
  const first = scramFirst('alice');
  c.send(authenticate({ mechanism: 'SCRAM-SHA-256', initial: first.message, agent: AGENT, requestToken: true }).toString());
  const challenge = await c.next();
  t.ok(challenge.is('challenge', NS.SASL2), 'server-first-message, read with the old credentials');
  await newPassword('new-pw');
  c.send(x('response', { xmlns: NS.SASL2 }, scramFinal(first, challenge.text(), 'old-pw')).toString());
  const answer = await c.next();
  t.ok(answer.is('success', NS.SASL2), 'the proof matches what was read');
  const token = answer.getChild('token', NS.FAST)?.attr('token');
  if (token !== undefined) {
    const again = await stream();
    again.send(tokenLogin(token).toString());
    t.equal(failureCondition(await again.next()), 'not-authorized', 'the token given out does not log in after the change');
  } else {
    t.pass('no token given out');
  }
});

t.test('a FAST login that found its token before a password change gets no new token that outlives it', async (t) => {
  await newPassword('pw-1');
  const c = await stream();
  c.send(authenticate({ mechanism: 'PLAIN', initial: plainResponse('alice', 'pw-1'), agent: AGENT, requestToken: true }).toString());
  const first = await c.next();
  const token = first.getChild('token', NS.FAST)?.attr('token');
  t.ok(token, 'a token for the password pw-1');
  // The token is found (tokens.find), then the password changes before the login is done with it.
  const store = server.storage.fastTokens;
  const find = store.find.bind(store);
  t.teardown(() => { store.find = find; });
  let changes = 0;
  store.find = async (...args) => {
    const found = await find(...args);
    if (changes++ === 0) await newPassword('pw-2');
    return found;
  };
  const d = await stream();
  d.send(tokenLogin(token!).toString());
  const answer = await d.next();
  store.find = find;
  t.ok(changes >= 1, 'the password changed during the FAST login');
  const rotated = answer.getChild('token', NS.FAST)?.attr('token');
  if (answer.is('success', NS.SASL2) && rotated !== undefined) {
    const again = await stream();
    again.send(tokenLogin(rotated).toString());
    t.equal(failureCondition(await again.next()), 'not-authorized', 'the new token does not log in after the change');
  } else {
    t.pass('no new token given out');
  }
});

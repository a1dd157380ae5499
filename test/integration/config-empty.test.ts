/**
 * A variable set but empty (`XMPP_DOMAIN=`, as a deployment template writes a value it forgot) was read as unset:
 * the real process (`node dist/main.js`) served localhost without a word. Where the default is not empty, an empty
 * value is a bad value: the start stops with the configuration errors' exit code (2), naming the variable.
 */
import t, { type Test } from 'tap';
import { ensureBuilt, MAIN, mainExit } from '../helpers/built.js';

t.setTimeout(60_000);
t.before(() => ensureBuilt(MAIN));

const run = (t: Test, env: Record<string, string>) => mainExit(t, t.testdir(), { ADMIN_SOCKET: 'off', ...env });

t.test('XMPP_DOMAIN= stops the start naming the variable, exit code 2', async (t) => {
  const r = await run(t, { XMPP_DOMAIN: '' });
  t.equal(r.code, 2, r.stderr);
  t.match(r.stderr, /^xmpp-web-gateway: configuration error: XMPP_DOMAIN="" is invalid: expected .*; unset XMPP_DOMAIN for its default \(localhost\)$/m);
});

t.test('SHUTDOWN_TIMEOUT= (a number left empty) stops the start the same way', async (t) => {
  const r = await run(t, { SHUTDOWN_TIMEOUT: ' ' });
  t.equal(r.code, 2, r.stderr);
  t.match(r.stderr, /configuration error: SHUTDOWN_TIMEOUT=" " is invalid: expected an integer from 1 to 600/);
});

/**
 * The JWT_* settings (token login for web apps): a bad value or combination
 * stops the start with a message naming the variable, and the secret is never
 * echoed.
 */
import t from 'tap';
import { loadConfig } from '../../src/config/index.js';

const SECRET = 'x'.repeat(32);

t.test('token login is off by default, and on with a secret or a key set', async (t) => {
  const off = loadConfig({});
  t.equal(off.jwtSecret, '');
  t.equal(off.jwtJwksUrl, '');
  t.equal(off.jwtJidClaim, 'jid', 'the JID claim defaults to jid');
  t.equal(off.jwtCreateUsers, false, 'token users must exist by default');
  t.same(loadConfig({ JWT_SECRET: SECRET, JWT_ALGORITHMS: 'HS256' }).jwtAlgorithms, ['HS256']);
  t.same(loadConfig({ JWT_JWKS_URL: 'https://app.example/jwks.json', JWT_ALGORITHMS: 'RS256,ES256' }).jwtAlgorithms, ['RS256', 'ES256']);
});

t.test('bad values and combinations stop the start, naming the variable', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ JWT_SECRET: 'short' }, /^JWT_SECRET=\(value hidden\) is invalid: expected a shared secret of at least 32 characters/m],
    [{ JWT_SECRET: SECRET, JWT_JWKS_URL: 'https://app.example/jwks.json' }, /JWT_JWKS_URL is invalid with JWT_SECRET/],
    [{ JWT_SECRET: SECRET, JWT_ALGORITHMS: 'RS256' }, /JWT_ALGORITHMS="RS256" is invalid: expected HS256/],
    [{ JWT_JWKS_URL: 'https://app.example/jwks.json', JWT_ALGORITHMS: 'HS256,RS256' }, /JWT_ALGORITHMS="HS256,RS256" is invalid: expected RS256 or ES256/],
    [{ JWT_SECRET: SECRET, JWT_ALGORITHMS: 'none' }, /^$/],
    [{ JWT_SECRET: SECRET, JWT_ALGORITHMS: 'HS512' }, /JWT_ALGORITHMS="HS512" is invalid: expected a comma-separated list of HS256, RS256 or ES256/],
    [{ JWT_JWKS_URL: 'ftp://app.example/jwks' }, /JWT_JWKS_URL="ftp:\/\/app.example\/jwks" is invalid: expected an http\(s\) URL/],
    [{ JWT_AUDIENCE: 'localhost' }, /JWT_AUDIENCE is set but token login is off: expected JWT_SECRET or JWT_JWKS_URL/],
    [{ JWT_CREATE_USERS: 'true' }, /JWT_CREATE_USERS is set but token login is off/],
    [{ JWT_SECRET: SECRET, JWT_JID_CLAIM: 'a b' }, /JWT_JID_CLAIM="a b" is invalid: expected a claim name/],
    [{ JWT_SECRET: SECRET, JWT_CLOCK_TOLERANCE: '9999' }, /JWT_CLOCK_TOLERANCE="9999" is invalid: expected an integer from 0 to 600/],
  ];
  for (const [env, message] of cases) {
    if (message.source === '^$') {
      // 'none' is the list's way to say "no items": the default algorithms for the key source, never alg none.
      t.same(loadConfig(env).jwtAlgorithms, [], `${JSON.stringify(env)} means the defaults`);
      continue;
    }
    t.throws(() => loadConfig(env), message, JSON.stringify(env));
  }
});

t.test('the secret never appears in an error', async (t) => {
  const secret = 'too-short-secret';
  try {
    loadConfig({ JWT_SECRET: secret });
    t.fail('a short secret must be refused');
  } catch (err) {
    t.notMatch(String(err), secret);
  }
});

/** The OAUTHBEARER client response grammar (RFC 7628 §3.1). */
import t from 'tap';
import { errorChallenge, parseOauthBearer } from '../../src/sasl/oauthbearer.js';

t.test('the initial client response gives the token and the authzid', async (t) => {
  t.same(parseOauthBearer('n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01'), {
    kind: 'initial', token: 'vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==', authzid: 'user@example.com',
  }, 'the example of RFC 7628 §4.1');
  t.same(parseOauthBearer('n,,\x01auth=Bearer a.b.c\x01\x01'), { kind: 'initial', token: 'a.b.c', authzid: undefined }, 'no authzid');
  t.same(parseOauthBearer('y,a=a=3Db,\x01auth=bearer t\x01\x01'), { kind: 'initial', token: 't', authzid: 'a=b' }, 'saslname escapes; the scheme in any case');
});

t.test("the client's single kvsep acknowledges the error challenge", async (t) => {
  t.same(parseOauthBearer('\x01'), { kind: 'acknowledge' });
});

t.test('malformed responses are named as such', async (t) => {
  const bad = [
    'n,,auth=Bearer t', // no kvsep
    'n,,\x01auth=Bearer t\x01', // one kvsep at the end, not two
    'p=tls-unique,,\x01auth=Bearer t\x01\x01', // channel binding
    'n,,\x01auth=Basic dXNlcjpwYXNz\x01\x01', // not a bearer token
    'n,,\x01host=x\x01\x01', // no auth
    'n,,\x01auth=Bearer t u\x01\x01', // not a b64token
    'n,a=x=y,\x01auth=Bearer t\x01\x01', // a bad saslname
    'n,,extra,\x01auth=Bearer t\x01\x01', // a bad gs2 header
    '',
  ];
  for (const m of bad) t.equal(parseOauthBearer(m).kind, 'malformed', JSON.stringify(m));
});

t.test('the error challenge is the JSON status of §3.2.2', async (t) => {
  t.same(JSON.parse(errorChallenge('invalid_token')), { status: 'invalid_token' });
});

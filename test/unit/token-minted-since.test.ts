/**
 * mintedSinceCredentials (sasl-token.ts): a token login minted before the
 * account's last change of credentials is refused; iat has whole seconds, so
 * a token of the change's own second is taken.
 */
import t from 'tap';
import { mintedSinceCredentials } from '../../src/xmpp/features/sasl-token.js';

const created = 1_700_000_000_000;
const changed = { createdAt: created, credentialsChangedAt: created + 3_600_500 }; // a password change, 500 ms into its second
const changeSecond = Math.floor(changed.credentialsChangedAt / 1000);

t.test('credentials never changed since the account was made: every token, with iat or not', async (t) => {
  const never = { createdAt: created, credentialsChangedAt: created };
  t.ok(mintedSinceCredentials(undefined, never), 'no iat');
  t.ok(mintedSinceCredentials(created / 1000 - 86_400, never), 'minted a day before the account (JWT_CREATE_USERS)');
});

t.test('after a change: iat from the change second on', async (t) => {
  t.notOk(mintedSinceCredentials(changeSecond - 1, changed), 'the second before the change: refused');
  t.ok(mintedSinceCredentials(changeSecond, changed), "the change's own second: taken");
  t.ok(mintedSinceCredentials(changeSecond + 60, changed), 'later: taken');
  t.notOk(mintedSinceCredentials(undefined, changed), 'no iat: refused');
});

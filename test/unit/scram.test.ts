import t from 'tap';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import {
  deriveCredentials,
  deriveCredentialsAsync,
  SCRAM_MECHANISMS,
  ScramServer,
  verifyPassword,
  type ScramCredentials,
  type ScramHash,
  type ScramStep,
} from '../../src/sasl/scram.js';
import { saslprep } from '../../src/sasl/saslprep.js';

const b64 = (s: string): Buffer => Buffer.from(s, 'base64');
const KEY_LENGTH: Record<ScramHash, number> = { sha1: 20, sha256: 32 };

// RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677 §3 (SCRAM-SHA-256) example exchanges, password "pencil".
const RFC5802 = {
  salt: 'QSXCR+Q6sek8bf92',
  serverNonce: '3rfcNHYJY1ZVvWVs7j',
  clientFirst: 'n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL',
  serverFirst: 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096',
  clientFinal: 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=',
  serverFinal: 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=',
};
const RFC7677 = {
  salt: 'W22ZaJ0SNY7soEsUEjb6gQ==',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,'
    + 'p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

const lookupFrom = (users: Record<string, ScramCredentials>) =>
  async (username: string): Promise<ScramCredentials | undefined> => users[username];

/** Minimal SCRAM client (RFC 5802 §3) to produce client-final-messages. */
function clientFinal(hash: ScramHash, password: string, clientFirst: string, serverFirst: string,
  opts: { cbind?: string; nonce?: string } = {}): string {
  const attrs = new Map(serverFirst.split(',').map((a) => [a[0], a.slice(2)] as const));
  const gs2 = clientFirst.slice(0, clientFirst.indexOf(',', clientFirst.indexOf(',') + 1) + 1);
  const bare = clientFirst.slice(gs2.length);
  const withoutProof = `c=${opts.cbind ?? Buffer.from(gs2).toString('base64')},r=${opts.nonce ?? attrs.get('r')}`;
  const salted = pbkdf2Sync(saslprep(password), b64(attrs.get('s') ?? ''), Number(attrs.get('i')),
    KEY_LENGTH[hash], hash);
  const clientKey = createHmac(hash, salted).update('Client Key').digest();
  const storedKey = createHash(hash).update(clientKey).digest();
  const signature = createHmac(hash, storedKey).update(`${bare},${serverFirst},${withoutProof}`).digest();
  const proof = Buffer.from(clientKey.map((byte, i) => byte ^ (signature[i] ?? 0)));
  return `${withoutProof},p=${proof.toString('base64')}`;
}

function challenge(step: ScramStep): string {
  if (step.kind !== 'challenge') throw new Error(`expected a challenge, got ${JSON.stringify(step)}`);
  return step.data;
}

/** Runs a whole exchange; `password` is what the client types. */
async function run(server: ScramServer, hash: ScramHash, clientFirst: string,
  password: string): Promise<ScramStep> {
  const serverFirst = challenge(await server.start(clientFirst));
  return server.finish(clientFinal(hash, password, clientFirst, serverFirst));
}

t.test('mechanism table', async (t) => {
  t.same(SCRAM_MECHANISMS, { 'SCRAM-SHA-1': 'sha1', 'SCRAM-SHA-256': 'sha256' });
});

for (const [name, hash, v] of [['RFC 5802 §5 SCRAM-SHA-1', 'sha1', RFC5802],
  ['RFC 7677 §3 SCRAM-SHA-256', 'sha256', RFC7677]] as const) {
  t.test(`${name} example exchange`, async (t) => {
    const creds = deriveCredentials(hash, 'pencil', 4096, b64(v.salt));
    t.equal(creds.salt, v.salt);
    t.equal(creds.iterations, 4096);
    const lookedUp: string[] = [];
    const server = new ScramServer(hash, async (u) => {
      lookedUp.push(u);
      return u === 'user' ? creds : undefined;
    }, { serverNonce: v.serverNonce });
    t.same(await server.start(v.clientFirst), { kind: 'challenge', data: v.serverFirst });
    t.same(server.finish(v.clientFinal), { kind: 'success', data: v.serverFinal, username: 'user' });
    t.same(lookedUp, ['user']);
    t.equal(server.finish(v.clientFinal).kind, 'failure', 'an exchange cannot be finished twice');
  });
}

t.test('random nonces, both hashes, through the test client', async (t) => {
  for (const hash of ['sha1', 'sha256'] as const) {
    const creds = deriveCredentials(hash, 'correct horse', 4096);
    const users = lookupFrom({ juliet: creds });
    const ok = await run(new ScramServer(hash, users), hash, 'n,,n=juliet,r=abc123', 'correct horse');
    t.equal(ok.kind, 'success', hash);
    const first = challenge(await new ScramServer(hash, users).start('n,,n=juliet,r=abc'));
    t.match(first, /^r=abc[A-Za-z0-9+/]{24},s=[A-Za-z0-9+/=]+,i=4096$/, 'default 18-byte server nonce');
    const wrong = await run(new ScramServer(hash, users), hash, 'n,,n=juliet,r=abc', 'wrong horse');
    t.same(wrong, { kind: 'failure', condition: 'not-authorized', text: 'invalid-proof' }, `${hash} wrong pw`);
  }
});

t.test('unknown user: challenge then not-authorized, indistinguishable from a wrong password', async (t) => {
  const users = lookupFrom({ juliet: deriveCredentials('sha256', 'pw', 4096) });
  const first = challenge(await new ScramServer('sha256', users).start('n,,n=romeo,r=abc'));
  t.match(first, /^r=abc.+,s=[A-Za-z0-9+/]{22}==,i=4096$/, 'looks like a real 16-byte salt');
  const again = challenge(await new ScramServer('sha256', users).start('n,,n=romeo,r=abc'));
  t.equal(again.split(',')[1], first.split(',')[1], 'fake salt is stable per user name');
  const other = challenge(await new ScramServer('sha256', users).start('n,,n=mercutio,r=abc'));
  t.not(other.split(',')[1], first.split(',')[1], 'fake salt differs per user name');
  const step = await run(new ScramServer('sha256', users), 'sha256', 'n,,n=romeo,r=abc', 'pw');
  t.same(step, { kind: 'failure', condition: 'not-authorized', text: 'invalid-proof' });
  const secret = Buffer.alloc(32, 7);
  const s1 = challenge(await new ScramServer('sha1', users, { unknownUserSecret: secret, unknownUserIterations: 10000 })
    .start('n,,n=romeo,r=abc'));
  const s2 = challenge(await new ScramServer('sha1', users, { unknownUserSecret: secret }).start('n,,n=romeo,r=abc'));
  t.equal(s1.split(',')[1], s2.split(',')[1], 'configurable secret');
  t.match(s1, /,i=10000$/, 'configurable iteration count');
});

t.test('malformed client-first-message variants', async (t) => {
  const users = lookupFrom({ user: deriveCredentials('sha1', 'pencil', 4096) });
  const cases: Array<[string, string]> = [
    ['', 'invalid-encoding'],
    ['n', 'invalid-encoding'],
    ['n,,', 'invalid-encoding'],
    ['n,,n=user', 'invalid-encoding'],
    ['x,,n=user,r=abc', 'invalid-encoding'],
    ['N,,n=user,r=abc', 'invalid-encoding'],
    ['n,,r=abc,n=user', 'invalid-username-encoding'],
    ['n,,n=,r=abc', 'invalid-username-encoding'],
    ['n,,n=us=er,r=abc', 'invalid-username-encoding'],
    ['n,,n=a=2cb,r=abc', 'invalid-username-encoding'],
    ['n,,n=\u0007,r=abc', 'invalid-username-encoding'],
    ['n,,n=\u00AD,r=abc', 'invalid-username-encoding'],
    ['n,,n=user,r=', 'invalid-encoding'],
    ['n,,n=user,r=a b', 'invalid-encoding'],
    ['n,,n=user,x=abc', 'invalid-encoding'],
    ['n,,m=ext,n=user,r=abc', 'extensions-not-supported'],
    ['n,,n=user,r=abc,m=ext', 'extensions-not-supported'],
    ['n,,n=user,r=abc,1=x', 'invalid-encoding'],
    ['n,,n=user,r=abc,x=', 'invalid-encoding'],
    ['n,u=user,n=user,r=abc', 'invalid-username-encoding'],
    ['n,a=,n=user,r=abc', 'invalid-username-encoding'],
    ['p=tls-unique,,n=user,r=abc', 'channel-binding-not-supported'],
    ['p=tls-exporter,a=user,n=user,r=abc', 'channel-binding-not-supported'],
  ];
  for (const [msg, text] of cases) {
    const step = await new ScramServer('sha1', users).start(msg);
    t.same(step, { kind: 'failure', condition: 'malformed-request', text }, JSON.stringify(msg));
  }
  const ext = await new ScramServer('sha1', users).start('n,,n=user,r=abc,x=optional');
  t.equal(ext.kind, 'challenge', 'unknown optional extensions are ignored');
});

t.test("gs2 flag 'y' is accepted (server offers no channel binding)", async (t) => {
  const users = lookupFrom({ user: deriveCredentials('sha1', 'pencil', 4096) });
  const step = await run(new ScramServer('sha1', users), 'sha1', 'y,,n=user,r=abc', 'pencil');
  t.equal(step.kind, 'success');
  const server = new ScramServer('sha1', users);
  const serverFirst = challenge(await server.start('y,,n=user,r=abc'));
  const biws = clientFinal('sha1', 'pencil', 'y,,n=user,r=abc', serverFirst, { cbind: 'biws' });
  t.same(server.finish(biws), { kind: 'failure', condition: 'malformed-request', text: 'channel-bindings-dont-match' },
    "c= must repeat the client's own gs2 header");
});

t.test('client-final-message tampering and syntax', async (t) => {
  const users = lookupFrom({ user: deriveCredentials('sha1', 'pencil', 4096) });
  const cf = 'n,,n=user,r=abc';
  const attempt = async (make: (serverFirst: string) => string): Promise<ScramStep> => {
    const server = new ScramServer('sha1', users, { serverNonce: 'srv' });
    return server.finish(make(challenge(await server.start(cf))));
  };
  const good = (sf: string): string => clientFinal('sha1', 'pencil', cf, sf);
  t.equal((await attempt(good)).kind, 'success', 'baseline');
  const fails: Array<[string, (sf: string) => string, string]> = [
    ['other nonce', (sf) => clientFinal('sha1', 'pencil', cf, sf, { nonce: 'abcother' }), 'nonce does not match'],
    ['client nonce only', (sf) => clientFinal('sha1', 'pencil', cf, sf, { nonce: 'abc' }), 'nonce does not match'],
    ['c= for y,,', (sf) => clientFinal('sha1', 'pencil', cf, sf, { cbind: 'eSws' }), 'channel-bindings-dont-match'],
    ['c= not base64', (sf) => clientFinal('sha1', 'pencil', cf, sf, { cbind: 'b!ws' }), 'channel-bindings-dont-match'],
    ['proof not base64', (sf) => good(sf).replace(/p=.*$/, 'p=***'), 'invalid-encoding'],
    ['missing proof', (sf) => good(sf).replace(/,p=.*$/, ''), 'invalid-encoding'],
    ['empty', () => '', 'invalid-encoding'],
    ['attributes swapped', (sf) => good(sf).replace(/^c=([^,]*),r=([^,]*)/, 'r=$2,c=$1'), 'invalid-encoding'],
    ['m= extension', (sf) => good(sf).replace(',p=', ',m=x,p='), 'extensions-not-supported'],
  ];
  for (const [name, make, text] of fails) {
    t.same(await attempt(make), { kind: 'failure', condition: 'malformed-request', text }, name);
  }
  const short = await attempt((sf) => good(sf).replace(/p=.*$/, 'p=AAAA'));
  t.same(short, { kind: 'failure', condition: 'not-authorized', text: 'invalid-proof' }, 'wrong-length proof');
  const flipped = await attempt((sf) => good(sf).replace(/p=(.)/, (_m, c: string) => `p=${c === 'A' ? 'B' : 'A'}`));
  t.same(flipped, { kind: 'failure', condition: 'not-authorized', text: 'invalid-proof' }, 'altered proof');
  const ext = await attempt((sf) => {
    const withExt = clientFinal('sha1', 'pencil', cf, sf).replace(/,p=.*$/, ',x=1');
    return clientFinal('sha1', 'pencil', cf, sf).replace(/^.*,p=/, `${withExt},p=`);
  });
  t.equal(ext.kind, 'failure', 'extension inserted after the proof was computed breaks the AuthMessage');
});

t.test("'=2C' / '=3D' in user names, SASLprep, authzid", async (t) => {
  const creds = deriveCredentials('sha256', 'pw', 4096);
  const seen: string[] = [];
  const lookup = async (u: string): Promise<ScramCredentials | undefined> => {
    seen.push(u);
    return u === 'a,b=c' || u === 'IX' || u === 'user' ? creds : undefined;
  };
  const step = await run(new ScramServer('sha256', lookup), 'sha256', 'n,,n=a=2Cb=3Dc,r=x', 'pw');
  t.same(step.kind === 'success' && step.username, 'a,b=c');
  const prepped = await run(new ScramServer('sha256', lookup), 'sha256', 'n,,n=I\u00ADX,r=x', 'pw');
  t.same(prepped.kind === 'success' && prepped.username, 'IX', 'soft hyphen mapped to nothing');
  t.same(seen, ['a,b=c', 'IX']);
  const same = await run(new ScramServer('sha256', lookup), 'sha256', 'n,a=user,n=user,r=x', 'pw');
  t.equal(same.kind, 'success', 'authzid equal to the user');
  const other = await new ScramServer('sha256', lookup).start('n,a=admin,n=user,r=x');
  t.same(other, { kind: 'failure', condition: 'invalid-authzid' });
  const allowBare = { authzidAllowed: (authzid: string, user: string) => authzid === `${user}@example.com` };
  const jidAuthz = await run(new ScramServer('sha256', lookup, allowBare), 'sha256',
    'n,a=user@example.com,n=user,r=x', 'pw');
  t.equal(jidAuthz.kind, 'success', 'authzidAllowed hook');
});

t.test('exchange ordering and lookup errors', async (t) => {
  const users = lookupFrom({ user: deriveCredentials('sha1', 'pencil', 4096) });
  const server = new ScramServer('sha1', users);
  t.same(server.finish('c=biws,r=abc,p=AAAA'), { kind: 'failure', condition: 'malformed-request',
    text: 'unexpected client-final-message' });
  const fresh = new ScramServer('sha1', users);
  t.equal((await fresh.start('n,,n=user,r=abc')).kind, 'challenge');
  t.equal((await fresh.start('n,,n=user,r=abc')).kind, 'failure', 'start twice');
  const broken = new ScramServer('sha1', async () => {
    throw new Error('db down');
  });
  // The caller tells a storage failure (temporary-auth-failure) from its own refusals thrown by the lookup.
  await t.rejects(broken.start('n,,n=user,r=abc'), /db down/, 'a failing lookup rejects');
  t.throws(() => new ScramServer('sha1', users, { serverNonce: 'a,b' }));
});

t.test('verifyPassword (SASL PLAIN)', async (t) => {
  for (const hash of ['sha1', 'sha256'] as const) {
    const creds = deriveCredentials(hash, 'pencil', 4096);
    t.ok(await verifyPassword(hash, creds, 'pencil'), hash);
    t.notOk(await verifyPassword(hash, creds, 'Pencil'), hash);
    t.notOk(await verifyPassword(hash, creds, ''), hash);
    t.notOk(await verifyPassword(hash, creds, 'pen\u0007cil'), 'SASLprep-prohibited password is just false');
    t.notOk(await verifyPassword(hash, { ...creds, serverKey: creds.storedKey }, 'pencil'), 'ServerKey also checked');
  }
  const mapped = deriveCredentials('sha256', 'I\u00ADX', 4096);
  t.ok(await verifyPassword('sha256', mapped, 'IX'), 'passwords are SASLprepped');
  t.ok(await verifyPassword('sha1', deriveCredentials('sha1', 'low', 1), 'low'), 'low stored iteration counts allowed');
});

t.test('deriveCredentials and deriveCredentialsAsync agree', async (t) => {
  const salt = Buffer.from('0123456789abcdef');
  for (const hash of ['sha1', 'sha256'] as const) {
    t.same(await deriveCredentialsAsync(hash, 'pencil', 4096, salt), deriveCredentials(hash, 'pencil', 4096, salt));
  }
  const a = deriveCredentials('sha256', 'pencil', 4096);
  const b = await deriveCredentialsAsync('sha256', 'pencil', 4096);
  t.equal(b64(a.salt).length, 16, 'random 16-byte salt');
  t.not(a.salt, b.salt);
  t.not(a.storedKey, b.storedKey);
  t.throws(() => deriveCredentials('sha1', 'pw', 0), RangeError);
  t.throws(() => deriveCredentials('sha1', 'pw', 1.5), RangeError);
  await t.rejects(deriveCredentialsAsync('sha1', 'pw', -1), RangeError);
  t.throws(() => deriveCredentials('sha1', 'pw\u0000', 4096), Error, 'SASLprep rejects NUL');
});

t.test('saslprep wrapper', async (t) => {
  t.equal(saslprep('I\u00ADX'), 'IX');
  t.equal(saslprep('a\u00A0b'), 'a b');
  t.throws(() => saslprep('\u0007'), /SASLprep/);
  t.throws(() => saslprep('a\u007f'), /SASLprep/, 'DEL is outside the printable-ASCII shortcut');
});

t.test('the printable-ASCII shortcut gives what the SASLprep library gives', async (t) => {
  const { default: library } = await import('@mongodb-js/saslprep');
  let state = 0x9e3779b9;
  const rnd = (n: number): number => { state ^= state << 13; state ^= state >>> 17; state ^= state << 5; return (state >>> 0) % n; };
  let same = 0;
  for (let k = 0; k < 2000; k++) {
    const s = Array.from({ length: 1 + rnd(24) }, () => String.fromCharCode(0x20 + rnd(0x5f))).join('');
    if (saslprep(s) === library(s)) same++;
    else t.fail(`differs for ${JSON.stringify(s)}`);
  }
  t.equal(same, 2000, 'identical for 2000 random printable-ASCII strings, spaces included');
});

t.test('SASLprep of a string that maps to nothing fails with a plain message', async (t) => {
  const { saslprep } = await import('../../src/sasl/saslprep.js');
  t.throws(() => saslprep('\u00ad'), /nothing is left after mapping/);
});

t.test('the fake credentials are made for a known user too: the same work whether the account exists or not', async (t) => {
  // An unknown user's challenge cost the fake salt's HMAC and random keys (~15 µs) on top of a
  // known user's, a difference a client can measure over many challenges to tell which accounts
  // exist. accountKey is asked only when the fake credentials are made.
  const users = lookupFrom({ juliet: deriveCredentials('sha256', 'pw', 4096) });
  for (const name of ['juliet', 'romeo']) {
    const keyed: string[] = [];
    const server = new ScramServer('sha256', users, { accountKey: (u) => { keyed.push(u); return u; } });
    t.equal((await server.start(`n,,n=${name},r=abc`)).kind, 'challenge');
    t.same(keyed, [name], `${name}: fake credentials made once`);
  }
});

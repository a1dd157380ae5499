import t from 'tap';
import {
  Jid,
  JidError,
  makeJid,
  normalizeDomain,
  normalizeLocal,
  normalizeResource,
  parseJid,
  tryNormalizeDomain,
  tryParseJid,
} from '../../src/jid/index.js';

const parts = (j: Jid): [string, string, string] => [j.local, j.domain, j.resource];

t.test('RFC 7622 §3.5 examples of valid JIDs', async (t) => {
  const cases: Array<[string, [string, string, string]]> = [
    ['juliet@example.com', ['juliet', 'example.com', '']],
    ['juliet@example.com/foo', ['juliet', 'example.com', 'foo']],
    ['juliet@example.com/foo bar', ['juliet', 'example.com', 'foo bar']],
    ['juliet@example.com/foo@bar', ['juliet', 'example.com', 'foo@bar']],
    ['foo\\20bar@example.com', ['foo\\20bar', 'example.com', '']],
    ['fussball@example.com', ['fussball', 'example.com', '']],
    ['fußball@example.com', ['fußball', 'example.com', '']],
    ['π@example.com', ['π', 'example.com', '']],
    ['Σ@example.com/foo', ['σ', 'example.com', 'foo']],
    ['σ@example.com/foo', ['σ', 'example.com', 'foo']],
    ['ς@example.com/foo', ['ς', 'example.com', 'foo']],
    ['king@example.com/♚', ['king', 'example.com', '♚']],
    ['example.com', ['', 'example.com', '']],
    ['example.com/foobar', ['', 'example.com', 'foobar']],
    ['a.example.com/b@example.net', ['', 'a.example.com', 'b@example.net']],
  ];
  for (const [input, expected] of cases) t.same(parts(parseJid(input)), expected, input);
  t.not(parseJid('fußball@example.com').local, parseJid('fussball@example.com').local, 'ß is not folded');
  t.not(parseJid('ς@example.com').local, parseJid('σ@example.com').local, 'final sigma stays distinct');
});

t.test('RFC 7622 §3.6 examples of invalid JIDs, and more', async (t) => {
  const invalid = [
    '"juliet"@example.com', // quotation marks are excluded from localparts
    'foo bar@example.com', // space in localpart
    'juliet@example.com/', // empty resourcepart
    '@example.com/', // empty localpart and resourcepart
    'henry\u2163@example.com', // ROMAN NUMERAL FOUR: HasCompat, disallowed in IdentifierClass
    '♚@example.com', // symbol, disallowed in IdentifierClass
    'juliet@', // empty domainpart
    '/foobar', // empty domainpart
    '',
    '@example.com',
    'a@b@example.com',
    'jul\u0001iet@example.com',
    'juliet@example.com/a\u0000b',
    'juliet@example.com/a\u0085b', // C1 control
    'juliet@exa mple.com',
    'juliet@example..com',
    'juliet@.example.com',
    'juliet@example.com..', // only one trailing dot is stripped
    'juliet@.',
    'juliet@☃.net', // IDNA2008 disallows symbols
    'juliet@a!b.com',
    'juliet@1.2.3', // would be reinterpreted as an IPv4 address
    'juliet@::1', // IPv6 needs brackets
    'juliet@[::1', 'juliet@[zz::1]', 'juliet@[fe80::1%eno1]',
    'juliet@xn--abc.com', // invalid Punycode
    'a\u200Db@example.com', // ZERO WIDTH JOINER (CONTEXTJ, not evaluated: rejected)
    'a\u00B7b@example.com', // MIDDLE DOT outside l·l (RFC 5892 A.3)
    '\uE000@example.com', // private use
    '\u0378@example.com', // unassigned
    'juliet@example.com/\uFDD0', // noncharacter
    'juliet@example.com/a\u200Bb', // default ignorable
  ];
  for (const s of invalid) {
    t.throws(() => parseJid(s), JidError, JSON.stringify(s));
    t.equal(tryParseJid(s), null, `tryParseJid ${JSON.stringify(s)}`);
  }
  const err = t.throws(() => parseJid('@x'));
  t.ok(err instanceof JidError && err.condition === 'jid-malformed');
});

t.test('case mapping applies to localpart and domainpart, not resourcepart', async (t) => {
  const j = parseJid('JuLiEt@EXAMPLE.Com/Balcony');
  t.equal(j.full, 'juliet@example.com/Balcony');
  t.notOk(j.equals(parseJid('juliet@example.com/balcony')));
  t.ok(j.equals(parseJid('juliet@example.com/Balcony')));
  t.equal(parseJid('İ@example.com').local, 'i\u0307', 'Unicode toLowerCase (RFC 8265 §3.3.1)');
});

t.test('width mapping (RFC 8265 §3.3.1 step 1) for localpart, UTS #46 for domainpart', async (t) => {
  t.equal(parseJid('ｊｕｌｉｅｔ@example.com').local, 'juliet');
  t.equal(parseJid('ＪＵＬＩＥＴ@example.com').local, 'juliet');
  t.equal(parseJid('ｶﾞ@example.com').local, 'ガ', 'halfwidth katakana + voiced mark compose under NFC');
  t.equal(parseJid('juliet@ｅｘａｍｐｌｅ．ｃｏｍ').domain, 'example.com');
  t.equal(parseJid('example.com/ＦＯＯ').resource, 'ＦＯＯ', 'no width mapping in resourcepart');
  t.throws(() => parseJid('a\u3000b@example.com'), JidError, 'ideographic space maps to U+0020');
  t.throws(() => parseJid('＠@example.com'), JidError, 'fullwidth @ maps to an excluded @');
});

t.test('normalisation: NFC, non-ASCII spaces in resourcepart', async (t) => {
  t.equal(parseJid('e\u0301@example.com/e\u0301').full, 'é@example.com/é');
  t.equal(parseJid('example.com/foo\u00A0bar').resource, 'foo bar');
  t.equal(parseJid('example.com/\u3000').resource, ' ');
  t.equal(parseJid('example.com/ foo ').resource, ' foo ', 'spaces preserved');
  t.equal(parseJid('example.com/foo/bar').resource, 'foo/bar');
  for (const s of ['ÅB', 'ｶﾞ', 'Σ', 'e\u0301x']) {
    t.equal(normalizeLocal(normalizeLocal(s)), normalizeLocal(s), `idempotent ${s}`);
  }
});

t.test('domainpart: trailing dot, IDN, IP literals', async (t) => {
  t.equal(parseJid('juliet@example.com./foo').full, 'juliet@example.com/foo');
  t.equal(parseJid('example.com.').full, 'example.com');
  t.equal(normalizeDomain('example.com\u3002'), 'example.com', 'ideographic full stop is a separator');
  t.equal(parseJid('juliet@Bücher.example').domain, 'bücher.example');
  t.ok(parseJid('juliet@xn--bcher-kva.example').equals(parseJid('juliet@bücher.example')), 'A-label → U-label');
  t.equal(parseJid('juliet@[::1]/r').domain, '[::1]');
  t.equal(parseJid('juliet@[0:0::1]').domain, '[::1]');
  t.equal(parseJid('[2001:DB8::0:1]').domain, '[2001:db8::1]');
  t.equal(parseJid('user@192.168.1.1').domain, '192.168.1.1');
  t.equal(parseJid('user@localhost').domain, 'localhost');
  t.equal(parseJid('user@CaSe-InSeNsItIvE').domain, 'case-insensitive');
  t.equal(parseJid('user@docker_host').domain, 'docker_host', "'_' tolerated");
});

t.test('domainpart: the final label separator is stripped before routing or comparing (RFC 7622 §3.2)', async (t) => {
  const stripped: Array<[string, string]> = [
    ['localhost.', 'localhost'],
    ['LocalHost.', 'localhost'],
    ['example.com\uFF0E', 'example.com'], // FULLWIDTH FULL STOP
    ['example.com\uFF61', 'example.com'], // HALFWIDTH IDEOGRAPHIC FULL STOP
    ['xn--bcher-kva.example.', 'bücher.example'],
    ['192.168.1.1.', '192.168.1.1'],
  ];
  for (const [input, domain] of stripped) {
    t.equal(normalizeDomain(input), domain, JSON.stringify(input));
    t.equal(tryNormalizeDomain(input), domain, `tryNormalizeDomain ${JSON.stringify(input)}`);
  }
  t.ok(parseJid('bob@localhost./r').equals(parseJid('bob@localhost/r')), 'the same entity with or without the dot');
  t.equal(parseJid('bob@LOCALHOST.').bare, 'bob@localhost');
  t.equal(parseJid('localhost.').full, 'localhost');
  // Only one separator goes; what is left must still be a domain name, so a lone dot or an empty label stays invalid.
  for (const s of ['.', '..', '\u3002', 'localhost..', '.localhost', '.localhost.', 'local..host', 'local..host.']) {
    t.throws(() => normalizeDomain(s), JidError, `domainpart ${JSON.stringify(s)}`);
    t.equal(tryNormalizeDomain(s), null, `tryNormalizeDomain ${JSON.stringify(s)}`);
    t.equal(tryParseJid(`bob@${s}/r`), null, `bob@${s}/r`);
  }
  t.equal(tryParseJid('.'), null, 'a JID that is only a dot');
  t.equal(tryNormalizeDomain(''), null);
  t.equal(tryNormalizeDomain(undefined), null, 'a missing attribute');
  t.equal(tryNormalizeDomain('bob@localhost'), null, 'a JID with a localpart is no domainpart');
});

t.test('domainpart: what the URL host parser cuts at, decodes or drops is no part of a domain name', async (t) => {
  // Node's domainToASCII read each of these as 'localhost': 'bob@localhost?x' addressed bob@localhost.
  for (const s of ['localhost/x', 'localhost/', 'localhost?x', 'localhost#x', 'localhost\\x', 'local%68ost', 'local\thost', 'localhost\n', 'localhost\r', 'localhost\u0000', 'LocalHost?x']) {
    t.throws(() => normalizeDomain(s), JidError, `domainpart ${JSON.stringify(s)}`);
    t.equal(tryNormalizeDomain(s), null, `tryNormalizeDomain ${JSON.stringify(s)}`);
    if (!s.includes('/')) t.equal(tryParseJid(`bob@${s}/r`), null, `bob@${s}/r`);
  }
  t.equal(normalizeDomain('Bücher_x-1.Example'), 'bücher_x-1.example', 'letters, digits, _ and - (any case) and dots stay a name');
});

t.test('length limits: 1..1023 octets per part', async (t) => {
  t.equal(parseJid(`${'a'.repeat(1023)}@example.com`).local.length, 1023);
  t.throws(() => parseJid(`${'a'.repeat(1024)}@example.com`), JidError);
  t.ok(parseJid(`${'é'.repeat(511)}@example.com`), '1022 octets');
  t.throws(() => parseJid(`${'é'.repeat(512)}@example.com`), JidError, '1024 octets');
  t.ok(parseJid(`example.com/${'r'.repeat(1023)}`));
  t.throws(() => parseJid(`example.com/${'r'.repeat(1024)}`), JidError);
  t.throws(() => parseJid(`example.com/${'€'.repeat(342)}`), JidError, '1026 octets');
  const domain1023 = Array.from({ length: 16 }, () => 'a'.repeat(63)).join('.'); // 16*63 + 15
  t.equal(normalizeDomain(domain1023), domain1023);
  t.throws(() => normalizeDomain(`b.${domain1023}`), JidError);
  t.throws(() => normalizeLocal('x'.repeat(100_000)), JidError, 'huge input rejected early');
});

t.test('separators (RFC 7622 §3.1)', async (t) => {
  t.same(parts(parseJid('a/b@c')), ['', 'a', 'b@c'], 'resource is everything after the first /');
  t.same(parts(parseJid('a@b/c@d/e')), ['a', 'b', 'c@d/e']);
  t.same(parts(parseJid('server/resource@foo/bar')), ['', 'server', 'resource@foo/bar']);
  for (const ch of ['"', '&', "'", '/', ':', '<', '>', '@']) {
    t.throws(() => normalizeLocal(`a${ch}b`), JidError, `localpart excludes ${ch}`);
  }
  t.equal(normalizeLocal('l·l'), 'l·l', 'MIDDLE DOT between l and l (RFC 5892 A.3)');
  t.equal(normalizeLocal('!#$%()*+,.;=?[\\]^_`{|}~-'), '!#$%()*+,.;=?[\\]^_`{|}~-');
});

t.test('Jid API', async (t) => {
  const full = parseJid('juliet@example.com/balcony');
  t.equal(full.bare, 'juliet@example.com');
  t.equal(full.full, 'juliet@example.com/balcony');
  t.equal(full.toString(), full.full);
  t.equal(`${full}`, full.full);
  t.notOk(full.isBare());
  t.notOk(full.isDomain());
  const bare = full.bareJid();
  t.equal(bare.full, 'juliet@example.com');
  t.ok(bare.isBare());
  t.equal(bare.bareJid(), bare, 'bareJid of a bare JID is itself');
  t.ok(bare.withResource('balcony').equals(full));
  t.equal(bare.withResource('Ｘ\u00A0y').resource, 'Ｘ y');
  t.throws(() => bare.withResource(''), JidError);
  t.throws(() => bare.withResource('a\u0000'), JidError);
  const domain = parseJid('example.com');
  t.ok(domain.isDomain());
  t.ok(domain.isBare());
  t.equal(domain.bare, 'example.com');
  t.notOk(parseJid('example.com/r').isDomain());
  t.equal(tryParseJid(undefined), null);
  t.equal(tryParseJid('Juliet@Example.com')?.full, 'juliet@example.com');
});

t.test('makeJid and part normalisers', async (t) => {
  t.equal(makeJid('Juliet', 'Example.COM.', 'Balcony').full, 'juliet@example.com/Balcony');
  t.equal(makeJid('', 'example.com').full, 'example.com');
  t.equal(makeJid('', 'example.com', '').full, 'example.com');
  t.ok(makeJid('a', 'b', 'c').equals(Jid.parse('a@b/c')));
  t.throws(() => makeJid('a', ''), JidError);
  t.throws(() => makeJid('a@b', 'example.com'), JidError);
  t.throws(() => normalizeLocal(''), JidError);
  t.throws(() => normalizeResource(''), JidError);
  t.throws(() => normalizeDomain(''), JidError);
  t.throws(() => normalizeDomain('.'), JidError);
  t.equal(normalizeResource('Mixed Case'), 'Mixed Case');
});
